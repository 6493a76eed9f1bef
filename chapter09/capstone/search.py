"""Nearest neighbours over the index: exact for small libraries, FAISS IVF-Flat above a threshold.

Vectors are unit length, so inner product is cosine similarity. Exact search is a
matrix-vector product (numpy/BLAS): a few milliseconds up to tens of thousands of rows,
but it grows linearly (`bench`: ~0.1-0.3 s per query at 1M rows on 2 cores). Above
``ANN_THRESHOLD`` rows an inverted-file index (IVF-Flat: k-means cells, trained on a
sample) answers by scanning only the ``nprobe`` cells nearest the query. ``nprobe`` is
not a guess: it is doubled until recall@10 against exact search reaches
``IVF_TARGET_RECALL`` on library vectors, then doubled once more as a margin for new
queries, and the recall measured at that setting is shown with every result. The built index is cached next to the store (``ann_<role>.faiss``) and rebuilt
only when the store changes.

HNSW was tried first and dropped: on 2 cores its graph took 137 s to build at 100k
vectors, against seconds for IVF, and it gave no better recall at equal latency.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..clip import clip_encoder
from ..images import as_rgb
from ..models import Settings
from ..retrieval import top_k_scores

ANN_THRESHOLD = 50_000  # rows; below this exact search costs a few ms, and no index is worth building
IVF_TARGET_RECALL = 0.95  # recall@10 against exact search that nprobe is tuned to reach (then doubled)
IVF_TRAIN_PER_CELL = 40  # k-means training sample: 40 vectors per cell (FAISS warns below 39)
IVF_KMEANS_ITERATIONS = 10


@dataclass
class Hit:
    rank: int
    path: str
    score: float


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product; queries in chunks so a (queries x rows) score matrix never gets huge."""
    all_scores, all_ids = [], []
    for start in range(0, len(queries), chunk):
        scores, ids = top_k_scores(queries[start:start + chunk] @ vectors.T, k)
        all_scores.append(scores)
        all_ids.append(ids)
    return np.concatenate(all_scores), np.concatenate(all_ids)


