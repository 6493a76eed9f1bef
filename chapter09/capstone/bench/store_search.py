"""The store and search parts of ``bench``: appends to the LanceDB store, and search from the store on disk.

1. Append: ``rows`` synthetic 512-d clustered unit vectors (``synthetic.ClusteredVectors``) go through
   the store API exactly as the indexer sends them: ``put`` in batches of the indexer's batch size
   (64 images), the store committing every ``store.COMMIT_ROWS`` rows, then ``finish`` (compaction,
   old versions deleted). Only the store calls are timed (vectors and paths are made beforehand,
   50k at a time). Reported: rows/s over the first and the last 50k rows and their ratio
   ("flatness": 1.0 means an append costs the same at 1M rows as at 0), the time to open the
   finished index (``Store.open`` + the images table), its size on disk, and the peak RSS of the
   appending process (a child process, so the figure is its own). The appends are timed twice: into
   the bench's folder on disk, and into tmpfs (``/dev/shm``, when it has room), where no page-cache
   writeback of the earlier rows competes with the later ones. LanceDB does not fsync, so on disk
   the last rows pay for the writeback of the first; in RAM what is left is the store's own cost.
2. Search from the store on disk at each size: one child process per (size, mode) opens the index
   and answers the timed queries, exactly as ``search``/``serve`` would (``store.open_vectors``):
   exact (FAISS flat over the float16 vectors) vs ANN (IVF-SQ8, built and tuned by ``index``
   beforehand; its build time is reported apart). Reported: p50/p95 per query, recall@10 of the
   ANN against the exact results on the same (held-out) queries, the time from opening the index
   to the first answer, and the child's peak RSS (Python, numpy, pyarrow, LanceDB and FAISS
   loaded; no model: the CLIP weights a real ``serve`` adds are the same at any library size).
   The stores for the smaller sizes are built through the same API; the largest size reuses the
   append benchmark's store when they match.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..store.database import EncoderIdentity, Store, open_vectors
from ..store.vectors import ANN_THRESHOLD, build_ann, exact_topk, recall_against, save_ann
from .synthetic import ClusteredVectors

INDEXER_BATCH = 64  # images per encoded batch in the indexer: the size of each put()
WINDOW = 50_000  # rows in the "first" and "last" windows of the append benchmark
ROLE = "clip"


def _identity(dim: int):
    return EncoderIdentity(ROLE, "bench/synthetic-clustered", "float16-synthetic", dim)


def _rows(start: int, vectors: np.ndarray) -> dict:
    n = len(vectors)
    return {"path": [f"photos/{(start + i) // 1000:04d}/img_{start + i:07d}.jpg" for i in range(n)],
            "size": np.full(n, 123_456, np.int64), "mtime_ns": np.full(n, 1_700_000_000_000_000_000, np.int64),
            "sha1": [f"{start + i:040x}" for i in range(n)], "width": np.full(n, 1600, np.int32),
            "height": np.full(n, 1200, np.int32), "vector": vectors}


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss can carry the parent's figure across a spawn)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def fill_store(folder: Path, rows: int, dim: int = 512, seed: int = 0, batch: int = INDEXER_BATCH,
               library: str = "/bench-library") -> dict:
    """Append ``rows`` rows in ``batch``-row puts; the timed part is the store API only."""
    mixture = ClusteredVectors(dim, seed=seed)
    windows = {"first": (0, min(WINDOW, rows)), "last": (max(0, rows - WINDOW), rows)}
    spent = {name: 0.0 for name in windows}
    put_s = 0.0
    with Store.open(folder, library=library, write=True) as store:
        table = store.images(_identity(dim))
        for block in range(0, rows, WINDOW):
            data = _rows(block, mixture.sample(min(WINDOW, rows - block)))
            for start in range(0, len(data["path"]), batch):
                part = {key: value[start:start + batch] for key, value in data.items()}
                t = time.perf_counter()
                table.put(part)
                dt = time.perf_counter() - t
                put_s += dt
                row = block + start
                for name, (lo, hi) in windows.items():
                    if lo <= row < hi:
                        spent[name] += dt
        t = time.perf_counter()
        store.commit()
        put_s += time.perf_counter() - t
        versions = table.version
        t = time.perf_counter()
        store.finish()
        finish_s = time.perf_counter() - t
    t = time.perf_counter()
    reopened = Store.open(folder)
    count = len(reopened.images(ROLE))
    open_s = time.perf_counter() - t
    rate = {name: (hi - lo) / max(spent[name], 1e-9) for name, (lo, hi) in windows.items()}
    return {"rows": count, "dim": dim, "put_batch": batch, "commit_rows": store.commit_rows,
            "vector_type": "float16", "rows_per_s_first_50k": round(rate["first"]),
            "rows_per_s_last_50k": round(rate["last"]), "flatness": round(rate["last"] / rate["first"], 3),
            "rows_per_s_overall": round(rows / max(put_s, 1e-9)), "versions_before_finish": versions,
            "finish_s": round(finish_s, 2), "open_s": round(open_s, 3),
            "size_mb": round(reopened.size_bytes() / 2 ** 20, 1), "peak_rss_mb": peak_rss_mb()}


def _ram_folder(needed_bytes: int) -> Path | None:
    """A fresh folder on /dev/shm (tmpfs) if it has room for ``needed_bytes``, else None."""
    shm = Path("/dev/shm")
    try:
        if shm.is_dir() and shutil.disk_usage(shm).free > needed_bytes:
            return shm / f"ch09-bench-store-{os.getpid()}"
    except OSError:
        pass
    return None


def _child(argv: list[str]) -> dict:
    """Run ``python -m chapter09.capstone.bench.store_search ARGV`` and return the JSON it prints last."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "chapter09.capstone.bench.store_search", *argv], capture_output=True,
                          text=True, env=env, cwd=Path(__file__).resolve().parents[3])
    if done.returncode != 0:
        raise RuntimeError(f"bench child {argv} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _search_child(index: str, mode: str, queries: str, out_ids: str) -> dict:
    """In the child: open the index as `search` does, answer each query alone, report times and RSS."""
    t = time.perf_counter()
    store = Store.open(index)
    searcher = open_vectors(store, ROLE, mode)
    searcher.search(np.load(queries)[:1], 10)  # the first answer: the index is ready
    ready_s = time.perf_counter() - t
    seconds, ids = [], []
    for q in np.load(queries):
        t = time.perf_counter()
        _, found = searcher.search(q[None], 10)
        seconds.append(time.perf_counter() - t)
        ids.append(found[0])
    np.save(out_ids, np.array(ids))
    p50, p95 = (round(float(np.percentile(seconds, p)) * 1000, 3) for p in (50, 95))
    return {"mode": searcher.mode, "ready_s": round(ready_s, 3), "p50_ms": p50, "p95_ms": p95,
            "nprobe": searcher.nprobe, "tuning_recall_at_10": searcher.recall_at_10,
            "built_here": searcher.built, "peak_rss_mb": peak_rss_mb()}


def _fill_child(index: str, rows: int, dim: int, seed: int) -> dict:
    return fill_store(Path(index), rows, dim, seed)


def _ann_child(index: str) -> dict:
    """Build and cache the ANN index as `index` does at the end of a run (timed, in its own process)."""
    store = Store.open(index)
    t = time.perf_counter()
    table = store.images(ROLE)
    ann = build_ann(table)
    save_ann(table, ann, store.ann_dir())
    return {"ann_build_s": round(time.perf_counter() - t, 1), "cells": ann.index.nlist, "nprobe": ann.nprobe,
            "tuning_recall_at_10": ann.recall_at_10, "build_peak_rss_mb": peak_rss_mb()}


def fp16_storage_agreement(n: int = 20_000, dim: int = 512, queries: int = 100, seed: int = 5) -> float:
    """recall@10 of exact search on float16-rounded vectors against exact search on the float32 originals."""
    mixture = ClusteredVectors(dim, seed=seed)
    vectors, q = mixture.sample(n), mixture.sample(queries)
    _, truth = exact_topk(vectors, q, 10)
    _, half = exact_topk(vectors.astype(np.float16).astype(np.float32), q, 10)
    return round(recall_against(half, truth), 4)


def run(folder: Path, append_rows: int = 1_000_000, sizes=(10_000, 100_000, 1_000_000), queries: int = 100,
        dim: int = 512, log=print) -> dict:
    """The store half of ``bench``: ``{"store": {...}, "store_search": [...], ...}`` (see the module doc)."""
    folder = Path(folder)
    report: dict = {"machine_load": os.getloadavg()}
    stores: dict[int, Path] = {}
    if append_rows:
        path = folder / f"append_{append_rows}"
        report["store"] = _child(["_fill", str(path), str(append_rows), str(dim), str(append_rows)])
        stores[append_rows] = path
        s = report["store"]
        log(f"store: {s['rows']:,} rows appended through the store API in puts of {s['put_batch']} "
            f"(commits every {s['commit_rows']} rows, {s['vector_type']} vectors)\n"
            f"  rows/s first 50k {s['rows_per_s_first_50k']:,}, last 50k {s['rows_per_s_last_50k']:,}: "
            f"flatness {s['flatness']:.2f}; finish (compact + clean) {s['finish_s']} s; "
            f"open {s['open_s']} s; {s['size_mb']} MB on disk; peak RSS {s['peak_rss_mb']} MB")
        ram = _ram_folder(append_rows * dim * 2 * 2)
        if ram is not None:  # the same appends where no disk writeback competes: the store's own cost
            try:
                report["store_in_ram"] = _child(["_fill", str(ram), str(append_rows), str(dim), str(append_rows)])
            finally:
                shutil.rmtree(ram, ignore_errors=True)
            r = report["store_in_ram"]
            log(f"  the same appends into {ram.parent} (tmpfs, RAM: no disk writeback): rows/s first 50k "
                f"{r['rows_per_s_first_50k']:,}, last 50k {r['rows_per_s_last_50k']:,}: flatness {r['flatness']:.2f}")
    report["fp16_storage_recall_at_10"] = fp16_storage_agreement(dim=dim)
    log(f"  float16 storage: exact top-10 agrees with float32 on {report['fp16_storage_recall_at_10']:.4f}")
    report["store_search"] = []
    if sizes:
        log(f"\nsearch from the store on disk ({queries} held-out queries, one per call; RSS: the search process):\n"
            f"  {'vectors':>9} | {'exact p50':>9} {'p95':>8} {'RSS MB':>7} | {'IVF-SQ8 p50':>11} {'p95':>8} "
            f"{'recall@10':>9} {'nprobe':>6} {'ready s':>7} {'RSS MB':>7} {'build s':>7}")
    for n in sizes:
        if n not in stores:
            path = folder / f"search_{n}"
            _child(["_fill", str(path), str(n), str(dim), str(n)])
            stores[n] = path
        mixture = ClusteredVectors(dim, seed=n)  # the library's blobs: queries land near library content,
        mixture.rng = np.random.default_rng([n, 1])  # but are fresh draws, never library rows
        qfile = folder / f"queries_{n}.npy"
        np.save(qfile, mixture.sample(queries))
        build = _child(["_ann", str(stores[n])])
        exact = _child(["_search", str(stores[n]), "exact", str(qfile), str(folder / f"exact_{n}.npy")])
        ann = _child(["_search", str(stores[n]), "ann", str(qfile), str(folder / f"ann_{n}.npy")])

        recall = recall_against(np.load(folder / f"ann_{n}.npy"), np.load(folder / f"exact_{n}.npy"))
        row = {"vectors": n, "exact": exact, "ann": {**ann, **build, "recall_at_10": round(recall, 3)},
               "search_auto_uses": "ann" if n >= ANN_THRESHOLD else "exact"}
        report["store_search"].append(row)
        a = row["ann"]
        log(f"  {n:>9,} | {exact['p50_ms']:>7.2f}ms {exact['p95_ms']:>6.2f}ms {exact['peak_rss_mb']:>7.0f} | "
            f"{a['p50_ms']:>9.3f}ms {a['p95_ms']:>6.3f}ms {a['recall_at_10']:>9.3f} {a['nprobe']:>6} "
            f"{a['ready_s']:>7.2f} {a['peak_rss_mb']:>7.0f} {a['ann_build_s']:>7.1f}   search uses {row['search_auto_uses']}")
    return report


if __name__ == "__main__":  # the child processes of run()
    import warnings

    warnings.simplefilter("ignore")
    command, *rest = sys.argv[1:]
    if command == "_fill":
        result = _fill_child(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
    elif command == "_ann":
        result = _ann_child(rest[0])
    elif command == "_search":
        result = _search_child(*rest)
    else:
        raise SystemExit(f"unknown bench.store_search command {command!r}")
    print(json.dumps(result))
