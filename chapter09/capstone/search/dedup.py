"""Duplicates in an index: exact (same bytes, by SHA-1) apart from near (embedding cosine above a threshold).

Read from the store: exact groups from the ``sha1`` column; near pairs by searching each image's
``neighbours`` nearest images with the index's own vector search (exact for small libraries, the
cached IVF index above ``vectors.ANN_THRESHOLD``), streamed in blocks, so a million images never make
a million-by-million matrix. A photo with more near copies than ``neighbours`` lists its closest ones.

A video counts as one file: exact groups list the video's path (its frame rows share its sha1), and frames of
one video are never near copies of each other (a still shot is not a duplicate); frames of two different videos
are compared like photos.
"""
from __future__ import annotations

from collections import defaultdict

from ...errors import UsageError
from ..index.video import unit_of
from ..store.database import Store, open_vectors

NEAR_DUPLICATE_COSINE = 0.97  # resized or re-compressed copies of one photo score above this with CLIP
NEIGHBOURS = 10


def find_duplicates(index, threshold: float = NEAR_DUPLICATE_COSINE, role: str = "clip",
                    neighbours: int = NEIGHBOURS) -> dict:
    """``index``: an index folder (or URI) or an open ``store.Store``."""
    if not -1.0 <= threshold <= 1.0:
        raise UsageError(f"the cosine threshold must be between -1 and 1, not {threshold}")
    store = index if isinstance(index, Store) else Store.open(index)
    table = store.images(role)
    by_hash = defaultdict(set)
    for record in table.records(("path", "sha1")):
        by_hash[record["sha1"]].add(unit_of(record["path"]))  # a video's frames: the video, once
    exact = sorted(sorted(paths) for paths in by_hash.values() if len(paths) > 1)
    exact_pairs = {frozenset((a, b)) for group in exact for a in group for b in group if a != b}
    searcher = open_vectors(store, role)
    near, seen = [], set()
    for batch_paths, vectors in table.vector_batches(batch_rows=2048):
        paths = batch_paths.to_pylist()
        scores, ids = searcher.search(vectors, neighbours + 1)
        for a, row_scores, row_ids in zip(paths, scores, ids):
            for score, i in zip(row_scores, row_ids):
                if i < 0 or score < threshold:
                    continue
                b = searcher.path(i)
                pair = frozenset((a, b))
                if unit_of(a) == unit_of(b) or pair in seen or frozenset((unit_of(a), unit_of(b))) in exact_pairs:
                    continue
                seen.add(pair)
                first, second = sorted((a, b))
                near.append({"a": first, "b": second, "cosine": round(min(float(score), 1.0), 4)})
    near.sort(key=lambda pair: (-pair["cosine"], pair["a"], pair["b"]))
    return {"threshold": threshold, "exact_groups": exact, "near_pairs": near, "search": searcher.mode}
