"""Nearest neighbours over the index: exact for small libraries, an IVF index above a threshold.

Vectors are unit length, so inner product is cosine similarity. ``LibrarySearch`` searches
the LanceDB store on disk (``store.open_vectors``): exact search (FAISS flat over the stored
float16 vectors) below ``ANN_THRESHOLD`` rows, and above it the IVF-SQ8 index that ``index``
built, tuned and cached beside the tables (``nprobe`` doubled until recall@10 against exact
search reaches ``IVF_TARGET_RECALL`` on library vectors, each left out of its own results, then
doubled once more as a margin); the recall measured at that setting is shown with every result.
Opening a 1M-row index for search reads the 0.5 GB IVF-SQ8 index and the paths, never the
vectors (see ``bench``: ready time, latency, recall and peak RSS at 10k / 100k / 1M).

The in-memory helpers below (``exact_search``, ``build_ivf`` IVF-Flat, ``tune_nprobe``) serve
``bench``'s in-memory comparison. HNSW was tried first and dropped: on 2 cores its graph took
137 s to build at 100k vectors, against seconds for IVF, and it gave no better recall at equal latency.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..clip import clip_encoder
from ..images import as_rgb
from ..models import Settings
from ..retrieval import top_k_scores
from .store import ANN_THRESHOLD, IVF_KMEANS_ITERATIONS, IVF_TARGET_RECALL, IVF_TRAIN_PER_CELL  # noqa: F401


@dataclass
class Hit:
    rank: int
    path: str
    score: float
    captions: dict = field(default_factory=dict)  # {"en": ..., "zh": ...} once `caption --index` ran


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
