"""The capstone's query encoders: the ways a query (English or Chinese) becomes a vector.

Four strategies, one small ``Strategy`` each (``BY_NAME``), so a learner can compare them:

* ``clip``          CLIP's own text tower on the raw query (OpenAI's CLIP, and its toy twin,
                    read English only: a Chinese query through it is near chance);
* ``translate``     opus-mt zh->en, then CLIP's text tower (role translator_zh_en + clip);
* ``multilingual``  a sentence-transformers text encoder distilled into CLIP's image space
                    (role multilingual_text; searches the CLIP image vectors);
* ``chinese_clip``  Chinese-CLIP, with its own image vectors (index with --chinese-clip).

``auto`` is decided in one place, ``auto_strategy``: the search, ``match`` and ``eval`` agree.

A query is planned once (``plan_query``: the text checked, the strategy resolved, every model that
reads it loaded and named) and then encoded (``encode_planned``), so a search loads its models
before its clock starts and never resolves the strategy twice. Recent query vectors are kept in an
LRU cache (``query_cache.QueryCache``) keyed by the query, the strategy and the identity
(checkpoint and precision) of every model that reads it: a repeated query, or the web UI paging
through results, costs no forward pass.
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass

import numpy as np

from ...chinese import to_simplified
from ...clip import clip_encoder
from ...config import model_spec
from ...errors import ChapterError
from ...exercises.i18n import t
from ...language import has_chinese
from ...models import Settings, announce, cached, pick_device, resolve
from ...retrieval import l2_normalize
from ...translation import translator
from .query_cache import QueryCache

QUERY_CACHE = QueryCache()  # the process's recent query vectors (search, serve, match)

MAX_QUERY_CHARS = 1000


class QueryError(ChapterError, ValueError):
    """A query that cannot be searched; the message says what to do."""


def multilingual_encoder(settings: Settings | None = None):
    """The process's one sentence-transformers multilingual text encoder (see ``models.cached``)."""
    settings = settings or Settings()

    def load():
        from sentence_transformers import SentenceTransformer  # heavy: sentence_transformers

        resolved = resolve("multilingual_text", settings)
        announce(resolved)
        return SentenceTransformer(resolved.location, device=pick_device(settings.device))

    return cached("multilingual_text", settings, load)


# One forward pass at a time through the shared models, whoever calls (the web server answers searches from many
# threads): Hugging Face's fast tokenizers are not thread-safe (a second caller gets "Already borrowed").
ENCODE_LOCK = threading.RLock()


def _default_warn(message: str) -> None:
    print(f"[search] warning: {message}", file=sys.stderr)


TRUNCATION_WARNING = "query is {tokens} tokens; the text encoder reads only the first {limit}"  # quick search too


def _warn_truncation(encoder, text: str, warn) -> None:
    n = len(encoder.processor.tokenizer(text)["input_ids"])
    if n > encoder.max_text_tokens:
        warn(TRUNCATION_WARNING.format(tokens=n, limit=encoder.max_text_tokens))


@dataclass(frozen=True)
class Strategy:
    """One way texts become vectors: which model reads them, and which image vectors they are compared with.

    ``reader``: a ClipEncoder role (``clip``, ``chinese_clip``) or ``multilingual_text`` (sentence-transformers);
    ``translates``: Chinese texts go through opus-mt zh->en first; ``role``: the image-vector role to search.
    """

    name: str
    reader: str
    role: str
    translates: bool = False

    def readers(self, text: str, settings: Settings | None) -> tuple:
        """Load (once per process) every model that turns ``text`` into a vector, and return their identity
        (location and precision): equal identities give equal vectors, so it keys the query cache."""
        if self.reader == "multilingual_text":
            multilingual_encoder(settings)
            return (resolve("multilingual_text", settings).location, pick_device((settings or Settings()).device))
        translating = (translator("zh_en", settings).resolved.location,) if self.translates and has_chinese(text) else ()
        return (*translating, clip_encoder(self.reader, settings).identity)

    def encode(self, texts: list[str], settings: Settings | None, warn=None) -> tuple[np.ndarray, list[str]]:
        """(unit vectors, the texts actually encoded: Chinese ones translated for ``translate``). ``warn``: told
        when a text is longer than the text encoder reads. Traditional Chinese is read as Simplified, as the
        Chinese models learnt it (``chinese.to_simplified``)."""
        texts = [to_simplified(text) for text in texts]
        if self.translates:
            chinese = [i for i, text in enumerate(texts) if has_chinese(text)]
            english = translator("zh_en", settings).translate([texts[i] for i in chinese]) if chinese else []
            texts = list(texts)
            for i, translated in zip(chinese, english):
                texts[i] = translated
        if self.reader == "multilingual_text":
            return l2_normalize(multilingual_encoder(settings).encode(texts, convert_to_numpy=True)), texts
        encoder = clip_encoder(self.reader, settings)
        if warn is not None:
            for text in texts:
                _warn_truncation(encoder, text, warn)
        return encoder.encode_texts(texts), texts


