"""Full-text search over the text read in photos (``index --ocr``), English words and Chinese alike.

The same approach as the captions' (``caption_text``): LanceDB full-text (BM25) indexes, one per column because
each language needs its own tokenizer, with ``caption_text.CONFIG``'s settings: English words (folded, stemmed,
stop words out) over ``text_en``, character 1- and 2-grams over ``text_zh``; both columns and every query are read
through ``ocr_index.searchable`` (Traditional Chinese as Simplified, letters apart from digits). A query is looked
up by its script (``caption_text.query_langs``). The OCR pass builds and updates the indexes under the write lock
(``ocr_index.refresh_index``); an index without them (a pass cut short before its end) is answered by a scan in
Python with the same BM25, with a note.
"""
from __future__ import annotations

import re
from collections import Counter

from ...errors import UsageError
from ..caption.text_search import _CJK, query_langs, scan_ranking, tokens
from ..errors import log
from ..store.tables import quiet_lance
from .run import COLUMNS, index_ok, ocr_rows, open_ocr_table, searchable

_noted: set[str] = set()


def ocr_ranking(store, text: str, limit: int) -> list[tuple[str, float]]:
    """Indexed paths whose photos' text matches ``text``, best first, with BM25 relevance summed over the languages
    the query is written in; [] when no text was read or nothing matches."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("the text to look for in photos is empty; give a word or phrase, e.g. \"exit\" or \"出口\"")
    if not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a positive whole number, not {limit!r}")
    text = searchable(text)
    langs = query_langs(text)
    table = open_ocr_table(store)
    if not langs or table is None or table.count_rows() == 0:
        return []
    if not index_ok(table):
        if store.location not in _noted:
            _noted.add(store.location)
            log(f"ocr text: index {store.location} has no full-text index of its photos' text yet; scanning "
                f"{table.count_rows():,} rows instead (same matches, slower). `index --ocr` builds it")
        rows = ocr_rows(store)
        return scan_ranking({p: {"en": r["text_en"], "zh": r["text_zh"]} for p, r in rows.items()},
                            text, limit, langs)
    from lancedb.query import MatchQuery  # heavy: lancedb

    scores: Counter = Counter()
    for lang in langs:
        with quiet_lance():
            found = table.search(MatchQuery(text, COLUMNS[lang]), query_type="fts").select(["path", "_score"]) \
                .limit(limit).to_arrow()
        scores.update(dict(zip(found.column("path").to_pylist(), found.column("_score").to_pylist())))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]


def matched_words(query: str, text: str) -> list[str]:
    """The words of ``query`` that ``text`` (a photo's text) holds: English words compared as the index does
    (folded, plurals stemmed, letters apart from digits), Chinese runs as substrings, else their two-character
    pieces; both read as Simplified."""
    query, text = searchable(query), searchable(text)
    have_en = set(tokens(text, "en"))
    folded = text.lower()
    found = []
    for word in re.findall(r"[^\W_]+", query):
        for run in re.split(r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)", word):
            if not run:
                continue
            if _CJK.match(run):
                pieces = [run] if run in folded else [run[i:i + 2] for i in range(len(run) - 1)
                                                      if run[i:i + 2] in folded]
                found += pieces
            elif set(tokens(run, "en")) & have_en:
                found.append(run)
    return list(dict.fromkeys(found))


def hit_fields(store, paths: list[str], query: str | None) -> dict[str, dict]:
    """path -> {"ocr_text", "ocr_match"?} for hits: the text read in the photo and the query's words it holds."""
    rows = ocr_rows(store, paths) if paths and open_ocr_table(store) is not None else {}
    out = {}
    for path, row in rows.items():
        if not row["text"]:  # read, no text found: nothing to show
            continue
        out[path] = {"ocr_text": row["text"]}
        if query:
            out[path]["ocr_match"] = matched_words(query, row["text"])
    return out
