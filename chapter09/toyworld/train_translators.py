"""Toy twins of the opus-mt translators (MarianMT), English to Chinese and back."""
from __future__ import annotations

import random
from pathlib import Path

from .. import config
from ..training import LossLog, adamw_cosine, optimizer_step, seed_everything
from .corpus import parallel_pair
from .scenes import generate_scenes
from .tokenizers import build_marian_tokenizer


def train_translator(direction: str, out_dir: Path, steps: int | None = None, seed: int = 0,
                     batch_size: int = 64, lr: float = 2e-3):
    from transformers import MarianConfig, MarianMTModel

    steps = steps or 1200
    seed_everything(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_marian_tokenizer(out_dir)
    pad = tokenizer.pad_token_id
    model = MarianMTModel(MarianConfig(
        vocab_size=len(tokenizer), d_model=128, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=256, decoder_ffn_dim=256, max_position_embeddings=128,
        pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=pad,
        forced_eos_token_id=tokenizer.eos_token_id, share_encoder_decoder_embeddings=True, scale_embedding=True,
        dropout=0.0))
    scenes = generate_scenes(20000, config.TOY_TRAIN_SEED + seed, "train", unique=False)
    rng = random.Random(seed)
    optimizer, schedule = adamw_cosine(model.parameters(), lr, steps, weight_decay=0.01)
    print(f"toy MarianMT {direction}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"vocabulary {len(tokenizer)}, {steps} steps of {batch_size}")
    model.train()
    log = LossLog(steps, 100)
    for step in range(steps):
        pairs = [parallel_pair(rng.choice(scenes), rng) for _ in range(batch_size)]
        source, target = zip(*pairs) if direction == "en_zh" else zip(*[(zh, en) for en, zh in pairs])
        batch = tokenizer(list(source), text_target=list(target), padding=True, return_tensors="pt")
        batch["labels"][batch["labels"] == pad] = -100
        log.add(optimizer_step(model(**batch).loss, optimizer, schedule, model.parameters()))
    model.eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    print(f"held-out exact-match: {translation_accuracy(direction, out_dir):.3f}")
    return model, tokenizer


def translation_accuracy(direction: str, location, n: int = 200) -> float:
    """Exact-match rate on held-out scenes (including colour x shape pairs never seen in training)."""
    from ..models import ResolvedModel
    from ..translation import Translator

    role = "translator_" + direction
    resolved = ResolvedModel(role, config.model_spec(role), str(location), "toy")
    translator = Translator(direction, resolved=resolved)
    rng = random.Random(7)
    pairs = [parallel_pair(scene, rng) for scene in generate_scenes(n, config.TOY_HELDOUT_SEED, "heldout")]
    source, target = zip(*pairs) if direction == "en_zh" else zip(*[(zh, en) for en, zh in pairs])
    out = translator.translate(list(source))
    return sum(a == b for a, b in zip(out, target)) / len(target)


def train_translator_en_zh(out_dir: Path, steps: int | None = None, seed: int = 0):
    return train_translator("en_zh", out_dir, steps, seed)


def train_translator_zh_en(out_dir: Path, steps: int | None = None, seed: int = 0):
    return train_translator("zh_en", out_dir, steps, seed)