BY_NAME = {strategy.name: strategy for strategy in (
    Strategy("clip", reader="clip", role="clip"),
    Strategy("translate", reader="clip", role="clip", translates=True),
    Strategy("multilingual", reader="multilingual_text", role="clip"),
    Strategy("chinese_clip", reader="chinese_clip", role="chinese_clip"),
)}
STRATEGIES = ("auto", *BY_NAME)


# What each strategy does with a query, in words (English, Chinese): the route reason a search shows.
ROUTES = {
    "clip": ("CLIP's own text tower (it learnt English only)", "CLIP 自己的文本塔（它只学过英文）"),
    "translate": ("opus-mt translates Chinese to English, then CLIP's text tower reads it",
                  "先用 opus-mt 把中文译成英文，再交给 CLIP 的文本塔"),
    "multilingual": ("a multilingual text encoder distilled into CLIP's image space",
                     "一个蒸馏到 CLIP 图像空间的多语言文本编码器"),
    "chinese_clip": ("Chinese-CLIP's text tower, against its own image vectors",
                     "Chinese-CLIP 的文本塔，与它自己的图像向量比较"),
}


def route_reason(requested: str, text: str, lang: str | None = None) -> str:
    """Why ``text`` takes the route it takes under ``requested`` (a strategy or ``auto``), in ``lang`` (None:
    ``$CH09_LANG``, else English): one line for the search's output."""
    used = pick_strategy(requested, text).name
    chinese = has_chinese(text)
    route = t(*ROUTES[used], lang)
    if requested == "auto":
        return t(f"auto picked {used} for {'a Chinese' if chinese else 'an English'} query: {route}",
                 f"auto 为{'中文' if chinese else '英文'}查询选择了 {used}：{route}", lang)
    warning = t("; a Chinese query through it is near chance", "；用它读中文查询接近随机", lang) \
        if used == "clip" and chinese else ""
    return t(f"{used}, as --strategy asked: {route}{warning}", f"{used}（按 --strategy 指定）：{route}{warning}", lang)


def check_query(text: str, warn=None) -> str:
    """Strip; refuse empty queries; cut over-long ones with a warning (never crash)."""
    warn = warn or _default_warn
    text = (text or "").strip()
    if not text:
        raise QueryError(t("the query is empty: type a few words, e.g. \"a red circle\" or \"红色圆形\"",
                           "查询是空的：请输入几个词，例如 \"a red circle\" 或 \"红色圆形\""))
    if len(text) > MAX_QUERY_CHARS:
        warn(t(f"query of {len(text)} characters cut to the first {MAX_QUERY_CHARS}",
               f"查询有 {len(text)} 个字符，只保留前 {MAX_QUERY_CHARS} 个"))
        text = text[:MAX_QUERY_CHARS]
    return text


def auto_strategy(lang: str) -> str:
    """What ``auto`` means for queries in ``lang``: CLIP for English; for Chinese, translate first (OpenAI's
    CLIP, and its toy twin, learnt from English pairs only; Chinese through its own tower is near chance)."""
    return "translate" if lang == "zh" else "clip"


