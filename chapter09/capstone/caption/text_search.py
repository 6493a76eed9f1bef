"""Caption full-text search: find photos by what their stored captions say, in English and in Chinese.

The index is LanceDB's own full-text (BM25) index over the ``captions`` table's two columns, one
index per column because each language needs its own tokenizer:

* ``caption_en``: the ``simple`` tokenizer (split on whitespace and punctuation), lower-cased,
  ASCII-folded, English Snowball stemming ("circles" finds "circle") and English stop words removed.
* ``caption_zh``: character n-grams of length 1 and 2. Chinese has no spaces, so ``simple`` would make
  a whole clause one token. LanceDB 0.40 also offers ``icu`` (dictionary word segmentation, works
  offline) and ``jieba/*``/``lindera/*`` (they need language models installed under Lance's model
  home, absent here). ICU was tried and misses a query that is part of a segmented word (方形 in
  正方形, 三角 in 三角形, 左上 in 左上方, 狗 in 小狗); bigrams alone miss one-character queries (猫).
  1-2-grams find all of these; the single characters they add only lift weakly related rows below
  the full matches (BM25 gives common characters little weight).

Freshness: LanceDB answers a full-text query over the rows its index covers *and* by a flat search
over rows written since (new captions, a changed photo's replaced ones), and never returns deleted
rows, so results are right without a rebuild; ``optimize()`` folds new rows into the index, which
``Store.finish()`` runs after every writing command (``caption --index``, ``index``) and which first
creates a missing index (``ensure_index``). A search on an index that has no full-text index yet (one
captioned before this module existed) builds it on first use, under the index's write lock; where
that cannot be done (a read-only folder, another run holding the lock, an object-store URI opened for
reading) it answers by scanning the captions in Python instead, with a note saying so.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter

from ...chinese import to_simplified
from ...errors import UsageError
from ..errors import IndexLockedError, StoreError, log
from ..store.locations import is_uri
from ..store.lock import IndexLock
from ..store.tables import quiet_lance

LANGS = ("en", "zh")
COLUMNS = {"en": "caption_en", "zh": "caption_zh"}
INDEX_NAMES = {"en": "caption_text_en", "zh": "caption_text_zh"}
# The tokenizer settings each column's index is built with; an index built otherwise is rebuilt.
CONFIG = {
    "en": {"base_tokenizer": "simple", "language": "English", "lower_case": True, "stem": True,
           "remove_stop_words": True, "ascii_folding": True, "with_position": False},
    "zh": {"base_tokenizer": "ngram", "ngram_min_length": 1, "ngram_max_length": 2, "lower_case": True,
           "stem": False, "remove_stop_words": False, "ascii_folding": True, "with_position": False},
}
# create_fts_index's argument names -> the names LanceDB reports in an index's details
_DETAIL_NAMES = {"ngram_min_length": "min_ngram_length", "ngram_max_length": "max_ngram_length"}
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[^\W_]", re.UNICODE)

# (index location) -> the captions table version whose full-text indexes were last found complete
_checked: dict[str, int] = {}
_noted: set[str] = set()  # index locations whose fallback note was printed in this process


# ----------------------------------------------------------------------------- the index
def index_state(table) -> dict[str, str]:
    """lang -> 'ok' | 'missing' | 'other settings' for the captions table's full-text indexes."""
    found = {i.name: i for i in table.list_indices()}
    state = {}
    for lang in LANGS:
        index = found.get(INDEX_NAMES[lang])
        if index is None:
            state[lang] = "missing"
            continue
        details = index.index_details or {}
        same = all(details.get(_DETAIL_NAMES.get(k, k)) == v for k, v in CONFIG[lang].items())
        state[lang] = "ok" if same and list(index.columns) == [COLUMNS[lang]] else "other settings"
    return state


