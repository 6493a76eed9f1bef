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


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_text_to_image_recall_at_5(report, lang):
    assert report["images"] >= 500
    assert report[f"text_to_image_{lang}"]["R@5"] >= 0.90


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_zero_shot_colour_classification(report, lang):
    assert report["zero_shot_images"] >= 100
    assert report[f"zero_shot_colour_{lang}"] >= 0.90


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_zero_shot_shape_classification(report, lang):
    """Measured 0.939 en / 0.939 zh on this split for the committed twin (0.74 / 0.70 before the
    shape-group phase of ``train_clip``); the misses are circle->square and star->triangle,
    mostly on the colour x shape pairs held out of training."""
    assert report[f"zero_shot_shape_{lang}"] >= 0.90


def test_unseen_colour_shape_pairs_are_still_recognised(toy_clip):
    """Golden check in the open_clip style: a scene of a held-out pair matches its own caption."""
    from chapter09.toyworld import HELDOUT_COMBOS, Scene, ToyObject

    scenes = [Scene((ToyObject(c, s, "large", (1, 1)),), (235, 235, 235), seed=i)
              for i, (c, s) in enumerate(sorted(HELDOUT_COMBOS))]
    for lang in ("en", "zh"):
        captions = [scene.captions(lang)[0] for scene in scenes]
        scores = toy_clip.encode_images([s.render() for s in scenes]) @ toy_clip.encode_texts(captions).T
        assert (scores.argmax(axis=1) == np.arange(len(scenes))).mean() >= 5 / 6, (lang, scores.round(2))


def test_bf16_and_fp32_agree_on_the_ranking(heldout_dir):
    scenes = generate_scenes(60, seed=77, split="heldout")
    captions = [s.captions("en")[0] for s in scenes]
    ranks = []
    for dtype in ("float32", "bfloat16"):
        encoder = ClipEncoder("clip", Settings("toy", dtype=dtype))
        scores = encoder.encode_texts(captions) @ encoder.encode_images([s.render() for s in scenes]).T
        ranks.append(scores.argmax(axis=1))
    assert (ranks[0] == ranks[1]).mean() >= 0.9
