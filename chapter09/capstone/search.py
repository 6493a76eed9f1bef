"""Nearest neighbours over the index: exact for small libraries, an IVF index above a threshold.

Vectors are unit length, so inner product is cosine similarity. ``LibrarySearch`` searches
the LanceDB store on disk (``store.open_vectors``): exact search (FAISS flat over the stored
float16 vectors) below ``ANN_THRESHOLD`` rows, and above it the IVF-SQ8 index that ``index``
built, tuned and cached beside the tables (``nprobe`` doubled until recall@10 against exact
search reaches ``IVF_TARGET_RECALL`` on library vectors, each left out of its own results, then
doubled once more as a margin); the recall measured at that setting is shown with every result.
Opening a 1M-row index for search reads the 0.5 GB IVF-SQ8 index and the paths, never the
vectors (see ``bench``: ready time, latency, recall and peak RSS at 10k / 100k / 1M).

HNSW was tried first and dropped: on 2 cores its graph took minutes to build at 100k vectors,
against seconds for IVF, and it gave no better recall at equal latency (capstone README).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..clip import clip_encoder
from ..images import as_rgb
from ..models import Settings


@dataclass
class Hit:
    rank: int
    path: str
    score: float
    captions: dict = field(default_factory=dict)  # {"en": ..., "zh": ...} once `caption --index` ran


def _load_query_models(text: str, strategy: str, settings: Settings) -> None:
    """Load (once per process) the models a query needs, so a search's time is never a model's first load."""
    from .queries import encoder_identity, multilingual_encoder, pick_strategy

    used = pick_strategy(strategy, text, settings)
    if used == "multilingual":
        multilingual_encoder(settings)
    encoder_identity(used, text, settings)  # loads the CLIP / Chinese-CLIP encoder and any translator


class LibrarySearch:
    """Search an index by text (any strategy) or by example image; hits carry the stored captions."""

    def __init__(self, index_dir, settings: Settings | None = None, mode: str = "auto"):
        from .store import Store, open_vectors

        self.store = Store.open(index_dir)
        self.settings = settings or Settings()
        if not self.store.roles:
            raise FileNotFoundError(f"index {index_dir} holds no images yet; run `index` first")
        self.searchers = {role: open_vectors(self.store, role, mode) for role in self.store.roles}
        self.query_settings = self._query_settings()

    def _query_settings(self) -> Settings:
        """Queries are encoded at the precision the image vectors were (unless the caller chose one)."""
        precision = self.store.identity(self.store.roles[0]).precision.split(":")[0]
        if self.settings.precision is None and precision in ("fp32", "bf16", "int8"):
            return self.settings.with_(precision=precision)
        return self.settings

    def _hits(self, role: str, vector: np.ndarray, k: int) -> list[Hit]:
        searcher = self.searchers[role]
        scores, ids = searcher.search(vector, k)
        hits = [Hit(rank + 1, searcher.path(i), float(s))
                for rank, (s, i) in enumerate(zip(scores[0], ids[0])) if i >= 0]
        captions = self.store.captions([h.path for h in hits]) if hits else {}
        for hit in hits:
            hit.captions = {lang: text for lang, text in captions.get(hit.path, {}).items() if lang != "sha1"}
        return hits

    def by_text(self, text: str, k: int = 10, strategy: str = "auto", warn=None) -> dict:
        from .queries import QueryError, encode_query

        _load_query_models(text, strategy, self.query_settings)  # before the clock: the time shown is the search
        started = time.perf_counter()
        vector, used, role, encoded = encode_query(text, strategy, self.query_settings, warn)
        if role not in self.searchers:
            raise QueryError(f"strategy {used!r} needs {role} image vectors, which this index lacks: "
                             f"re-run `index` with --chinese-clip")
        hits = self._hits(role, vector, k)
        return self._result(hits, started, role, strategy=used, query=text, encoded_text=encoded)

    def by_image(self, image, k: int = 10) -> dict:
        encoder = clip_encoder("clip", self.query_settings)  # loaded before the clock starts
        started = time.perf_counter()
        vector = encoder.encode_images([as_rgb(image)])[0]
        return self._result(self._hits("clip", vector, k), started, "clip", strategy="image")

    def _result(self, hits, started, role, **extra) -> dict:
        searcher = self.searchers[role]
        return {**extra, "search": searcher.mode, "ann_nprobe": searcher.nprobe, "ann_recall_at_10": searcher.recall_at_10,
                "library_size": len(searcher), "ms": round(1000 * (time.perf_counter() - started), 1),
                "hits": [hit.__dict__ for hit in hits]}