def ensure_index(table) -> list[str]:
    """Create the full-text indexes the captions ``table`` lacks (or has with other settings); returns the
    languages built. The caller holds the write lock; rows written later are folded in by ``optimize()``."""
    built = []
    for lang, state in index_state(table).items():
        if state != "ok":
            with quiet_lance():
                table.create_fts_index(COLUMNS[lang], replace=True, name=INDEX_NAMES[lang], **CONFIG[lang])
            built.append(lang)
    return built


def status(store) -> dict:
    """What caption-text search would use now: captions, the indexes' state, rows not yet folded in."""
    table = store.captions_table()
    if table is None or table.count_rows() == 0:
        return {"captions": 0, "index": "none needed", "unindexed_rows": 0}
    state = index_state(table)
    unindexed = {lang: table.index_stats(INDEX_NAMES[lang]).num_unindexed_rows
                 for lang in LANGS if state[lang] == "ok"}
    return {"captions": table.count_rows(), "index": state, "unindexed_rows": max(unindexed.values(), default=0)}


def _ready(store, table) -> bool:
    """True when both full-text indexes exist with our settings (building them if this process may);
    False: answer by scanning, with a note."""
    if _checked.get(store.location) == table.version:
        return True
    if all(s == "ok" for s in index_state(table).values()):
        _checked[store.location] = table.version
        return True
    why = _build(store)
    if why is None:
        _checked[store.location] = store.captions_table().version
        return True
    if store.location not in _noted:
        _noted.add(store.location)
        log(f"caption text: index {store.location} has no full-text index of its captions yet and {why}; "
            f"scanning its {table.count_rows():,} captions instead (same matches, slower on a large library). "
            "Any writing run builds the index: `caption --index` or `index` with write access")
    return False


def _build(store) -> str | None:
    """Build the missing indexes under the write lock; None when built, else why it could not be."""
    if store.write:  # this process holds the lock
        with store.writing("building the captions' full-text index"):
            ensure_index(store.captions_table())
        return None
    if is_uri(store.location):  # an object-store index
        return "it was opened read-only on an object store (no lock taken by readers there)"
    lock = IndexLock(store.location, 0.0)
    try:
        lock.acquire()
    except IndexLockedError:
        return "another run is updating the index (it builds the full-text index when it finishes)"
    except StoreError as error:  # a read-only folder: IndexReadOnlyError says so
        return f"it cannot be written ({str(error).split(';')[0]})"
    try:
        with store.writing("building the captions' full-text index"):
            ensure_index(store.captions_table())
        return None
    except StoreError as error:
        return f"it cannot be written ({str(error).split(';')[0]})"
    finally:
        lock.release()


# ----------------------------------------------------------------------------- searching
def query_langs(text: str, lang: str | None = None) -> list[str]:
    """The caption languages a query is looked up in: ``lang`` if given, else by its script (Chinese
    characters: the Chinese captions; Latin letters or digits: the English ones; both for a mixed query)."""
    if lang is not None:
        if lang not in LANGS:
            raise UsageError(f"caption language must be one of {', '.join(LANGS)} (or none for both), not {lang!r}")
        return [lang]
    langs = []
    if any(_WORD.match(c) and not _CJK.match(c) for c in text):
        langs.append("en")
    if _CJK.search(text):
        langs.append("zh")
    return langs


