"""Search over one table's vectors: exact (FAISS flat on float16 codes) or ANN (FAISS IVF-SQ8), built, tuned and cached.

Below ``ANN_THRESHOLD`` rows exact search costs a few ms and needs no index. Above it an IVF-SQ8
index (1 byte per dimension) is built from the vectors in two streaming passes (a k-means sample,
then every row), ``nprobe`` is doubled until recall@10 against exact search reaches
``IVF_TARGET_RECALL`` on library vectors (each left out of its own results), then doubled once more
as a margin, and the index is cached in a folder keyed by the source's fingerprint (table and
version), so opening a large index for search trains nothing and reads no vectors. Why FAISS and not
LanceDB's own IVF index, and what each costs: the capstone README.

This module knows nothing of the store: it works on arrays, or on a ``VectorSource`` handed to it
(an images table is one), and the store calls it, never the other way round.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from ...retrieval import top_k_scores
from ..errors import StoreError

ANN_THRESHOLD = 50_000  # rows; below this exact search costs a few ms and no index is worth building
IVF_TARGET_RECALL = 0.95  # recall@10 against exact search that nprobe is tuned to reach (then doubled)
IVF_TRAIN_PER_CELL = 40  # k-means training sample: 40 vectors per cell (FAISS warns below 39)
IVF_KMEANS_ITERATIONS = 10
TUNING_QUERIES = 200
FILTER_EXACT_ROWS = 4_096  # matching rows up to which a filtered ANN search reads their vectors and is exact
FILTER_PROBE_MARGIN = 2.0  # filtered IVF: matching rows probed / rows the unfiltered search reads (bench.filtered)


class VectorSource(Protocol):
    """The vectors of one table, read in batches: what an images table hands to this module."""

    name: str  # a file-name-safe name, the stem of the cached index files

    @property
    def dim(self) -> int: ...

    def __len__(self) -> int: ...

    def fingerprint(self) -> str:
        """Changes whenever the rows may have changed (a cached index is valid for one fingerprint)."""

    def vector_batches(self) -> Iterator[tuple]:
        """(paths as an arrow string array, (rows, dim) float16 vectors), in one stable order."""


def vectors_of(column) -> np.ndarray:
    """A FixedSizeList<float16> arrow column -> (rows, dim) float16 numpy array."""
    import pyarrow as pa  # heavy: pyarrow

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, dim) if len(flat) else np.zeros((0, dim), np.float16)


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 64):
    """Top-k by inner product; queries in chunks so a (queries x rows) matrix never gets huge."""
    found = [top_k_scores(queries[start:start + chunk] @ vectors.T, k) for start in range(0, len(queries), chunk)]
    return np.concatenate([scores for scores, _ in found]), np.concatenate([ids for _, ids in found])


def recall_against(approx_ids, exact_ids) -> float:
    """Mean fraction of the exact top-k that the approximate search also returns."""
    return float(np.mean([len(set(map(int, a)) & set(map(int, e))) / max(len(e), 1)
                          for a, e in zip(approx_ids, exact_ids)]))


def ivf_cells(n: int) -> int:
    """About sqrt(n) cells: cell scans and centroid scans then cost about the same."""
    return int(min(max(16, round(np.sqrt(n))), max(1, n // IVF_TRAIN_PER_CELL)))


class VectorIndex:
    """Search over one table: ``mode`` "exact" (FAISS flat on float16 codes) or "ann" (IVF-SQ8).

    ``paths[i]`` is the path of FAISS id ``i``; ``nprobe`` / ``recall_at_10`` are None for exact.
    """

    def __init__(self, index, paths, mode: str, rows: int, nprobe=None, recall_at_10=None, built: bool = False,
                 open_s: float = 0.0):
        self.index, self.paths, self.mode, self.rows = index, paths, mode, rows
        self.nprobe, self.recall_at_10, self.built, self.open_s = nprobe, recall_at_10, built, open_s

    def __len__(self) -> int:
        return self.rows

    def path(self, i: int) -> str:
        return self.paths[int(i)].as_py() if hasattr(self.paths, "type") else self.paths[int(i)]

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if self.rows == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return self.index.search(queries, min(k, self.rows))

    def search_filtered(self, queries: np.ndarray, k: int, mask: np.ndarray, fetch=None) -> tuple:
        """The top-k among the rows ``mask`` keeps (a bool per id): never a post-filter of the unfiltered top-k.

        Exact index: a FAISS selector over the flat float16 codes (exact). ANN index: when at most
        ``FILTER_EXACT_ROWS`` rows match and ``fetch`` (ids -> their stored float16 vectors) is given,
        exact search over those rows; otherwise IVF-SQ8 restricted by the selector, with ``nprobe`` raised
        as the selectivity falls (``filtered_nprobe``), widened until min(k, matching) rows come back.
        -> (scores, ids, facts): facts says how (``how``), rows matching and the nprobe used.
        """
        import faiss  # heavy: faiss

        queries = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        mask = np.asarray(mask, bool)
        if len(mask) != self.rows:
            raise StoreError(f"filter mask of {len(mask)} rows for an index of {self.rows}: the table changed "
                             "since the search opened; search again")
        ids = np.flatnonzero(mask)
        matching, want = len(ids), min(k, len(ids))
        facts = {"how": "exact", "matching": matching, "nprobe": None}
        if want == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64), facts
        if self.mode == "ann" and fetch is not None and matching <= FILTER_EXACT_ROWS:
            facts["how"] = "exact over the matching rows"
            scores, order = exact_topk(np.asarray(fetch(ids), np.float32), queries, want)
            return scores, ids[order], facts
        bitmap = np.packbits(mask, bitorder="little")  # FAISS reads bit i of byte i // 8, lowest bit first
        selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        if self.mode != "ann":
            scores, found = self.index.search(queries, want, params=faiss.SearchParameters(sel=selector))
            return scores, found, facts
        nprobe = self.filtered_nprobe(queries, mask)
        while True:  # per-call parameters: the shared index's own nprobe is never touched (threads)
            scores, found = self.index.search(queries, want, params=faiss.SearchParametersIVF(sel=selector,
                                                                                             nprobe=nprobe))
            if (found >= 0).sum(axis=1).min() >= want or nprobe >= self.index.nlist:
                break
            nprobe = min(2 * nprobe, self.index.nlist)  # the probed cells held fewer than k matching rows
        facts.update(how="ann", nprobe=nprobe)
        return scores, found, facts

    def cells(self) -> np.ndarray:
        """The IVF cell of every id (read once from the inverted lists, 4 bytes a row)."""
        import faiss  # heavy: faiss

        if getattr(self, "_cells", None) is None:
            invlists, cell = self.index.invlists, np.zeros(self.rows, np.int32)
            for number in range(self.index.nlist):
                size = invlists.list_size(number)
                if size:
                    cell[faiss.rev_swig_ptr(invlists.get_ids(number), size)] = number
            self._cells = cell
        return self._cells

    def filtered_nprobe(self, queries: np.ndarray, mask: np.ndarray) -> int:
        """Cells to probe so that the probed cells hold about as many *matching* rows as the unfiltered search
        reads rows (nprobe x rows per cell), times ``FILTER_PROBE_MARGIN``: the cells are taken in the query's
        centroid order and the matching rows counted per cell, so a filter that keeps whole regions of the
        space (one folder of one trip) probes as far as those regions, and a uniform one about nprobe /
        selectivity cells. The most any query of ``queries`` needs."""
        cells = self.index.nlist
        per_cell = np.bincount(self.cells()[mask], minlength=cells)
        needed = FILTER_PROBE_MARGIN * (self.nprobe or 1) * self.rows / cells
        _, order = self.index.quantizer.search(queries, cells)
        reach = [int(np.searchsorted(np.cumsum(per_cell[row]), min(needed, per_cell.sum()))) + 1 for row in order]
        return int(min(cells, max(self.nprobe or 1, *reach)))


def _flat_fp16(dim: int):
    import faiss  # heavy: faiss

    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


def open_exact(source: VectorSource) -> VectorIndex:
    """Every vector in a FAISS flat index of float16 codes (exact up to the stored float16)."""
    import pyarrow as pa  # heavy: pyarrow

    started = time.perf_counter()
    index, paths = _flat_fp16(source.dim), []
    for batch_paths, vectors in source.vector_batches():
        paths.append(batch_paths)
        index.add(vectors.astype(np.float32))
    paths = pa.concat_arrays(paths) if paths else pa.array([], pa.string())
    return VectorIndex(index, paths, "exact", index.ntotal, open_s=time.perf_counter() - started)


def build_ann(source: VectorSource, seed: int = 0, cells: int | None = None, target: float = IVF_TARGET_RECALL,
              margin: int = 2) -> VectorIndex:
    """IVF-SQ8 over the source in two streaming passes (sample, then add), nprobe tuned against exact search.

    Memory: the index (1 byte per dimension per row) plus one batch; no full copy of the vectors.
    """
    import faiss  # heavy: faiss, pyarrow
    import pyarrow as pa

    started = time.perf_counter()
    n, dim = len(source), source.dim
    if n == 0:
        raise StoreError(f"table {source.name} is empty: nothing to build an ANN index over")
    cells = cells or ivf_cells(n)
    rng = np.random.default_rng(seed)
    train_ids = np.sort(rng.choice(n, min(n, IVF_TRAIN_PER_CELL * cells), replace=False))
    query_ids = np.sort(rng.choice(n, min(n, TUNING_QUERIES), replace=False))
    train, queries, query_paths, offset = [], [], [], 0
    for batch_paths, vec in source.vector_batches():  # pass 1: the k-means sample and the tuning queries
        lo, hi = np.searchsorted(train_ids, [offset, offset + len(vec)])
        train.append(vec[train_ids[lo:hi] - offset])
        lo, hi = np.searchsorted(query_ids, [offset, offset + len(vec)])
        queries.append(vec[query_ids[lo:hi] - offset])
        query_paths.extend(batch_paths.take(query_ids[lo:hi] - offset).to_pylist())
        offset += len(vec)
    train, queries = np.concatenate(train).astype(np.float32), np.concatenate(queries).astype(np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, cells, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter, index.cp.spherical, index.cp.seed = IVF_KMEANS_ITERATIONS, True, seed
    index.train(train)
    del train
    # tuning queries are library rows, each left out of its own results: a query *near* library
    # content, as real ones are, without the free hit on itself that would inflate the recall
    k = min(10, n - 1)
    query_row = {p: j for j, p in enumerate(query_paths)}
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    paths, offset, self_id = [], 0, np.full(len(queries), -1, np.int64)
    for batch_paths, vec in source.vector_batches():  # pass 2: add, and exact top-k of the tuning queries
        vec = vec.astype(np.float32)
        index.add(vec)
        paths.append(batch_paths)
        scores = queries @ vec.T
        for i, p in enumerate(batch_paths.to_pylist()):
            if p in query_row:
                scores[query_row[p], i] = -np.inf
                self_id[query_row[p]] = offset + i
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.arange(offset, offset + len(vec))[None].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
        offset += len(vec)
    if offset != n:
        raise StoreError(f"table {source.name} changed while its ANN index was built ({n} -> {offset} rows); retry")
    paths = pa.concat_arrays(paths)

    def recall_at(nprobe: int) -> float:
        index.nprobe = nprobe
        found = index.search(queries, k + 1)[1]
        return recall_against([[f for f in row if f != own][:k] for row, own in zip(found, self_id)], best_i)

    nprobe = 1
    while recall_at(nprobe) < target and nprobe < cells:
        nprobe = min(2 * nprobe, cells)
    nprobe = min(margin * nprobe, cells)
    recall = recall_at(nprobe)
    return VectorIndex(index, paths, "ann", n, nprobe, round(recall, 4), built=True,
                       open_s=time.perf_counter() - started)


def save_ann(source: VectorSource, ann: VectorIndex, folder: Path) -> None:
    """index (.faiss), paths (.paths, arrow IPC) and facts (.json, written last: it validates the other two)."""
    import faiss  # heavy: faiss, pyarrow
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / source.name
    tmp_index, tmp_paths = stem.with_suffix(".faiss.tmp"), stem.with_suffix(".paths.tmp")
    faiss.write_index(ann.index, str(tmp_index))
    with pa.OSFile(str(tmp_paths), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("path", pa.string())])) as out:
        out.write_table(pa.table({"path": ann.paths}))
    os.replace(tmp_index, stem.with_suffix(".faiss"))
    os.replace(tmp_paths, stem.with_suffix(".paths"))
    facts = {"fingerprint": source.fingerprint(), "rows": ann.rows, "nprobe": ann.nprobe,
             "recall_at_10": ann.recall_at_10, "cells": ann.index.nlist, "kind": "IVF-SQ8",
             "target_recall": IVF_TARGET_RECALL, "built": time.time()}
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(facts))
    os.replace(tmp, stem.with_suffix(".json"))


def load_ann(source: VectorSource, folder: Path) -> VectorIndex | None:
    """The cached ANN index if it was built from this very fingerprint (table version), else None."""
    import faiss  # heavy: faiss, pyarrow
    import pyarrow as pa

    started = time.perf_counter()
    stem = folder / source.name
    try:
        facts = json.loads(stem.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    if facts.get("fingerprint") != source.fingerprint():
        return None
    try:
        index = faiss.read_index(str(stem.with_suffix(".faiss")))
        paths = pa.ipc.open_file(pa.memory_map(str(stem.with_suffix(".paths")))).read_all().column("path")
    except (OSError, RuntimeError, pa.ArrowInvalid):
        return None
    paths = paths.combine_chunks() if paths.num_chunks != 1 else paths.chunk(0)
    if index.ntotal != facts["rows"] or len(paths) != facts["rows"]:
        return None
    index.nprobe = facts["nprobe"]
    return VectorIndex(index, paths, "ann", facts["rows"], facts["nprobe"], facts["recall_at_10"],
                       open_s=time.perf_counter() - started)
