"""Capstone finetune: a short contrastive run measurably improves held-out recall on a shifted data set."""
import json
import random

import pytest

from chapter09.models import Settings
from chapter09.toyworld import Scene, generate_scenes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def write_shifted(folder, n, seed, split):
    """Toy scenes on dark backgrounds: the toy CLIP only ever saw light ones."""
    (folder / "images").mkdir(parents=True)
    rng = random.Random(seed)
    with open(folder / "captions.jsonl", "w", encoding="utf-8") as out:
        for i, scene in enumerate(generate_scenes(n, seed, split)):
            dark = Scene(scene.objects, tuple(rng.randint(20, 60) for _ in range(3)), scene.seed)
            name = f"images/{i:04d}.png"
            dark.render().save(folder / name)
            for lang in ("en", "zh"):
                out.write(json.dumps({"image": name, "caption": scene.captions(lang)[0], "lang": lang},
                                     ensure_ascii=False) + "\n")
    return folder


def test_finetune_improves_held_out_recall_on_shifted_data(tmp_path):
    from chapter09.capstone.finetune import finetune

    # small on purpose (the test must stay well under a minute): 240 training images, 30 steps of 32
    train = write_shifted(tmp_path / "train", 240, 5, "train")
    val = write_shifted(tmp_path / "val", 120, 6, "heldout")
    report = finetune(train, tmp_path / "tuned", val=val, steps=30, lr=2e-4, batch_size=32, settings=Settings("toy"))
    before, after = report["before"]["text_to_image"], report["after"]["text_to_image"]
    assert report["loss_last"] < report["loss_first"]
    assert after["R@5"] >= before["R@5"] + 0.10, (before, after)
    assert (tmp_path / "tuned" / "model.safetensors").exists()
