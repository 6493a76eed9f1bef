import json
import random

import numpy as np
import pytest

from chapter09 import toyworld
from chapter09.toyworld import COLOURS, HELDOUT_COMBOS, POSITIONS, SHAPES, SIZES, generate_scenes
from chapter09.toyworld.__main__ import main as toyworld_main
from chapter09.toyworld.scenes import random_scene


def test_same_seed_gives_same_scenes_and_pixels():
    a, b = generate_scenes(20, seed=3), generate_scenes(20, seed=3)
    assert a == b
    assert np.array_equal(np.asarray(a[5].render()), np.asarray(b[5].render()))
    assert generate_scenes(20, seed=4) != a


def test_world_has_the_promised_variety():
    assert len(COLOURS) >= 6 and len(SHAPES) >= 5 and len(SIZES) >= 2 and len(POSITIONS) >= 5
    scenes = generate_scenes(500, seed=1, split="heldout")
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    assert len({s.key for s in scenes}) == 500  # unique descriptions within a data set


def test_training_split_never_shows_heldout_combos_but_heldout_split_does():
    train = generate_scenes(3000, seed=2, split="train", unique=False)
    assert not any((o.colour, o.shape) in HELDOUT_COMBOS for s in train for o in s.objects)
    heldout = generate_scenes(500, seed=2, split="heldout")
    assert {(o.colour, o.shape) for s in heldout for o in s.objects} >= set(HELDOUT_COMBOS)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_caption_names_every_attribute(lang):
    for scene in generate_scenes(50, seed=5, split="heldout"):
        for caption in scene.captions(lang):
            for obj in scene.objects:
                if lang == "en":
                    words = [obj.colour, obj.shape, obj.size, POSITIONS[obj.cell][0]]
                else:
                    words = [COLOURS[obj.colour][0], SHAPES[obj.shape], SIZES[obj.size], POSITIONS[obj.cell][2]]
                assert all(word in caption for word in words), (caption, obj)


def test_questions_have_answers_true_to_the_scene():
    rng = random.Random(0)
    scene = random_scene(rng, "heldout", n_objects=2)
    qa = scene.questions()
    kinds = {(q["type"], q["lang"]) for q in qa}
    assert {("count", "en"), ("count", "zh")} <= kinds
    count = next(q for q in qa if q["type"] == "count" and q["lang"] == "en")
    assert count["answer"] == "two"
    for q in qa:
        if q["type"] == "colour" and q["lang"] == "en":
            shape = q["question"].split("the ")[1].rstrip("?")
            assert q["answer"] == next(o.colour for o in scene.objects if o.shape == shape)


def test_make_cli_writes_a_data_set(tmp_path):
    assert toyworld_main(["make", str(tmp_path), "--n", "12", "--seed", "9"]) == 0
    captions = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert {c["lang"] for c in captions} == {"en", "zh"}
    assert all((tmp_path / c["image"]).exists() for c in captions)
    assert len({c["image"] for c in captions}) == 12
    assert (tmp_path / "qa.jsonl").read_text().count("\n") >= 24
    assert len(toyworld.load_scenes(tmp_path)) == 12
