"""Nearest neighbours over the index: exact for small libraries, FAISS HNSW above a threshold.

Vectors are unit length, so inner product is cosine similarity. Exact search is a
matrix-vector product (numpy/BLAS); above ``ANN_THRESHOLD`` rows an HNSW graph
answers in well under a millisecond, and its recall@10 against exact search is
measured on the library itself and reported next to the results.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

ANN_THRESHOLD = 20_000  # rows; below this exact search takes a few milliseconds anyway
HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


@dataclass
class Hit:
    rank: int
    path: str
    score: float


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries @ vectors.T
    k = min(k, vectors.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    ids = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, ids, axis=1), ids


def build_hnsw(vectors: np.ndarray, ef_search: int = HNSW_EF_SEARCH):
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    index.hnsw.efSearch = ef_search
    return index


IVF_ABOVE = 300_000  # rows; an HNSW graph takes minutes to build past this on a laptop, IVF seconds


def build_ivf(vectors: np.ndarray, nprobe: int = 32):
    """Inverted lists: k-means cells (trained on a sample), search visits the ``nprobe`` nearest cells."""
    import faiss

    n, dim = vectors.shape
    cells = int(4 * np.sqrt(n))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).choice(n, min(n, 40 * cells), replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    index.nprobe = nprobe
    return index


def build_ann(vectors: np.ndarray):
    return build_ivf(vectors) if len(vectors) >= IVF_ABOVE else build_hnsw(vectors)


def ann_recall(index, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the exact top-k that the ANN index also returns."""
    _, exact = exact_search(vectors, queries, k)
    _, approx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


class VectorSearch:
    """Exact or ANN search over one matrix of unit vectors, chosen by size (or forced with ``mode``)."""

    def __init__(self, vectors: np.ndarray, mode: str = "auto", threshold: int = ANN_THRESHOLD):
        if mode not in ("auto", "exact", "ann"):
            raise ValueError("mode must be auto, exact or ann")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.mode = mode if mode != "auto" else ("ann" if len(vectors) >= threshold else "exact")
        self.index = build_ann(self.vectors) if self.mode == "ann" and len(vectors) else None
        self.recall_at_10 = None
        if self.index is not None:  # measured on 200 library vectors used as queries
            sample = np.random.default_rng(0).choice(len(vectors), min(200, len(vectors)), replace=False)
            self.recall_at_10 = ann_recall(self.index, self.vectors, self.vectors[sample], 10)

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self.vectors) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.index is None:
            return exact_search(self.vectors, queries, k)
        return self.index.search(np.ascontiguousarray(queries), min(k, len(self.vectors)))


class LibrarySearch:
    """Search an index folder by text (any strategy) or by example image."""

    def __init__(self, index_dir, models: str | None = None, device: str | None = None, dtype: str | None = None,
                 mode: str = "auto"):
        from .library import Store

        self.store = Store.load(index_dir)
        self.models, self.device, self.dtype = models, device, dtype
        self.searchers = {role: VectorSearch(self.store.vectors[role], mode) for role in self.store.encoders}

    def _hits(self, role: str, vector: np.ndarray, k: int) -> list[Hit]:
        scores, ids = self.searchers[role].search(vector, k)
        return [Hit(rank + 1, self.store.records[int(i)]["path"], float(s))
                for rank, (s, i) in enumerate(zip(scores[0], ids[0])) if i >= 0]

    def by_text(self, text: str, k: int = 10, strategy: str = "auto", warn=None) -> dict:
        from .encoders import QueryError, encode_query

        started = time.perf_counter()
        vector, used, role, encoded = encode_query(text, strategy, self.models, self.device, self.dtype, warn)
        if role not in self.searchers:
            raise QueryError(f"strategy {used!r} needs {role} image vectors, which this index lacks: "
                             f"re-run `index` with --chinese-clip")
        hits = self._hits(role, vector, k)
        return self._result(hits, started, role, strategy=used, query=text, encoded_text=encoded)

    def by_image(self, image, k: int = 10) -> dict:
        from .encoders import clip_encoder
        from .library import decode_image

        started = time.perf_counter()
        if not hasattr(image, "mode"):
            image = decode_image(image)
        vector = clip_encoder("clip", self.models, self.device, self.dtype).encode_images([image])[0]
        return self._result(self._hits("clip", vector, k), started, "clip", strategy="image")

    def _result(self, hits, started, role, **extra) -> dict:
        searcher = self.searchers[role]
        return {**extra, "search": searcher.mode, "ann_recall_at_10": searcher.recall_at_10,
                "library_size": len(self.store), "ms": round(1000 * (time.perf_counter() - started), 1),
                "hits": [hit.__dict__ for hit in hits]}
