"""Every input the web UI takes, checked once, with the one-line message the page (and the API) shows; the
project's own errors turned into that message (``error_messages``); the combined-query builder's fields read as
``search.Term``s."""
from __future__ import annotations

import contextlib
import math

import gradio as gr

from ...errors import ChapterError
from ..queries import STRATEGIES, parse_weighted
from ..search import Term
from .library import WebLibrary, inside

MAX_K = 50  # results per search (the slider's maximum)
MAX_QUERY_CHARS = 500
MAX_MATCH_LINES = 20  # captions the Match tab scores at once
TERM_ROWS = 3  # add/subtract rows in the combined-query builder (and its API's term1_... term3_... arguments)
TERM_KINDS = ("text", "image", "this hit")
SIGNS = ("add", "subtract")
MAX_WEIGHT = 100.0



def checked_k(k) -> int:
    try:
        value = float(k)
    except (TypeError, ValueError):
        value = float("nan")
    if not (1 <= value <= MAX_K) or value != int(value):
        raise gr.Error(f"the number of results must be a whole number from 1 to {MAX_K}, not {str(k)[:40]!r}")
    return int(value)


def checked_query(query) -> str:
    if not isinstance(query, str) or not query.strip():
        raise gr.Error("type a query (English or Chinese)")
    if len(query) > MAX_QUERY_CHARS:
        raise gr.Error(f"the query is {len(query):,} characters long; this server reads at most {MAX_QUERY_CHARS}")
    return query



@contextlib.contextmanager
def error_messages():
    """The project's errors (a bad filter, a query that cannot be searched, an index being rewritten) as the
    one-line message the page shows, never a bare "Error"."""
    try:
        yield
    except ChapterError as error:
        raise gr.Error(str(error)) from None


def checked_weight(value, where: str) -> float:
    try:
        weight = 1.0 if value in (None, "") else float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not math.isfinite(weight) or abs(weight) > MAX_WEIGHT:
        raise gr.Error(f"{where}: the weight must be a number from -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}, "
                       f"not {str(value)[:40]!r}")
    return weight


def combined_terms(library: WebLibrary, text, image, rows) -> list:
    """The combined-query builder's fields as ``search.Term``s, composed as the command line's are:
    the base text (rclip's ``2:text`` weight syntax, like ``--text``) and image, then each row
    (kind, add/subtract, value, uploaded image, weight) added or subtracted. A "this hit" row names a
    library path the index holds (its stored vector, as ``--add PATH``); the server never reads a path
    typed as a text or image term (that would encode any file it can read)."""
    terms = []
    if isinstance(text, str) and text.strip():
        weight, value = parse_weighted(checked_query(text))
        terms.append(Term("text", value, weight))
    if image is not None:
        terms.append(Term("image", library.upload(image)))
    for number, (kind, sign, value, upload, weight) in enumerate(rows, 1):
        where = f"term {number}"
        kind = kind or "text"
        if kind not in TERM_KINDS:
            raise gr.Error(f"{where}: the kind must be one of {', '.join(TERM_KINDS)}, not {str(kind)[:40]!r}")
        if sign not in (None, "", *SIGNS):
            raise gr.Error(f"{where}: choose add or subtract, not {str(sign)[:40]!r}")
        factor = -1.0 if sign == "subtract" else 1.0
        if kind == "text" and isinstance(value, str) and value.strip():
            terms.append(Term("text", checked_query(value), factor * checked_weight(weight, where)))
        elif kind == "image" and upload is not None:
            terms.append(Term("image", library.upload(upload), factor * checked_weight(weight, where)))
        elif kind == "this hit" and isinstance(value, str) and value.strip():
            relative = value.strip()
            if inside(library.root, relative) is None:
                raise gr.Error(f"{where}: {relative[:80]!r} is not a photo in the library; click a result, "
                               "then press \"use the selected hit\"")
            terms.append(Term("indexed", relative, factor * checked_weight(weight, where)))
    if not terms:
        raise gr.Error("build a query first: a text or an image, and terms to add or subtract")
    return terms



def checked_strategy(strategy) -> str:
    if strategy not in (None, "", *STRATEGIES):
        raise gr.Error(f"strategy must be one of {', '.join(STRATEGIES)}")
    return strategy or "auto"


def checked_hit(root, relative):
    """The library file a selected hit names, or the message to pick one."""
    path = inside(root, relative) if isinstance(relative, str) and relative else None
    if path is None:
        raise gr.Error("pick a result first (click a thumbnail)")
    return path


def checked_match_lines(texts) -> list[str]:
    """The Match tab's captions, one per line."""
    if not isinstance(texts, str) or len(texts) > MAX_MATCH_LINES * MAX_QUERY_CHARS:
        raise gr.Error(f"give at most {MAX_MATCH_LINES * MAX_QUERY_CHARS} characters of captions, one per line")
    lines = [t.strip() for t in texts.splitlines() if t.strip()]
    if not lines:
        raise gr.Error("type one caption per line")
    if len(lines) > MAX_MATCH_LINES or any(len(line) > MAX_QUERY_CHARS for line in lines):
        raise gr.Error(f"at most {MAX_MATCH_LINES} captions of at most {MAX_QUERY_CHARS} characters each")
    return lines
