"""The capstone's encoders: CLIP for images, and the ways a query (English or Chinese) becomes a vector.

Chinese queries have three strategies a learner can compare:

* ``translate``     opus-mt zh->en, then CLIP's text tower (role translator_zh_en + clip);
* ``multilingual``  a sentence-transformers text encoder distilled into CLIP's image space
                    (role multilingual_text; searches the CLIP image vectors);
* ``chinese_clip``  Chinese-CLIP, with its own image vectors (index with --chinese-clip);
* ``clip``          CLIP's own text tower on the raw query (the toy CLIP is bilingual;
                    the real OpenAI CLIP reads English only).
"""
from __future__ import annotations

import re
import sys
from functools import lru_cache

import numpy as np

STRATEGIES = ("auto", "clip", "translate", "multilingual", "chinese_clip")
MAX_QUERY_CHARS = 1000
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


class QueryError(ValueError):
    """A query that cannot be searched; the message says what to do."""


def has_chinese(text: str) -> bool:
    return bool(_CJK.search(text))


def image_side(encoder) -> int:
    """The short edge the encoder's image processor resizes to (CLIP: 224; the toy: 64)."""
    size = getattr(encoder.processor.image_processor, "size", None) or {}
    if hasattr(size, "get"):
        return int(size.get("shortest_edge") or size.get("height") or 224)
    return int(getattr(size, "shortest_edge", None) or getattr(size, "height", None) or 224)


def encode_pixels(encoder, pixels) -> np.ndarray:
    """Preprocessed pixel batch -> unit vectors (the image half of ClipEncoder, without decoding)."""
    import torch

    from ..clip_utils import feature_tensor

    with torch.inference_mode():
        out = feature_tensor(encoder.model.get_image_features(pixel_values=pixels.to(encoder.device, encoder.dtype)))
        out = out.float()
        out = out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return out.cpu().numpy()


@lru_cache(maxsize=None)
def clip_encoder(role: str = "clip", models: str | None = None, device: str | None = None, dtype: str | None = None):
    from ..clip_utils import ClipEncoder

    return ClipEncoder(role, models=models, device=device, dtype=dtype)


@lru_cache(maxsize=None)
def translator(direction: str, models: str | None = None, device: str | None = None):
    from ..translation import Translator

    return Translator(direction, models=models, device=device)


@lru_cache(maxsize=None)
def multilingual_encoder(models: str | None = None, device: str | None = None):
    from sentence_transformers import SentenceTransformer

    from ..models import announce, pick_device, resolve

    resolved = resolve("multilingual_text", models)
    announce(resolved)
    return SentenceTransformer(resolved.location, device=pick_device(device))


def check_query(text: str, warn=None) -> str:
    """Strip; refuse empty queries; cut over-long ones with a warning (never crash)."""
    warn = warn or (lambda message: print(f"[search] warning: {message}", file=sys.stderr))
    text = (text or "").strip()
    if not text:
        raise QueryError("the query is empty: type a few words, e.g. \"a red circle\" or \"红色圆形\"")
    if len(text) > MAX_QUERY_CHARS:
        warn(f"query of {len(text)} characters cut to the first {MAX_QUERY_CHARS}")
        text = text[:MAX_QUERY_CHARS]
    return text


def pick_strategy(strategy: str, text: str, models: str | None = None) -> str:
    if strategy not in STRATEGIES:
        raise QueryError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    if not has_chinese(text):
        return "clip"
    # OpenAI CLIP cannot read Chinese; the toy CLIP can, and its translator is a toy too
    return "clip" if clip_encoder("clip", models).resolved.is_toy else "translate"


def encode_query(text: str, strategy: str = "auto", models: str | None = None, device: str | None = None,
                 dtype: str | None = None, warn=None) -> tuple[np.ndarray, str, str, str]:
    """-> (unit vector, strategy used, image-vector role it must be compared with, text actually encoded)."""
    text = check_query(text, warn)
    strategy = pick_strategy(strategy, text, models)
    if strategy == "chinese_clip":
        encoder = clip_encoder("chinese_clip", models, device, dtype)
        _warn_truncation(encoder, text, warn)
        return encoder.encode_texts([text])[0], strategy, "chinese_clip", text
    if strategy == "multilingual":
        vector = multilingual_encoder(models, device).encode([text], convert_to_numpy=True)[0].astype(np.float32)
        return vector / max(np.linalg.norm(vector), 1e-12), strategy, "clip", text
    if strategy == "translate" and has_chinese(text):
        text = translator("zh_en", models, device).translate([text])[0]
    encoder = clip_encoder("clip", models, device, dtype)
    _warn_truncation(encoder, text, warn)
    return encoder.encode_texts([text])[0], strategy, "clip", text


def _warn_truncation(encoder, text: str, warn=None) -> None:
    warn = warn or (lambda message: print(f"[search] warning: {message}", file=sys.stderr))
    n = len(encoder.processor.tokenizer(text)["input_ids"])
    if n > encoder.max_text_tokens:
        warn(f"query is {n} tokens; the text encoder reads only the first {encoder.max_text_tokens}")
