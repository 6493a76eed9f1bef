"""Captions in English and Chinese, and image-text match scores, for the CLI and the web UI.

Captions take one of two routes, chosen by the captioner checkpoint itself:

* ``direct``: a bilingual captioner (the toy twin knows ``<en>``/``<zh>`` prompt tokens)
  writes each language itself;
* ``caption+translate``: an English captioner (the real BLIP) writes English once, and
  opus-mt (``translator_en_zh``) translates it; Chinese never costs a second captioning pass.

Match scores are cosine similarities in the space a query strategy uses (``encode_query``),
so a Chinese text is scored the way ``search`` would read it; each row's ``probability`` is the model's own
(``ClipEncoder.match_scores``: a softmax over the texts read in one space, or SigLIP's sigmoid per pair).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...captioning import DEFAULT_CAPTIONER, captioner
from ...clip import clip_encoder
from ...images import as_rgb
from ...models import Settings
from ...translation import translator
from ..options import parse_langs
from ..search.queries import QueryError, encode_query


def caption_route(settings: Settings | None = None, name: str = DEFAULT_CAPTIONER, precision: str | None = None) -> str:
    return "direct" if captioner(settings, name, precision).bilingual else "caption+translate"


def caption_images(images: Sequence, langs: str | Sequence[str] = ("en", "zh"), settings: Settings | None = None,
                   name: str = DEFAULT_CAPTIONER, precision: str | None = None) -> list[dict[str, str]]:
    """One {lang: caption} per image (PIL images or paths), by captioner ``name`` (``captioning.CAPTIONERS``) at
    ``precision`` (None: fp32 unless the CPU has native bf16; ``auto`` is for ``caption --index``, which measures)."""
    langs = parse_langs(langs)
    if precision == "auto":
        precision = None
    model = captioner(settings, name, precision)
    if model.bilingual:
        by_lang = {lang: model.caption(images, lang=lang) for lang in langs}
    else:
        english = model.caption(images, lang="en")
        by_lang = {lang: english if lang == "en" else translator("en_zh", settings).translate(english)
                   for lang in langs}
    return [{lang: by_lang[lang][i] for lang in langs} for i in range(len(images))]


def match_scores(image, texts: Sequence[str], strategy: str = "auto", settings: Settings | None = None,
                 warn=None) -> list[dict]:
    """Cosine similarity (``score``) and the model's probability of ``image`` with each text, read by the same
    strategies as ``search``."""
    if not texts:
        raise QueryError("give at least one text to score against the image")
    image = as_rgb(image)
    image_vectors: dict[str, np.ndarray] = {}
    text_vectors: dict[str, list[tuple[int, np.ndarray]]] = {}  # role -> (row, vector): one softmax per space
    rows = []
    for text in texts:
        vector, used, role, encoded = encode_query(text, strategy, settings, warn)
        if role not in image_vectors:
            image_vectors[role] = clip_encoder(role, settings).encode_images([image])[0]
        text_vectors.setdefault(role, []).append((len(rows), vector))
        rows.append({"text": text, "score": float(vector @ image_vectors[role]), "strategy": used,
                     "encoded_text": encoded})
    for role, scored in text_vectors.items():
        probabilities = clip_encoder(role, settings).match_scores(image_vectors[role],
                                                                  np.stack([vector for _row, vector in scored]))[0]
        for (row, _vector), probability in zip(scored, probabilities):
            rows[row]["probability"] = float(probability)
    return rows
