"""The capstone's query encoders: the ways a query (English or Chinese) becomes a vector.

Chinese queries have three strategies a learner can compare:

* ``translate``     opus-mt zh->en, then CLIP's text tower (role translator_zh_en + clip);
* ``multilingual``  a sentence-transformers text encoder distilled into CLIP's image space
                    (role multilingual_text; searches the CLIP image vectors);
* ``chinese_clip``  Chinese-CLIP, with its own image vectors (index with --chinese-clip);
* ``clip``          CLIP's own text tower on the raw query (the toy CLIP is bilingual;
                    the real OpenAI CLIP reads English only).

``auto`` is decided in one place, ``auto_strategy``: the search, ``match`` and ``eval`` agree.

``encode_query`` keeps recent query vectors in an LRU cache (``query_cache.QueryCache``) keyed by the
query, the strategy and the identity (checkpoint and precision) of every model that reads it: a
repeated query, or the web UI paging through results, costs no forward pass.
"""
from __future__ import annotations

import sys

import numpy as np

from ..clip import clip_encoder
from ..language import has_chinese
from ..models import Settings, announce, cached, pick_device, resolve
from ..retrieval import l2_normalize
from ..translation import translator
from .query_cache import QueryCache

QUERY_CACHE = QueryCache()  # the process's recent query vectors (search, serve, match)

STRATEGIES = ("auto", "clip", "translate", "multilingual", "chinese_clip")
MAX_QUERY_CHARS = 1000


class QueryError(ValueError):
    """A query that cannot be searched; the message says what to do."""


def multilingual_encoder(settings: Settings | None = None):
    """The process's one sentence-transformers multilingual text encoder (see ``models.cached``)."""
    settings = settings or Settings()

    def load():
        from sentence_transformers import SentenceTransformer

        resolved = resolve("multilingual_text", settings)
        announce(resolved)
        return SentenceTransformer(resolved.location, device=pick_device(settings.device))

    return cached("multilingual_text", settings, load)


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


def auto_strategy(lang: str, settings: Settings | None = None) -> str:
    """What ``auto`` means for queries in ``lang``: CLIP for English; for Chinese, CLIP itself when it reads
    Chinese (the bilingual toy CLIP), else translate first (OpenAI's CLIP reads English only)."""
    if lang != "zh":
        return "clip"
    return "clip" if clip_encoder("clip", settings).resolved.is_toy else "translate"


def pick_strategy(strategy: str, text: str, settings: Settings | None = None) -> str:
    if strategy not in STRATEGIES:
        raise QueryError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    return auto_strategy("zh" if has_chinese(text) else "en", settings)


def encode_texts(texts: list[str], strategy: str, settings: Settings | None = None) -> tuple[np.ndarray, str]:
    """Unit vectors of ``texts`` read by one (non-auto) strategy, and the image-vector role to compare with."""
    if strategy == "chinese_clip":
        return clip_encoder("chinese_clip", settings).encode_texts(texts), "chinese_clip"
    if strategy == "multilingual":
        return l2_normalize(multilingual_encoder(settings).encode(texts, convert_to_numpy=True)), "clip"
    if strategy == "translate":
        chinese = [i for i, text in enumerate(texts) if has_chinese(text)]
        translated = translator("zh_en", settings).translate([texts[i] for i in chinese]) if chinese else []
        texts = list(texts)
        for i, english in zip(chinese, translated):
            texts[i] = english
    return clip_encoder("clip", settings).encode_texts(texts), "clip"


def _default_warn(message: str) -> None:
    print(f"[search] warning: {message}", file=sys.stderr)


def encoder_identity(strategy: str, text: str, settings: Settings | None = None) -> tuple:
    """Every model that turns ``text`` into a vector under a (non-auto) ``strategy``: location and precision."""
    if strategy in ("clip", "chinese_clip"):
        return (clip_encoder(strategy, settings).identity,)
    if strategy == "multilingual":
        return (resolve("multilingual_text", settings).location, pick_device((settings or Settings()).device))
    reader = (translator("zh_en", settings).resolved.location,) if has_chinese(text) else ()
    return (*reader, clip_encoder("clip", settings).identity)


def encode_query(text: str, strategy: str = "auto", settings: Settings | None = None,
                 warn=None, cache: QueryCache | None = QUERY_CACHE) -> tuple[np.ndarray, str, str, str]:
    """-> (unit vector, strategy used, image-vector role it must be compared with, text actually encoded).

    Recent queries come from ``cache`` (an LRU keyed by text, strategy and encoder identity): a repeated
    query, or the web UI paging, costs no forward pass. ``cache=None`` always encodes.
    """
    warn = warn or _default_warn
    text = check_query(text, warn)
    if cache is None:
        return _encode_query(text, strategy, settings, warn)
    used = pick_strategy(strategy, text, settings)
    key = (text, used, encoder_identity(used, text, settings))
    return cache.lookup(key, lambda recording_warn: _encode_query(text, used, settings, recording_warn), warn)


def _encode_query(text: str, strategy: str, settings: Settings | None, warn) -> tuple[np.ndarray, str, str, str]:
    strategy = pick_strategy(strategy, text, settings)
    if strategy == "chinese_clip":
        encoder = clip_encoder("chinese_clip", settings)
        _warn_truncation(encoder, text, warn)
        return encoder.encode_texts([text])[0], strategy, "chinese_clip", text
    if strategy == "multilingual":
        vectors, role = encode_texts([text], strategy, settings)
        return vectors[0], strategy, role, text
    if strategy == "translate" and has_chinese(text):
        text = translator("zh_en", settings).translate([text])[0]
    encoder = clip_encoder("clip", settings)
    _warn_truncation(encoder, text, warn)
    return encoder.encode_texts([text])[0], strategy, "clip", text


def _warn_truncation(encoder, text: str, warn=None) -> None:
    warn = warn or (lambda message: print(f"[search] warning: {message}", file=sys.stderr))
    n = len(encoder.processor.tokenizer(text)["input_ids"])
    if n > encoder.max_text_tokens:
        warn(f"query is {n} tokens; the text encoder reads only the first {encoder.max_text_tokens}")
