"""Traditional Chinese read as Simplified: one function, ``to_simplified``, for everything that compares Chinese text.

The Chinese models here (opus-mt zh->en, Chinese-CLIP, the multilingual student, their toy twins) and the
captioner's Chinese captions are Simplified, so a query typed in Traditional characters (「紅色圓形」) would miss
what its Simplified twin (「红色圆形」) finds. OpenCC's ``t2s`` profile maps Traditional characters and phrases to
Simplified ones and leaves Simplified, Latin and digits untouched, so applying it to any text is safe.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .errors import SetupError

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _converter():
    try:
        import opencc  # light, but optional for English-only use: imported on the first Chinese text
    except ImportError:
        raise SetupError("reading Traditional Chinese needs OpenCC: pip install opencc (requirements.txt has it)") \
            from None
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=4096)
def to_simplified(text: str) -> str:
    """``text`` with its Traditional Chinese written in Simplified characters (OpenCC ``t2s``); a text with no
    Chinese characters is returned as it is, without loading OpenCC."""
    if not text or not _HAN.search(text):
        return text
    return _converter().convert(text)
