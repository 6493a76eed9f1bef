"""The real-model code paths, run on tiny random models of the very classes the hub ids load.

No hub here, so each test builds a random-initialised model of the real class from a
config, saves it with a matching processor, and points the chapter at that folder.
"""
import json
import subprocess
import sys

import pytest
import torch

from chapter09.clip import ClipEncoder
from chapter09.models import Settings
from chapter09.toyworld.corpus import toy_corpus
from chapter09.toyworld.tokenizers import build_clip_tokenizer
from chapter09.toyworld.train_clip import toy_clip_processor

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def random_clip_dir(tmp_path_factory):
    """A random CLIPModel + CLIPProcessor, ViT-B/32's layout at a tiny width."""
    from transformers import CLIPConfig, CLIPModel

    out = tmp_path_factory.mktemp("random_clip")
    tokenizer = build_clip_tokenizer(toy_corpus(n_scenes=300))
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, eos_token_id=tokenizer.eos_token_id,
                         bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.eos_token_id),
        vision_config=dict(image_size=224, patch_size=32, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
        projection_dim=24)
    CLIPModel(config).save_pretrained(out)
    processor = toy_clip_processor(tokenizer)
    processor.image_processor.size = {"shortest_edge": 224}
    processor.image_processor.crop_size = {"height": 224, "width": 224}
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def random_multilingual_dir(tmp_path_factory, random_clip_dir):
    """A random BERT + mean pooling + dense student, the layout of clip-ViT-B-32-multilingual-v1."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Dense, Pooling
    from transformers import BertConfig, BertModel

    from chapter09.toyworld.tokenizers import word_tokenizer

    build = tmp_path_factory.mktemp("bert")
    tokenizer = word_tokenizer(toy_corpus(n_scenes=300))
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(build)
    tokenizer.save_pretrained(build)
    word = Transformer(str(build))
    model = SentenceTransformer(modules=[word, Pooling(32, "mean"), Dense(32, 24, activation_function=torch.nn.Identity())])
    out = tmp_path_factory.mktemp("random_multilingual")
    model.save(str(out))
    return out


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_clip_encoder_on_the_real_class(random_clip_dir, dtype):
    encoder = ClipEncoder("clip", Settings("real", dtype=dtype), local_dir=random_clip_dir)
    assert not encoder.resolved.is_toy and encoder.model.dtype == getattr(torch, dtype)
    from PIL import Image

    images = encoder.encode_images([Image.new("RGB", (300, 200), "red"), Image.new("L", (50, 80), 128)])
    texts = encoder.encode_texts(["a red circle", "红色圆形", "x " * 500])  # over-long text is truncated
    assert images.shape == (2, 24) and texts.shape == (3, 24)
    assert abs((images ** 2).sum(axis=1) - 1).max() < 1e-3


def test_sections_1_to_3_run_on_real_classes(random_clip_dir, random_multilingual_dir, tmp_path):
    """The lessons' real path end to end: --models real with user-named model folders."""
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1",
           "CH09_MODEL_DIR_CLIP": str(random_clip_dir), "CH09_MODEL_DIR_SBERT_CLIP": str(random_clip_dir),
           "CH09_MODEL_DIR_MULTILINGUAL_TEXT": str(random_multilingual_dir)}
    run = subprocess.run([sys.executable, "run_all_sections.py", "1-3", "--models", "real", "--out", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "[toy world]" not in run.stdout
    for section in ("9.1", "9.2", "9.3"):
        results = json.loads((tmp_path / f"section_{section}" / "results.json").read_text())
        assert results["models"] == "real"
