"""Filtered vector search, measured: recall@10 against exact filtered search, and latency, at 1M rows.

The search code under test is ``vectors.VectorIndex.search_filtered`` (what ``search --folder ...``
and every other filter run): the IVF-SQ8 index that ``index`` builds above ``vectors.ANN_THRESHOLD``
rows, built and tuned here by ``vectors.build_ann`` exactly as ``index`` does, restricted to the
matching rows by a FAISS selector with nprobe raised as the selectivity falls. The reference is exact
search (numpy, float32 over the stored float16 vectors) over the matching rows only.

Filters: random masks keeping 1 % and 10 % of the rows (a filter unrelated to what the photos show:
a date range, a camera), a random 0.1 % (few rows: the exact-over-matching-rows path, its vectors read
from memory here where ``search`` reads them from the table), and a *correlated* 1 %: whole clusters
of the mixture (a folder of one trip: the matching rows sit in a few cells, usually not the query's).
Vectors and queries are ``synthetic.ClusteredVectors`` draws (queries are fresh draws, never rows).
One query per call, as ``search`` sends them.

    python -m chapter09.capstone.bench.filtered [--rows 1000000] [--queries 100] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from ... import cpu
from ..store.vectors import ANN_THRESHOLD, build_ann, exact_topk, recall_against
from .synthetic import ClusteredVectors

K = 10
TARGET_RECALL = 0.95


class ArraySource:
    """An in-memory ``vectors.VectorSource``: (rows, dim) float16 vectors and made-up paths."""

    name = "bench_filtered"

    def __init__(self, vectors: np.ndarray, batch: int = 8192):
        self.vectors, self.batch = vectors, batch

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.vectors)

    def fingerprint(self) -> str:
        return f"{self.name}:{len(self)}"

    def vector_batches(self):
        import pyarrow as pa  # heavy: pyarrow

        for start in range(0, len(self), self.batch):
            end = min(len(self), start + self.batch)
            yield pa.array([f"p/{i:07d}.jpg" for i in range(start, end)]), self.vectors[start:end]


def clustered_rows(rows: int, dim: int, seed: int, clusters: int = 1000, block: int = 100_000):
    """(float16 unit vectors, cluster of each row): ``ClusteredVectors``' mixture, keeping the labels."""
    mixture = ClusteredVectors(dim, clusters=clusters, seed=seed)
    vectors, labels = np.empty((rows, dim), np.float16), np.empty(rows, np.int32)
    rng = np.random.default_rng(seed + 1)
    for start in range(0, rows, block):
        m = min(block, rows - start)
        label = rng.integers(0, clusters, m)
        chunk = mixture.centres[label] + mixture.spread * rng.standard_normal((m, dim), dtype=np.float32)
        vectors[start:start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        labels[start:start + m] = label
    return vectors, labels, mixture


def masks(labels: np.ndarray, seed: int, clusters: int = 1000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 2)
    n = len(labels)
    chosen = rng.choice(clusters, max(1, clusters // 100), replace=False)
    return {"random 1%": rng.random(n) < 0.01, "random 10%": rng.random(n) < 0.10,
            "random 0.1%": rng.random(n) < 0.001, "clusters 1%": np.isin(labels, chosen)}


def exact_filtered(vectors: np.ndarray, queries: np.ndarray, mask: np.ndarray, k: int = K) -> np.ndarray:
    ids = np.flatnonzero(mask)
    _, order = exact_topk(vectors[ids].astype(np.float32), queries, min(k, len(ids)))
    return ids[order]


def run(rows: int = 1_000_000, dim: int = 512, queries: int = 100, seed: int = 0, log=print) -> dict:
    """Build and tune the IVF-SQ8 index over ``rows`` clustered vectors, then per filter: recall@10 of the
    filtered search against exact filtered search, p50/p95 per query, the nprobe and how it searched."""
    started = time.perf_counter()
    vectors, labels, mixture = clustered_rows(rows, dim, seed)
    made_s = time.perf_counter() - started
    started = time.perf_counter()
    ann = build_ann(ArraySource(vectors))
    build_s = time.perf_counter() - started
    qs = mixture.sample(queries)
    report = {"rows": rows, "dim": dim, "queries": queries, "k": K, "cells": ann.index.nlist,
              "unfiltered_nprobe": ann.nprobe, "unfiltered_recall_at_10": ann.recall_at_10,
              "build_s": round(build_s, 1), "vectors_s": round(made_s, 1), "target_recall": TARGET_RECALL,
              "ann_threshold": ANN_THRESHOLD, "filters": {}}
    log(f"filtered search over {rows:,} x {dim} clustered vectors: IVF-SQ8 {ann.index.nlist} cells, "
        f"unfiltered nprobe {ann.nprobe} (recall@10 {ann.recall_at_10}), built in {build_s:.1f} s; "
        f"{queries} fresh queries, one per call")
    log(f"  {'filter':<12} {'matching':>9} {'how':<30} {'nprobe':>6} {'recall@10':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for name, mask in masks(labels, seed).items():
        reference = exact_filtered(vectors, qs, mask)
        found, times, facts = [], [], {}
        for query in qs:
            t0 = time.perf_counter()
            _, ids, facts = ann.search_filtered(query, K, mask, fetch=lambda rows_: vectors[rows_])
            times.append(1000 * (time.perf_counter() - t0))
            found.append(ids[0])
        short = sum(len([i for i in f if i >= 0]) < min(K, int(mask.sum())) for f in found)
        recall = recall_against(found, reference)
        row = {"matching": int(mask.sum()), "selectivity": round(float(mask.mean()), 4), "how": facts["how"],
               "nprobe": facts["nprobe"], "recall_at_10": round(recall, 4),
               "p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3),
               "queries_short_of_k": short, "meets_target": recall >= TARGET_RECALL}
        report["filters"][name] = row
        log(f"  {name:<12} {row['matching']:>9,} {row['how']:<30} {str(row['nprobe'] or '-'):>6} "
            f"{row['recall_at_10']:>9.4f} {row['p50_ms']:>8.3f} {row['p95_ms']:>8.3f}"
            + ("" if row["meets_target"] else f"   BELOW the {TARGET_RECALL} target"))
    report["min_recall_at_10"] = min(r["recall_at_10"] for r in report["filters"].values())
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.capstone.bench.filtered", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    log(f"bench on {cpu.describe()}; load average {[round(x, 2) for x in os.getloadavg()]}")
    report = run(args.rows, queries=args.queries, log=log)
    report["cpu_features"], report["load_after"] = cpu.features(), [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
