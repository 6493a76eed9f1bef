"""Checks for the 9.7 exercises: fusing rankings, the exact top-k under a filter, a two-stage re-ranker."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed

RANK_TOLERANCE = 1e-9  # two sums of the same fractions, added in another order, may differ in the last bits


# ----------------------------------------------------------------------------- 9.7.1 reciprocal-rank fusion
def _rrf(rankings, k):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return scores


def _pairs(got, what: str) -> list[tuple]:
    try:
        pairs = [(item, float(score)) for item, score in got]
    except (TypeError, ValueError):
        raise Failed(f"{what}: return a list of (item, score) pairs") from None
    return pairs


def _verify_fusion(fuse, rankings, k: int | None) -> None:
    copies = [list(r) for r in rankings]
    got = fuse(copies) if k is None else fuse(copies, k=k)
    expected = _rrf(rankings, 60 if k is None else k)
    what = (f"{len(rankings)} rankings of {sorted(len(r) for r in rankings)} items, "
            + ("k left at its default" if k is None else f"k={k}"))
    pairs = _pairs(got, what)
    items = [item for item, _ in pairs]
    if len(set(items)) != len(items):
        raise Failed(f"{what}: an item appears more than once in your result",
                     "an item held by two rankings is one item with one fused score")
    missing, extra = set(expected) - set(items), set(items) - set(expected)
    if missing:
        raise Failed(f"{what}: {len(missing)} of the {len(expected)} items are missing from your result",
                     "an item that only some of the rankings hold is still a result: which rankings does "
                     "the docstring let it score from?")
    if extra:
        raise Failed(f"{what}: your result holds {len(extra)} item(s) that no ranking holds")
    off = [item for item, score in pairs if abs(score - expected[item]) > RANK_TOLERANCE]
    if off:
        hint = ("call it without k, as the search does: what does the signature promise?" if k is None else
                "score the fixed example by hand: an item first in one ranking, and one second in two; "
                "which place counts as 1, and what does k add to it?")
        raise Failed(f"{what}: {len(off)} of the {len(expected)} fused scores are off", hint)
    scores = [score for _, score in pairs]
    if any(later > earlier + RANK_TOLERANCE for earlier, later in zip(scores, scores[1:])):
        raise Failed(f"{what}: the scores are right but not best first",
                     "the first pair of your list should be the item a user sees first")


FIXED_RANKINGS = [
    # "b" is second in two rankings, "a" first in one only; "e" is held by one ranking; "d" misses one
    ([["a", "b", "c", "d"], ["b", "c", "d", "e"], ["c", "b", "f"]], None),
    ([["a", "b", "c", "d"], ["b", "c", "d", "e"], ["c", "b", "f"]], 0),
    ([[3, 1, 4, 5, 9], [2, 6, 5, 3], [5, 8, 9, 7, 1, 3]], 1),
    ([["only"], ["x", "y", "only"]], 60),
]


def check_fusion(fuse, rng):
    for rankings, k in FIXED_RANKINGS:
        _verify_fusion(fuse, rankings, k)
    pool = [f"img_{i:03d}.png" for i in range(60)]
    for _ in range(6):
        rankings = [list(rng.choice(pool, size=int(rng.integers(1, 25)), replace=False))
                    for _ in range(int(rng.integers(2, 5)))]
        _verify_fusion(fuse, rankings, None if rng.random() < 0.3 else int(rng.integers(0, 120)))


# ----------------------------------------------------------------------------- 9.7.2 top-k under a filter
def _verify_filtered(top_k, scores: np.ndarray, mask: np.ndarray, k: int) -> None:
    matching = np.flatnonzero(mask)
    want = min(k, len(matching))
    what = f"{len(scores)} rows, {len(matching)} matching the filter, k={k}"
    got = top_k(scores.copy(), mask.copy(), k)
    try:
        ids = np.asarray(got)
    except (TypeError, ValueError):
        raise Failed(f"{what}: return an array of row indices") from None
    if ids.ndim != 1:
        raise Failed(f"{what}: return a 1-D array of row indices, not shape {ids.shape}")
    if len(ids) and not (np.issubdtype(ids.dtype, np.integer) and not np.issubdtype(ids.dtype, np.bool_)):
        raise Failed(f"{what}: return integer row indices, not {ids.dtype}")
    if len(ids) != want:
        nudge = ("when fewer rows match than k, which rows could still honestly be returned?" if len(ids) > want
                 else "if the k best rows of the whole library are all ones the filter removes, what "
                      "should come back, and how many?")
        raise Failed(f"{what}: {len(ids)} indices, expected {want}", nudge)
    if want == 0:
        return
    if ids.min() < 0 or ids.max() >= len(scores):
        raise Failed(f"{what}: an index out of range (indices are rows of scores)")
    if len(set(ids.tolist())) != len(ids):
        raise Failed(f"{what}: a row appears twice")
    if not mask[ids].all():
        raise Failed(f"{what}: {int((~mask[ids]).sum())} of your rows are ones the filter removes",
                     "what should a row the filter removes score, whatever its similarity, for it never "
                     "to be chosen, even when every kept row scores below zero?")
    chosen = scores[ids]
    best = np.sort(scores[matching])[::-1][:want]
    if not np.allclose(np.sort(chosen)[::-1], best):
        raise Failed(f"{what}: these are not the k best of the matching rows",
                     "are your indices rows of scores, or places in some smaller array?")
    if np.any(np.diff(chosen) > 0):
        raise Failed(f"{what}: the right rows, but not best first")


def check_filtered_top_k(top_k, rng):
    n = 12
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1, 0.05, 0.0])
    mask = np.zeros(n, bool)
    mask[[4, 7, 9, 10, 11]] = True  # the unfiltered top 4 all fail the filter
    _verify_filtered(top_k, scores, mask, 3)
    negative = np.array([0.5, -0.2, 0.4, -0.6, 0.3, -0.1, 0.2, -0.4])
    _verify_filtered(top_k, negative, negative < 0, 3)  # every kept row scores below zero
    _verify_filtered(top_k, scores[::-1].copy(), mask, 8)  # fewer matching rows than k
    _verify_filtered(top_k, scores, np.zeros(n, bool), 4)  # nothing matches
    ties = np.array([0.5, 0.7, 0.5, 0.7, 0.5, 0.1, 0.5])
    _verify_filtered(top_k, ties, np.array([True, False, True, True, True, True, True]), 3)  # ties at the cut
    for _ in range(6):
        n = int(rng.integers(20, 200))
        scores = rng.uniform(-1, 1, n)
        if rng.random() < 0.5:
            scores = np.round(scores, 1)  # ties
        mask = rng.random(n) < rng.choice([0.02, 0.1, 0.5, 0.9])
        _verify_filtered(top_k, scores, mask, int(rng.integers(1, 16)))


# ----------------------------------------------------------------------------- 9.7.3 a two-stage re-ranker
def _expected_rerank(candidates, first, second_of, n):
    by_first = sorted(range(len(candidates)), key=lambda i: -first[i])
    shortlist = [candidates[i] for i in by_first[:n]]
    reordered = sorted(range(len(shortlist)), key=lambda j: -second_of[shortlist[j]])
    return [shortlist[j] for j in reordered] + [candidates[i] for i in by_first[n:]], shortlist


def _verify_rerank(rerank, candidates, first, second_of, n) -> None:
    calls = []

    def second_stage(items):
        items = list(items)
        calls.append(items)
        return [second_of[item] for item in items]

    expected, shortlist = _expected_rerank(candidates, first, second_of, n)
    what = f"{len(candidates)} candidates, n={n}"
    got = rerank(list(candidates), list(first), second_stage, n)
    if len(calls) != 1:
        raise Failed(f"{what}: the second stage was called {len(calls)} times, expected once",
                     "the slow model is called once, on a batch: how many items does that batch hold?")
    if sorted(calls[0]) != sorted(shortlist):
        raise Failed(f"{what}: the second stage was given {len(calls[0])} items, not the {len(shortlist)} the "
                     "first stage scores highest",
                     "which candidates is the first stage sure enough about to spend the slow model on? The "
                     "candidates are not sorted")
    try:
        got = list(got)
    except TypeError:
        raise Failed(f"{what}: return a list of candidates") from None
    if sorted(got) != sorted(candidates):
        raise Failed(f"{what}: your result holds {len(got)} items; every candidate must come back exactly once",
                     "a candidate the second stage never saw is still a result, after the others")
    if got[:len(shortlist)] != expected[:len(shortlist)]:
        same = any(second_of[a] == second_of[b] for a in shortlist for b in shortlist if a != b)
        raise Failed(f"{what}: the re-scored candidates are not in the second stage's order (best first"
                     + ("; equal second-stage scores keep their first-stage order)" if same else ")"),
                     "write the shortlist of the first fixed case with both scores: which comes first, and "
                     "which of two equal second-stage scores?")
    if got != expected:
        raise Failed(f"{what}: the candidates after the re-scored ones are not in first-stage order (best first)")


def check_rerank(rerank, rng):
    candidates = ["c.png", "a.png", "e.png", "b.png", "d.png", "f.png", "g.png"]
    first = [0.2, 0.9, 0.5, 0.8, 0.1, 0.7, 0.3]  # not sorted: the first stage's best are a, b, f, e
    second = {"a.png": 0.1, "f.png": 0.6, "b.png": 0.6, "e.png": 0.9, "c.png": 0.95, "d.png": 0.99, "g.png": 0.0}
    _verify_rerank(rerank, candidates, first, second, 4)  # b and f tie in the second stage (b first)
    _verify_rerank(rerank, candidates, first, second, 10)  # n beyond the candidates: all re-scored
    _verify_rerank(rerank, candidates[:3], first[:3], second, 3)
    for _ in range(6):
        m = int(rng.integers(3, 30))
        names = [f"{name:03d}.jpg" for name in rng.choice(1000, m, replace=False)]
        first = list(rng.permutation(m) / m + rng.uniform(0, 0.01))  # distinct first-stage scores
        second = dict(zip(names, np.round(rng.uniform(0, 1, m), int(rng.integers(1, 3)))))  # ties happen
        _verify_rerank(rerank, names, first, second, int(rng.integers(1, m + 3)))


CHECKS = [
    Check("9.7.1", "reciprocal_rank_fusion", check_fusion,
          "lesson 9.7, step 6 (Caption words and vectors, fused)",
          "a ranking says which is better, not by how much: what does a place in a ranking add to an item's "
          "fused score, and what do the rankings that do not hold it add?"),
    Check("9.7.2", "filtered_top_k", check_filtered_top_k,
          "lesson 9.7, step 4 (Filters: the top-k among the rows that match)",
          "try scores 0.9, 0.8, -0.1, -0.2 with only the last two kept and k=3: what should come back?"),
    Check("9.7.3", "rerank", check_rerank,
          "lesson 9.7, step 7 (A second stage re-scores the shortlist)",
          "three lists help: the candidates by first-stage score, the shortlist by second-stage score, "
          "and what is left"),
]
