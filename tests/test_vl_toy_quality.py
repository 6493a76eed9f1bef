"""Quality of the committed vision-language toy twins (captioner, VQA) on held-out scenes.

The scenes come from the held-out split: a seed the trainers never use, drawn from all 30
colour x shape pairs, including the six (HELDOUT_COMBOS) that no training scene shows.
The figures are printed (run with -s to see them) and asserted against the issue's bar.
"""
from __future__ import annotations

from collections import defaultdict

import pytest

from chapter09 import config
from chapter09.models import Settings
from chapter09.toyworld import HELDOUT_COMBOS, generate_scenes

N_CAPTION_SCENES = 200
N_INT8_SCENES = 48
N_VQA_SCENES = 60  # 758 questions: measured 0.982 (0.962 on never-seen pairs), far above the 0.85 floor
QUALITY_BAR = 0.85


def _heldout(n: int):
    return generate_scenes(n, config.TOY_HELDOUT_SEED + 1, "heldout")


def _has_unseen_combo(scene) -> bool:
    return any((o.colour, o.shape) in HELDOUT_COMBOS for o in scene.objects)


@pytest.fixture(scope="module")
def captioner():
    from chapter09.captioning import Captioner

    return Captioner(Settings("toy", device="cpu"))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_toy_captions_name_every_object(captioner, lang):
    from chapter09.captioning import names_every_object

    scenes = _heldout(N_CAPTION_SCENES)
    captions = captioner.caption([scene.render() for scene in scenes], lang=lang)
    hits = [names_every_object(c, s, lang) for c, s in zip(captions, scenes)]
    accuracy = sum(hits) / len(hits)
    unseen = [hit for hit, scene in zip(hits, scenes) if _has_unseen_combo(scene)]
    # the whole canonical caption, sizes and places included
    exact = sum(c.replace(" ", "") == s.captions(lang)[0].replace(" ", "") for c, s in zip(captions, scenes))
    print(f"\ntoy captioner [{lang}] held-out: names every object's colour and shape on {accuracy:.3f} of "
          f"{len(scenes)} images; {sum(unseen) / len(unseen):.3f} of the {len(unseen)} images with a colour x "
          f"shape pair never seen in training; whole caption right (sizes, places too) on "
          f"{exact / len(scenes):.3f}; e.g. {captions[0]!r}")
    assert len(unseen) >= 20, "the held-out sample should include scenes with never-trained colour x shape pairs"
    assert accuracy >= QUALITY_BAR
    assert exact / len(scenes) >= QUALITY_BAR  # stricter than the bar: wrong places read badly too


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_toy_int8_captions_keep_fp32s(captioner, lang, tmp_path, monkeypatch):
    """int8 captioning (the image encoder through ONNX Runtime int8, the text decoder at fp32) keeps the fp32
    twin's greedy captions on held-out scenes, by the bar ``caption --precision auto`` holds it to."""
    from chapter09.caption_fidelity import CAPTION_BAR, measure_caption_fidelity
    from chapter09.captioning import Captioner

    monkeypatch.setenv("CH09_CACHE", str(tmp_path))  # the export is made here, not in the user's cache
    scenes = _heldout(N_INT8_SCENES)
    pixels = captioner.pixels([scene.render() for scene in scenes])
    rows, built, _ = measure_caption_fidelity(lambda p: Captioner(Settings("toy", device="cpu"), precision=p),
                                              pixels, ("fp32", "int8"), batch_size=len(scenes), lang=lang,
                                              reference=captioner)
    int8 = rows["int8"]
    print(f"\ntoy captioner int8 [{lang}] on {int8.images} held-out scenes: token agreement with fp32 "
          f"{int8.token_agreement:.3f}, exact {int8.exact_agreement:.3f}")
    assert type(built["int8"].model.vision_model).__name__ == "OrtImageEncoder"
    assert all(p.dtype.is_floating_point for p in built["int8"].model.text_decoder.parameters())  # fp32 decoder
    assert int8.images == len(scenes) and int8.passes(CAPTION_BAR)


def test_caption_scoring_is_strict():
    from chapter09.captioning import names_every_object

    scene = next(s for s in _heldout(20) if len(s.objects) >= 2)
    assert names_every_object(scene.captions("en")[0], scene, "en")
    assert names_every_object(scene.captions("zh")[0], scene, "zh")
    assert not names_every_object(scene.captions("zh")[0], scene, "en")
    assert not names_every_object(scene.objects[0].en(), scene, "en")  # one object missing
    assert not names_every_object("a purple thing", scene, "en")
    extra = scene.captions("en")[0] + " and a red star and a blue circle"
    assert not names_every_object(extra, scene, "en")


def test_toy_vqa_exact_answers():
    from chapter09.vqa import BlipAnswerer

    answerer = BlipAnswerer(Settings("toy", device="cpu"))
    pairs = [(scene, qa) for scene in _heldout(N_VQA_SCENES) for qa in scene.questions()]
    answers = answerer.answer_batch([scene.render() for scene, _qa in pairs], [qa["question"] for _s, qa in pairs])
    by_kind = defaultdict(list)
    for answer, (scene, qa) in zip(answers, pairs):
        unseen = ("on images with never-seen pairs",) if _has_unseen_combo(scene) else ()
        for kind in (qa["type"], qa["lang"], *unseen):
            by_kind[kind].append(answer == qa["answer"])
    accuracy = sum(sum(v) for k, v in by_kind.items() if k in ("en", "zh")) / len(pairs)
    detail = ", ".join(f"{kind} {sum(v) / len(v):.3f}" for kind, v in sorted(by_kind.items()))
    print(f"\ntoy VQA held-out exact-answer accuracy: {accuracy:.3f} on {len(pairs)} questions "
          f"about {N_VQA_SCENES} images ({detail})")
    assert set(by_kind) >= {"count", "colour", "shape", "position", "en", "zh", "on images with never-seen pairs"}
    assert accuracy >= QUALITY_BAR


def test_toy_vqa_route_says_which_route_it_took(capsys):
    """With the BLIP-2 twin the toy world takes BLIP-2's route (a few MB fits anywhere); --route blip still
    gives BLIP-VQA, and without the twin the route falls back to BLIP-VQA, saying why."""
    from chapter09.vqa import Blip2Answerer, BlipAnswerer, load_answerer

    if (config.model_spec("blip2").toy_path / "config.json").exists():
        answerer = load_answerer(Settings("toy", device="cpu"))
        assert isinstance(answerer, Blip2Answerer) and answerer.uses_history
        assert "[vqa] route: blip2 - BLIP-2 fits" in capsys.readouterr().out
    else:
        answerer = load_answerer(Settings("toy", device="cpu"))
        assert isinstance(answerer, BlipAnswerer) and not answerer.uses_history
        assert "[vqa] route: blip - BLIP-2 weights are not available here" in capsys.readouterr().out
    answerer = load_answerer(Settings("toy", device="cpu"), prefer="blip")
    assert isinstance(answerer, BlipAnswerer) and "[vqa] route: blip - you asked" in capsys.readouterr().out