def ivf_cells(n: int) -> int:
    """About sqrt(n) cells: cell scans and centroid scans then cost about the same."""
    return int(min(max(16, round(np.sqrt(n))), max(1, n // IVF_TRAIN_PER_CELL)))


def build_ivf(vectors: np.ndarray, cells: int | None = None, seed: int = 0):
    """IVF-Flat over unit vectors: spherical k-means cells trained on a sample, every vector stored exactly."""
    import faiss

    n, dim = vectors.shape
    cells = cells or ivf_cells(n)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = IVF_KMEANS_ITERATIONS
    index.cp.spherical = True
    index.cp.seed = seed
    sample = vectors[np.random.default_rng(seed).choice(n, min(n, IVF_TRAIN_PER_CELL * cells), replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def recall_against(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of the exact top-k that the ANN index also returns."""
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx_ids, exact_ids)]))


def tune_nprobe(index, vectors: np.ndarray, queries: np.ndarray, target: float = IVF_TARGET_RECALL,
                k: int = 10, margin: int = 2) -> tuple[int, float]:
    """``margin`` x the smallest power-of-two ``nprobe`` whose recall@k on ``queries`` reaches ``target``.

    The margin is there because new queries are not the tuning queries: held-out recall at the
    bare minimum nprobe came out a few points below the target in `bench`. Sets nprobe on the
    index and returns it with the recall measured at that setting.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    _, exact = exact_search(vectors, queries, k)

    def recall_at(nprobe: int) -> float:
        index.nprobe = nprobe
        return recall_against(index.search(queries, k)[1], exact)

    nprobe = 1
    while recall_at(nprobe) < target and nprobe < index.nlist:
        nprobe = min(2 * nprobe, index.nlist)
    nprobe = min(margin * nprobe, index.nlist)
    return nprobe, recall_at(nprobe)


class VectorSearch:
    """Exact or IVF search over one matrix of unit vectors, chosen by size (or forced with ``mode``).

    ``cache``: a path prefix for the built index (``.faiss``) and its facts (``.json``), reused
    while ``fingerprint`` (anything that changes when the vectors do) stays the same.
    """

    def __init__(self, vectors: np.ndarray, mode: str = "auto", threshold: int = ANN_THRESHOLD,
                 cache: Path | None = None, fingerprint: str | None = None):
        if mode not in ("auto", "exact", "ann"):
            raise ValueError("mode must be auto, exact or ann")
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.mode = mode if mode != "auto" else ("ann" if len(vectors) >= threshold else "exact")
        self.index, self.recall_at_10, self.nprobe = None, None, None
        if self.mode == "ann" and len(vectors):
            self._load_or_build(cache, fingerprint)

    def _load_or_build(self, cache: Path | None, fingerprint: str | None) -> None:
        import faiss

        facts_path = cache.with_suffix(".json") if cache else None
        if cache and fingerprint and facts_path.exists() and cache.with_suffix(".faiss").exists():
            facts = json.loads(facts_path.read_text())
            if facts.get("fingerprint") == fingerprint:
                self.index = faiss.read_index(str(cache.with_suffix(".faiss")))
                self.nprobe, self.recall_at_10 = facts["nprobe"], facts["recall_at_10"]
                self.index.nprobe = self.nprobe
                return
        self.index = build_ivf(self.vectors)
        # tuned on 200 library vectors used as queries; the recall shown with results is this one
        sample = np.random.default_rng(0).choice(len(self.vectors), min(200, len(self.vectors)), replace=False)
        self.nprobe, self.recall_at_10 = tune_nprobe(self.index, self.vectors, self.vectors[sample])
        if cache and fingerprint:
            try:
                faiss.write_index(self.index, str(cache.with_suffix(".faiss")))
                facts_path.write_text(json.dumps({"fingerprint": fingerprint, "nprobe": self.nprobe,
                                                  "recall_at_10": self.recall_at_10, "rows": len(self.vectors)}))
            except OSError:  # a read-only index folder: search still works, the index is rebuilt next time
                pass

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if len(self.vectors) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if self.index is None:
            return exact_search(self.vectors, queries, k)
        return self.index.search(np.ascontiguousarray(queries), min(k, len(self.vectors)))


class LibrarySearch:
    """Search an index folder by text (any strategy) or by example image."""

    def __init__(self, index_dir, settings: Settings | None = None, mode: str = "auto"):
        from .indexer import STORE_NAME, Store

        self.store = Store.load(index_dir)
        self.settings = settings or Settings()
        stat = (Path(index_dir) / STORE_NAME).stat()
        fingerprint = f"{stat.st_size}-{stat.st_mtime_ns}"
        self.searchers = {role: VectorSearch(self.store.vectors[role], mode, cache=Path(index_dir) / f"ann_{role}",
                                             fingerprint=fingerprint)
                          for role in self.store.encoders}

    def _hits(self, role: str, vector: np.ndarray, k: int) -> list[Hit]:
        scores, ids = self.searchers[role].search(vector, k)
        return [Hit(rank + 1, self.store.records[int(i)]["path"], float(s))
                for rank, (s, i) in enumerate(zip(scores[0], ids[0])) if i >= 0]

    def by_text(self, text: str, k: int = 10, strategy: str = "auto", warn=None) -> dict:
        from .queries import QueryError, encode_query

        started = time.perf_counter()
        vector, used, role, encoded = encode_query(text, strategy, self.settings, warn)
        if role not in self.searchers:
            raise QueryError(f"strategy {used!r} needs {role} image vectors, which this index lacks: "
                             f"re-run `index` with --chinese-clip")
        hits = self._hits(role, vector, k)
        return self._result(hits, started, role, strategy=used, query=text, encoded_text=encoded)

    def by_image(self, image, k: int = 10) -> dict:
        started = time.perf_counter()
        vector = clip_encoder("clip", self.settings).encode_images([as_rgb(image)])[0]
        return self._result(self._hits("clip", vector, k), started, "clip", strategy="image")

    def _result(self, hits, started, role, **extra) -> dict:
        searcher = self.searchers[role]
        return {**extra, "search": searcher.mode, "ann_nprobe": searcher.nprobe, "ann_recall_at_10": searcher.recall_at_10,
                "library_size": len(self.store), "ms": round(1000 * (time.perf_counter() - started), 1),
                "hits": [hit.__dict__ for hit in hits]}