def caption_ranking(store, text: str, limit: int, lang: str | None = None) -> list[tuple[str, float]]:
    """Indexed paths whose captions match ``text``, best first, with their BM25 relevance (summed over the
    languages searched). [] when the index holds no captions or nothing matches.

    ``lang`` ('en' | 'zh') searches one language's captions; by default a query is looked up in the
    captions of its own script (``query_langs``). The full-text index is built here when missing.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError("the caption text to search for is empty; give a word or phrase, e.g. \"red circle\"")
    if not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a positive whole number, not {limit!r}")
    text = to_simplified(text)  # the captions are Simplified: 「紅色」 finds what 「红色」 finds
    langs = query_langs(text, lang)
    table = store.captions_table()
    if not langs or table is None or table.count_rows() == 0:
        return []
    if not _ready(store, table):
        return scan_ranking(store.captions(), text, limit, langs)
    table = store.captions_table()  # the version the check (or the build) left
    scores: Counter = Counter()
    for one in langs:
        scores.update(_native(table, text, COLUMNS[one], limit))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _native(table, text: str, column: str, limit: int) -> dict[str, float]:
    from lancedb.query import MatchQuery  # heavy: lancedb


    with quiet_lance():
        found = table.search(MatchQuery(text, column), query_type="fts").select(["path", "_score"]) \
            .limit(limit).to_arrow()
    return dict(zip(found.column("path").to_pylist(), found.column("_score").to_pylist()))


# ----------------------------------------------------------------------------- the scan used without an index
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split())  # the English stop words Lucene and tantivy use


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def _stem(word: str) -> str:
    """Plural endings only: a rough stand-in for Snowball, enough for "circles" to find "circle"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str | None, lang: str) -> list[str]:
    """The terms the scan indexes ``text`` by, as the full-text index's settings do: English words (folded,
    stop words out, plurals stemmed), or for Chinese every 1- and 2-character n-gram of the whole folded
    text, punctuation included (LanceDB's n-gram tokenizer does the same: the scan's BM25 then equals it)."""
    if not text:
        return []
    text = _fold(text)
    if lang == "en":
        return [_stem(w) for w in re.findall(r"[^\W_]+", text) if w not in STOP_WORDS]
    text = to_simplified(text)
    return list(text) + [text[i:i + 2] for i in range(len(text) - 1)]


def scan_ranking(captions: dict[str, dict], text: str, limit: int, langs=LANGS,
                 k1: float = 1.2, b: float = 0.75) -> list[tuple[str, float]]:
    """BM25 over ``captions`` (path -> {"en": ..., "zh": ...}) in Python: the answer without an index."""
    scores: Counter = Counter()
    for lang in langs:
        docs = {path: Counter(tokens(caps.get(lang), lang)) for path, caps in captions.items() if caps.get(lang)}
        if not docs:
            continue
        lengths = {path: sum(terms.values()) for path, terms in docs.items()}
        mean = sum(lengths.values()) / len(docs)
        for term in set(tokens(text, lang)):
            having = [path for path, terms in docs.items() if term in terms]
            idf = math.log(1 + (len(docs) - len(having) + 0.5) / (len(having) + 0.5))
            for path in having:
                tf = docs[path][term]
                scores[path] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[path] / mean))
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]


# ----------------------------------------------------------------------------- fusing rankings
def rrf_fuse(rankings: list[list[str]], k: int = 60, weights=None) -> list[tuple[str, float]]:
    """Reciprocal-rank fusion: each item scores sum_i weight_i / (k + rank_i), rank_i its 1-based place in
    ranking i (absent: no term); best first, ties by the best single place, then by first appearance.

    A ranking may hold paths or (path, score) pairs (``caption_ranking``'s output); a path repeated
    within one ranking counts at its first place. ``k`` = 60 is the constant of Cormack et al. (2009)
    that LanceDB's and most hybrid searches use: it damps the lead of a first place over the next ones.
    """
    if k < 0:
        raise UsageError(f"the RRF constant k must be 0 or more, not {k}")
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise UsageError(f"{len(weights)} weights for {len(rankings)} rankings; give one weight per ranking")
    scores: dict[str, float] = {}
    best: dict[str, int] = {}
    order: dict[str, int] = {}
    for ranking, weight in zip(rankings, weights):
        seen = set()
        for rank, item in enumerate(ranking, start=1):
            path = item[0] if isinstance(item, (tuple, list)) else item
            if path in seen:
                continue
            seen.add(path)
            scores[path] = scores.get(path, 0.0) + float(weight) / (k + rank)
            best[path] = min(best.get(path, rank), rank)
            order.setdefault(path, len(order))
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], order[item[0]]))
