"""The toy CLIP must really work: measured on held-out scenes it never trained on."""
import numpy as np
import pytest

from chapter09.clip import ClipEncoder
from chapter09.models import Settings
from chapter09.toyworld import generate_scenes
from chapter09.toyworld.eval import evaluate_clip, format_report


@pytest.fixture(scope="module")
def toy_clip():
    return ClipEncoder("clip", Settings("toy"))


@pytest.fixture(scope="module")
def report(toy_clip, heldout_dir):
    result = evaluate_clip(toy_clip, heldout_dir)
    print("\n" + format_report(result))
    return result


def test_text_to_image_recall_at_5_in_english(report):
    assert report["images"] >= 500
    assert report["text_to_image_en"]["R@5"] >= 0.90


def test_chinese_through_the_english_only_clip_stays_near_chance(report):
    """The negative floor: like openai/clip-vit-base-patch32, the toy CLIP learnt from English pairs only,
    so a Chinese caption (bytes it never trained on) finds its image hardly more often than chance
    (R@5 5/600 = 0.008). Measured 0.011 on another 600 held-out scenes."""
    assert report["text_to_image_zh"]["R@5"] <= 0.05
    assert report["text_to_image_zh"]["R@1"] <= 0.02


def test_zero_shot_colour_classification(report):
    assert report["zero_shot_images"] >= 100
    assert report["zero_shot_colour_en"] >= 0.90
    assert report["zero_shot_colour_zh"] <= 0.35  # chance: 1/6; measured 0.118


def test_zero_shot_shape_classification(report):
    """Measured 0.902 en on 153 single-object images of another draw; the misses are circle->square and
    star->triangle, mostly on the colour x shape pairs held out of training. Chinese prompts: chance."""
    assert report["zero_shot_shape_en"] >= 0.85
    assert report["zero_shot_shape_zh"] <= 0.40  # chance: 1/5; measured 0.144


def test_hard_split_sits_clearly_below_the_plain_one(report, toy_clip, hard_dir):
    """On the hard split (families whose captions share every word) English R@1 falls well below the plain
    held-out split's (measured 0.773 against 0.975), and its own scene wins among a family of three less
    often than exact retrieval would suggest (0.842; a bag-of-words reader scores 1/3): CLIP-style models
    partly read captions as bags of words (ARO, arXiv 2210.01936)."""
    hard = evaluate_clip(toy_clip, hard_dir)
    print("\n" + format_report(hard))
    assert 0.55 <= hard["text_to_image_en"]["R@1"] <= report["text_to_image_en"]["R@1"] - 0.1
    assert hard["text_to_image_en"]["R@5"] >= 0.90
    family = hard["family_en"]
    assert 0.6 <= family["all"] <= 0.95
    assert family["binding"] <= 0.95 and family["position"] <= 0.95


def test_unseen_colour_shape_pairs_are_still_recognised(toy_clip):
    """Golden check in the open_clip style: a scene of a held-out pair matches its own caption."""
    from chapter09.toyworld import HELDOUT_COMBOS, Scene, ToyObject

    scenes = [Scene((ToyObject(c, s, "large", (1, 1)),), (235, 235, 235), seed=i)
              for i, (c, s) in enumerate(sorted(HELDOUT_COMBOS))]
    captions = [scene.captions("en")[0] for scene in scenes]
    scores = toy_clip.encode_images([s.render() for s in scenes]) @ toy_clip.encode_texts(captions).T
    assert (scores.argmax(axis=1) == np.arange(len(scenes))).mean() >= 5 / 6, scores.round(2)


def test_bf16_and_fp32_agree_on_the_ranking(heldout_dir):
    scenes = generate_scenes(60, seed=77, split="heldout")
    captions = [s.captions("en")[0] for s in scenes]
    ranks = []
    for dtype in ("float32", "bfloat16"):
        encoder = ClipEncoder("clip", Settings("toy", dtype=dtype))
        scores = encoder.encode_texts(captions) @ encoder.encode_images([s.render() for s in scenes]).T
        ranks.append(scores.argmax(axis=1))
    assert (ranks[0] == ranks[1]).mean() >= 0.9
