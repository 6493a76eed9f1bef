"""English and Chinese text: telling them apart, tidying decoded captions, the language tokens.

One home for what several modules need to agree on: the capstone picks a query strategy
with ``has_chinese``, the captioners clean their output with ``tidy_text``, and the toy
BLIP twins are prompted (and trained) with ``LANG_TOKENS``.
"""
from __future__ import annotations

import re

LANGS = ("en", "zh")
LANG_TOKENS = {"en": "<en>", "zh": "<zh>"}  # the toy captioner continues one of these

# CJK ideographs (a query "is Chinese" when it holds one) ...
_IDEOGRAPHS = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# ... and CJK text in the wider sense: ideographs, CJK punctuation and full-width forms.
_CJK_TEXT = r"\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"


def has_chinese(text: str) -> bool:
    return bool(_IDEOGRAPHS.search(text))


def tidy_text(text: str) -> str:
    """BERT-style decoding puts a space between Chinese characters; remove spaces next to CJK text."""
    text = re.sub(rf"\s+(?=[{_CJK_TEXT}])|(?<=[{_CJK_TEXT}])\s+", "", text)
    return " ".join(text.split())
