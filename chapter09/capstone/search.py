"""Text and image search over an index; every hit carries the captions the index stores.

Vectors are unit length, so inner product is cosine similarity. The vector search itself is
``vectors`` (exact below ``vectors.ANN_THRESHOLD`` rows, the cached IVF-SQ8 index that ``index``
built above it), reached through ``store.open_vectors``; when the ANN index answers, the recall@10
it was tuned to is shown with every result. How a text becomes a vector is ``queries``.
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
    indexed: dict = field(default_factory=dict)  # the file as the index saw it: sha1, size, mtime_ns


class LibrarySearch:
    """Search an index by text (any strategy) or by example image; hits carry the stored captions."""

    def __init__(self, index_dir, settings: Settings | None = None, mode: str = "auto"):
        from .library_precision import query_settings
        from .store import Store, open_vectors

        self.store = Store.open(index_dir)
        self.settings = settings or Settings()
        if not self.store.roles:
            raise FileNotFoundError(f"index {index_dir} holds no images yet; run `index` first")
        self.searchers = {role: open_vectors(self.store, role, mode) for role in self.store.roles}
        self.query_settings = query_settings(self.store, self.settings)  # queries at the images' precision

    def _hits(self, role: str, vector: np.ndarray, k: int) -> list[Hit]:
        searcher = self.searchers[role]
        scores, ids = searcher.search(vector, k)
        found = [(rank, int(i), float(s)) for rank, (s, i) in enumerate(zip(scores[0], ids[0])) if i >= 0]
        hits = [Hit(rank + 1, searcher.path(i), score) for rank, i, score in found]
        captions = self.store.captions([h.path for h in hits]) if hits else {}
        # a vector index's ids are offsets into the table version it was opened at, which this store reads
        rows = self.store.images(role).rows_at([i for _, i, _ in found], ("path", "sha1", "size", "mtime_ns"))
        for hit, row in zip(hits, rows):
            hit.captions = captions.get(hit.path, {})
            if row is not None and row.pop("path") == hit.path:
                hit.indexed = row
        return hits

    def by_text(self, text: str, k: int = 10, strategy: str = "auto", warn=None) -> dict:
        from .queries import QueryError, encode_planned, plan_query

        plan = plan_query(text, strategy, self.query_settings, warn)  # loads its models: the clock times the search
        if plan.strategy.role not in self.searchers:
            raise QueryError(f"strategy {plan.strategy.name!r} needs {plan.strategy.role} image vectors, which this "
                             f"index lacks: re-run `index` with --chinese-clip")
        started = time.perf_counter()
        vector, used, role, encoded = encode_planned(plan, warn)
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
