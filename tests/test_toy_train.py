"""Training the twins from scratch: a few dozen steps must already lower the loss, and the
result must load through the same classes as the real checkpoints."""
import random

import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoProcessor, CLIPModel, CLIPTokenizer

from chapter09.config import model_spec
from chapter09.toyworld import HELDOUT_COMBOS, generate_scenes
from chapter09.toyworld.corpus import toy_corpus
from chapter09.toyworld.tokenizers import build_clip_tokenizer, learn_bpe_merges
from chapter09.toyworld.train_clip import (
    FINE_PATCH_SIZE,
    SHAPE_GROUP,
    finer_patches,
    shape_twin,
    shape_variants,
    train_clip,
)
from chapter09.toyworld.train_multilingual import train_multilingual_text


def test_shape_twins_differ_in_one_shape_and_never_use_heldout_pairs():
    rng = random.Random(0)
    for scene in generate_scenes(300, seed=3, split="train", unique=False):
        twin = shape_twin(scene, rng)
        changed = [(a, b) for a, b in zip(scene.objects, twin.objects) if a != b]
        assert len(changed) == 1 and changed[0][0].shape != changed[0][1].shape
        assert changed[0][0].colour == changed[0][1].colour and twin.seed == scene.seed
        assert not any((o.colour, o.shape) in HELDOUT_COMBOS for o in twin.objects)


def test_shape_groups_show_one_object_in_every_training_shape_of_its_colour():
    rng = random.Random(0)
    for scene in generate_scenes(300, seed=4, split="train", unique=False):
        variants = shape_variants(scene, rng)
        assert len(variants) == SHAPE_GROUP and all(v.seed == scene.seed for v in variants)
        changed = {i for v in variants for i, (a, b) in enumerate(zip(scene.objects, v.objects)) if a != b}
        assert len(changed) == 1  # one object changes; the others are the scene's own
        index = changed.pop()
        shapes = {v.objects[index].shape for v in variants}
        assert len(shapes) == SHAPE_GROUP  # four different shapes ...
        assert all((v.objects[index].colour, v.objects[index].size, v.objects[index].cell)
                   == (scene.objects[index].colour, scene.objects[index].size, scene.objects[index].cell)
                   for v in variants)  # ... of the same colour, size and place
        assert not any((o.colour, o.shape) in HELDOUT_COMBOS for v in variants for o in v.objects)


def test_bpe_merges_take_the_most_frequent_pair_and_break_ties_by_the_pair():
    words = {"ab": 3, "cd": 3, "abd": 1}
    expected = [("a", "b</w>"), ("c", "d</w>"), ("a", "b"), ("ab", "d</w>")]  # 3, 3 (tie), 1, 1 (tie)
    assert learn_bpe_merges(words, 10) == expected
    assert learn_bpe_merges(dict(reversed(words.items())), 10) == expected  # order of the counts is irrelevant
    assert learn_bpe_merges(words, 2) == expected[:2]


def test_the_clip_tokenizer_is_rebuilt_identically_and_as_committed():
    corpus = toy_corpus()
    first, second = build_clip_tokenizer(corpus), build_clip_tokenizer(corpus)
    assert first.get_vocab() == second.get_vocab()
    committed = CLIPTokenizer.from_pretrained(model_spec("clip").toy_path)
    sample = random.Random(0).sample(corpus, 3000) + ["a red 星形 zebra!"]
    assert [first.tokenize(text) for text in sample] == [committed.tokenize(text) for text in sample]


def test_clip_training_saves_a_model_the_real_classes_load(tmp_path):
    # From scratch the contrastive loss sits at ln(batch) for ~100 steps before it falls, too
    # long for a unit test; this checks the save/load path. The full run's log is in the README.
    history = train_clip(tmp_path, steps=4, n_train=64, batch_size=16, log_every=2, hard_negative_steps=2,
                         fine_patch_steps=2, short_caption_steps=2, shape_group_steps=2)
    assert len(history) == 7  # one logged loss per phase, two in phase 1 and in phase 5 (run twice)
    model = CLIPModel.from_pretrained(tmp_path)
    assert model.config.vision_config.patch_size == FINE_PATCH_SIZE
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert len(processor.tokenizer("红色圆形")["input_ids"][1:-1]) == 12  # Chinese falls apart into UTF-8 bytes, 3 a character
    assert SentenceTransformer(str(tmp_path), device="cpu").encode(["a red circle"]).shape == (1, 128)


def test_multilingual_distillation_lowers_the_loss(tmp_path):
    history = train_multilingual_text(tmp_path, steps=20, batch_size=32, log_every=10, n_train=300)
    assert history[-1] < history[0], history
    assert SentenceTransformer(str(tmp_path), device="cpu").encode(["红色圆形"]).shape == (1, 128)


def test_finer_patches_project_a_flat_patch_as_before():
    # FlexiViT-style re-patching: an 8-px patch of a flat colour must project exactly like the
    # 16-px patch of that colour did, so the learnt features carry over.
    from transformers import CLIPConfig

    config = CLIPConfig(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2),
                        vision_config=dict(image_size=64, patch_size=16, hidden_size=32, intermediate_size=64,
                                           num_hidden_layers=1, num_attention_heads=2), projection_dim=16)
    torch.manual_seed(0)
    coarse = CLIPModel(config).eval()
    fine = finer_patches(coarse, 8)
    assert fine.config.vision_config.patch_size == 8
    flat = torch.rand(1, 3, 1, 1).expand(1, 3, 64, 64)
    with torch.no_grad():
        before = coarse.vision_model.embeddings.patch_embedding(flat)[0, :, 0, 0]
        after = fine.vision_model.embeddings.patch_embedding(flat)
    assert after.shape[-1] == 8  # an 8 x 8 grid where there was 4 x 4
    assert torch.allclose(after[0, :, 3, 5], before, atol=1e-5)


def test_grouped_batches_keep_each_group_whole_and_distinct():
    from chapter09.training import grouped_batch

    rng = random.Random(0)
    for group in (1, 2, 4):
        index = grouped_batch(rng, 400, 32, group)
        assert len(index) == 32 and len(set(index)) == 32
        for start in range(0, 32, group):  # a group's members arrive together, in order
            assert index[start:start + group] == list(range(index[start], index[start] + group))
            assert index[start] % group == 0
