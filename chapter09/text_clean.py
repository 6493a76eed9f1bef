"""How a CLIP-family text tower's texts are cleaned before its tokenizer, in a module of its own (stdlib only), so
the capstone's quick search (``capstone/search/quick.py``) cleans a query as ``clip.ClipEncoder`` does without
importing what the encoder needs. ``clip.reference_text_rules`` decides which cleaner a checkpoint gets."""
from __future__ import annotations

import html


def openai_clean(text: str) -> str:
    """OpenAI CLIP's text cleaning before its BPE: ``ftfy.fix_text``, HTML entities unescaped (twice), stripped.

    transformers' CLIPTokenizer leaves it out, so without it curly quotes, full-width forms ("，", "１２３"),
    ligatures and "&amp;" reach the real CLIP as other ids than it was trained on.
    """
    try:
        import ftfy
    except ImportError:  # pragma: no cover - ftfy is in requirements.txt
        ftfy = None
    return html.unescape(html.unescape(ftfy.fix_text(text) if ftfy else text)).strip()


def as_is(text: str) -> str:
    return text


def lowercased(text: str) -> str:
    return text.lower()


CLEANERS = {"as_is": as_is, "lowercased": lowercased, "openai": openai_clean}  # by the name a snapshot records


def cleaner_name(function) -> str | None:
    """The name ``CLEANERS`` knows ``function`` by (None: a cleaner it does not know)."""
    return next((name for name, known in CLEANERS.items() if known is function), None)
