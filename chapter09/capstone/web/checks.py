"""Every input the web UI takes, checked once, with the one-line message the page (and the API) shows; the
project's own errors turned into that message (``error_messages``); the combined-query builder's fields read as
``search.Term``s."""
from __future__ import annotations

import contextlib
import math

import gradio as gr

from ...errors import ChapterError
from ..search.library_search import Term
from ..search.queries import STRATEGIES, parse_weighted
from .i18n import say, word
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
        shown = repr(str(k)[:40])
        raise gr.Error(say(f"the number of results must be a whole number from 1 to {MAX_K}, not {shown}",
                           f"结果数必须是 1 到 {MAX_K} 之间的整数，而不是 {shown}"))
    return int(value)


def checked_query(query) -> str:
    if not isinstance(query, str) or not query.strip():
        raise gr.Error(say("type a query (English or Chinese)", "请输入查询（中文或英文）"))
    if len(query) > MAX_QUERY_CHARS:
        raise gr.Error(say(f"the query is {len(query):,} characters long; this server reads at most {MAX_QUERY_CHARS}",
                           f"查询有 {len(query):,} 个字符；本服务器最多读取 {MAX_QUERY_CHARS} 个"))
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
        shown = repr(str(value)[:40])
        raise gr.Error(say(f"{where}: the weight must be a number from -{MAX_WEIGHT:g} to {MAX_WEIGHT:g}, not {shown}",
                           f"{_term_zh(where)}：权重必须是 -{MAX_WEIGHT:g} 到 {MAX_WEIGHT:g} 之间的数，而不是 {shown}"))
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
            shown = repr(str(kind)[:40])
            raise gr.Error(say(f"{where}: the kind must be one of {', '.join(TERM_KINDS)}, not {shown}",
                               f"{_term_zh(where)}：类型必须是 {', '.join(TERM_KINDS)} 之一，而不是 {shown}"))
        if sign not in (None, "", *SIGNS):
            shown = repr(str(sign)[:40])
            raise gr.Error(say(f"{where}: choose add or subtract, not {shown}",
                               f"{_term_zh(where)}：请选择 add（加上）或 subtract（减去），而不是 {shown}"))
        factor = -1.0 if sign == "subtract" else 1.0
        if kind == "text" and isinstance(value, str) and value.strip():
            terms.append(Term("text", checked_query(value), factor * checked_weight(weight, where)))
        elif kind == "image" and upload is not None:
            terms.append(Term("image", library.upload(upload), factor * checked_weight(weight, where)))
        elif kind == "this hit" and isinstance(value, str) and value.strip():
            relative = value.strip()
            if inside(library.root, relative) is None:
                shown = repr(relative[:80])
                raise gr.Error(say(f"{where}: {shown} is not a photo in the library; click a result, "
                                   "then press \"use the selected hit\"",
                                   f"{_term_zh(where)}：{shown} 不是图库中的照片；请先点击一个结果，"
                                   "再按“使用选中的结果”"))
            terms.append(Term("indexed", relative, factor * checked_weight(weight, where)))
    if not terms:
        raise gr.Error(say("build a query first: a text or an image, and terms to add or subtract",
                           "请先构造查询：一段文本或一张图片，以及要加上或减去的项"))
    return terms



def _term_zh(where: str) -> str:
    """"term 2" in Chinese (a builder row's name in messages)."""
    return word(where, "zh") if where.startswith("term ") else where


def checked_strategy(strategy) -> str:
    if strategy not in (None, "", *STRATEGIES):
        raise gr.Error(say(f"strategy must be one of {', '.join(STRATEGIES)}",
                           f"策略必须是 {', '.join(STRATEGIES)} 之一"))
    return strategy or "auto"


def checked_hit(root, relative):
    """The library file a selected hit names, or the message to pick one."""
    path = inside(root, relative) if isinstance(relative, str) and relative else None
    if path is None:
        raise gr.Error(say("pick a result first (click a thumbnail)", "请先选一个结果（点击一张缩略图）"))
    return path


def checked_match_lines(texts) -> list[str]:
    """The Match tab's captions, one per line."""
    if not isinstance(texts, str) or len(texts) > MAX_MATCH_LINES * MAX_QUERY_CHARS:
        most = MAX_MATCH_LINES * MAX_QUERY_CHARS
        raise gr.Error(say(f"give at most {most} characters of captions, one per line",
                           f"描述最多 {most} 个字符，每行一条"))
    lines = [t.strip() for t in texts.splitlines() if t.strip()]
    if not lines:
        raise gr.Error(say("type one caption per line", "请每行输入一条描述"))
    if len(lines) > MAX_MATCH_LINES or any(len(line) > MAX_QUERY_CHARS for line in lines):
        raise gr.Error(say(f"at most {MAX_MATCH_LINES} captions of at most {MAX_QUERY_CHARS} characters each",
                           f"最多 {MAX_MATCH_LINES} 条描述，每条最多 {MAX_QUERY_CHARS} 个字符"))
    return lines
