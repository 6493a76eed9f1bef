"""Which trainer builds which toy twin: ``python -m chapter09.toyworld train ROLE``.

Each trainer takes (out_dir: Path, steps: int | None, seed: int) and saves a folder that
``from_pretrained`` loads like the real checkpoint.
"""
from __future__ import annotations

import time
from pathlib import Path

from .. import config
from ..errors import UsageError
from .train_blip import train_captioner, train_vqa
from .train_blip2 import train_blip2
from .train_chinese_clip import train_chinese_clip
from .train_clip import train_clip
from .train_multilingual import train_multilingual_text
from .train_translators import train_translator_en_zh, train_translator_zh_en

TRAINERS = {
    "clip": train_clip,
    "multilingual_text": train_multilingual_text,
    "captioner": train_captioner,
    "vqa": train_vqa,
    "blip2": train_blip2,
    "translator_en_zh": train_translator_en_zh,
    "translator_zh_en": train_translator_zh_en,
    "chinese_clip": train_chinese_clip,
}


def train_role(role: str, out_dir=None, steps: int | None = None, seed: int = 0) -> Path:
    """Train the toy twin of ``role`` and save it (default: its folder in ``twins/``)."""
    if role not in TRAINERS:
        raise UsageError(f"no toy trainer for role {role!r}; trainable roles: {', '.join(TRAINERS)}")
    out_dir = Path(out_dir) if out_dir else config.model_spec(role).toy_path
    started = time.time()
    TRAINERS[role](out_dir, steps, seed)
    print(f"trained toy {role!r} in {time.time() - started:.0f} s -> {out_dir}")
    return out_dir
