"""Training the twins from scratch: a few dozen steps must already lower the loss, and the
result must load through the same classes as the real checkpoints."""
from sentence_transformers import SentenceTransformer
from transformers import AutoProcessor, CLIPModel

import random

from chapter09.toy_train import shape_twin, train_clip, train_multilingual_text
from chapter09.toyworld import HELDOUT_COMBOS, generate_scenes


def test_shape_twins_differ_in_one_shape_and_never_use_heldout_pairs():
    rng = random.Random(0)
    for scene in generate_scenes(300, seed=3, split="train", unique=False):
        twin = shape_twin(scene, rng)
        changed = [(a, b) for a, b in zip(scene.objects, twin.objects) if a != b]
        assert len(changed) == 1 and changed[0][0].shape != changed[0][1].shape
        assert changed[0][0].colour == changed[0][1].colour and twin.seed == scene.seed
        assert not any((o.colour, o.shape) in HELDOUT_COMBOS for o in twin.objects)


def test_clip_training_saves_a_model_the_real_classes_load(tmp_path):
    # From scratch the contrastive loss sits at ln(batch) for ~100 steps before it falls, too
    # long for a unit test; this checks the save/load path. The full run's log is in the README.
    history = train_clip(tmp_path, steps=4, n_train=64, batch_size=16, log_every=2, hard_negative_steps=2)
    assert len(history) == 3
    assert isinstance(CLIPModel.from_pretrained(tmp_path), CLIPModel)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert processor.tokenizer("红色圆形")["input_ids"][1:-1]  # Chinese is tokenised, not dropped
    assert SentenceTransformer(str(tmp_path), device="cpu").encode(["a red circle"]).shape == (1, 128)


def test_multilingual_distillation_lowers_the_loss(tmp_path):
    history = train_multilingual_text(tmp_path, steps=40, batch_size=32, log_every=10, n_train=500)
    assert history[-1] < history[0], history
    assert SentenceTransformer(str(tmp_path), device="cpu").encode(["红色圆形"]).shape == (1, 128)
