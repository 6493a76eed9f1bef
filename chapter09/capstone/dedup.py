"""Duplicates in an index: exact (same bytes, by SHA-1) apart from near (embedding cosine above a threshold)."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

NEAR_DUPLICATE_COSINE = 0.97  # resized or re-compressed copies of one photo score above this with CLIP


def find_duplicates(store, threshold: float = NEAR_DUPLICATE_COSINE, role: str = "clip") -> dict:
    by_hash = defaultdict(list)
    for record in store.records:
        by_hash[record["sha1"]].append(record["path"])
    exact = [sorted(paths) for paths in by_hash.values() if len(paths) > 1]
    exact_pairs = {frozenset((a, b)) for group in exact for a in group for b in group if a != b}
    vectors = store.vectors[role]
    near = []
    for start in range(0, len(vectors), 2048):  # blockwise so 100k images never make a 100k x 100k matrix
        scores = vectors[start:start + 2048] @ vectors.T
        rows, cols = np.nonzero(scores >= threshold)
        for r, c in zip(rows, cols):
            i = start + r
            if i < c:
                a, b = store.records[i]["path"], store.records[c]["path"]
                if frozenset((a, b)) not in exact_pairs:
                    near.append({"a": a, "b": b, "cosine": round(float(scores[r, c]), 4)})
    near.sort(key=lambda pair: -pair["cosine"])
    return {"threshold": threshold, "exact_groups": exact, "near_pairs": near}