def pick_strategy(strategy: str, text: str, settings: Settings | None = None) -> Strategy:
    if strategy not in STRATEGIES:
        raise QueryError(t(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}",
                           f"未知的策略 {strategy!r}；请从 {', '.join(STRATEGIES)} 中选择一个"))
    if strategy == "auto":
        strategy = auto_strategy("zh" if has_chinese(text) else "en")
    if strategy == "multilingual" and settings is not None and settings.clip_model:
        # the student was distilled into the default CLIP's space: its vectors mean nothing to another model's
        raise QueryError(f"--strategy multilingual reads texts into {model_spec('clip').hub_id}'s "
                         f"space, not {settings.clip_model}'s: use --strategy translate or clip")
    return BY_NAME[strategy]


def encode_texts(texts: list[str], strategy: str, settings: Settings | None = None) -> tuple[np.ndarray, str]:
    """Unit vectors of ``texts`` read by one (non-auto) strategy, and the image-vector role to compare with."""
    chosen = BY_NAME[strategy]
    return chosen.encode(texts, settings)[0], chosen.role


@dataclass(frozen=True)
class QueryPlan:
    """A query resolved once: the checked text, its strategy, and the identity of the models that read it."""

    text: str
    strategy: Strategy
    settings: Settings | None
    readers: tuple

    def encode(self, warn=None) -> tuple[np.ndarray, str, str, str]:
        """-> (unit vector, strategy used, image-vector role it must be compared with, text actually encoded)."""
        vectors, encoded = self.strategy.encode([self.text], self.settings, warn or _default_warn)
        return vectors[0], self.strategy.name, self.strategy.role, encoded[0]


def plan_query(text: str, strategy: str = "auto", settings: Settings | None = None, warn=None) -> QueryPlan:
    """Check ``text``, resolve ``strategy`` (``auto`` included) and load the models that read it."""
    text = check_query(text, warn)
    chosen = pick_strategy(strategy, text, settings)
    return QueryPlan(text, chosen, settings, chosen.readers(text, settings))


def encode_planned(plan: QueryPlan, warn=None, cache: QueryCache | None = QUERY_CACHE):
    """``plan.encode`` under ``ENCODE_LOCK``, through ``cache`` (an LRU keyed by text, strategy and reader identity;
    None: always encode); a cached vector takes no lock."""
    warn = warn or _default_warn

    def encode(warn):
        with ENCODE_LOCK:
            return plan.encode(warn)
    if cache is None:
        return encode(warn)
    return cache.lookup((plan.text, plan.strategy.name, plan.readers), encode, warn)


def encode_query(text: str, strategy: str = "auto", settings: Settings | None = None,
                 warn=None, cache: QueryCache | None = QUERY_CACHE) -> tuple[np.ndarray, str, str, str]:
    """-> (unit vector, strategy used, image-vector role it must be compared with, text actually encoded)."""
    warn = warn or _default_warn
    return encode_planned(plan_query(text, strategy, settings, warn), warn, cache)


# ----------------------------------------------------------------------------- combined queries
def parse_weighted(raw: str) -> tuple[float, str]:
    """'2:golden retriever' -> (2.0, 'golden retriever'); no number before the first ':' -> (1.0, raw).

    (rclip's syntax.) A text that itself starts with a number and a colon ("12:30 at night") keeps it
    when given an explicit weight: "1:12:30 at night"."""
    raw = (raw or "").strip()
    head, colon, rest = raw.partition(":")
    if colon and head.strip():
        try:
            weight = float(head)
        except ValueError:
            return 1.0, raw
        if not np.isfinite(weight):
            raise QueryError(f"the weight of {raw!r} is not a finite number")
        return weight, rest.strip()
    return 1.0, raw


def compose(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """sum(weight * unit vector), normalised: terms added and subtracted in the encoder's space (as rclip does)."""
    if not vectors:
        raise QueryError("nothing to search for: give a text, an image or a term to add")
    total = np.zeros_like(np.asarray(vectors[0], np.float32))
    for vector, weight in zip(vectors, weights):
        vector = np.asarray(vector, np.float32)
        total += weight * vector / max(float(np.linalg.norm(vector)), 1e-12)
    norm = float(np.linalg.norm(total))
    if not norm > 1e-6:
        raise QueryError("the query's terms cancel out (their weighted sum is zero): change a weight or a term")
    return total / norm
