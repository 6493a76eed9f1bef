"""Exercises for 9.7 Capstone: a library search you build. Fill in each function, then run

    python -m chapter09.exercises check 9.7

NumPy and plain Python. Keep each function's signature.
"""
import numpy as np


def reciprocal_rank_fusion(rankings: list[list], k: int = 60) -> list[tuple]:
    """Exercise 9.7.1. Fuse several rankings into one, by reciprocal-rank fusion (Cormack et al., 2009).

    Each ranking is a list of items (paths, ids: anything hashable), best first; an item appears at most
    once in a ranking, and need not appear in every ranking. An item scores the sum, over the rankings
    that hold it, of 1 / (k + its place in that ranking), where the best place is 1.

    Return a list of (item, score) pairs, one per item that appears anywhere, highest score first (items
    with equal scores may come in any order).
    """
    raise NotImplementedError


def filtered_top_k(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Exercise 9.7.2. The exact top-k under a filter.

    ``scores``: (n,) floats, one per indexed row (cosine similarities: they can be negative);
    ``mask``: (n,) booleans, True for the rows the filter keeps; ``k`` >= 1.

    Return the row indices (integers into ``scores``) of the ``k`` highest-scoring rows *among those the
    filter keeps*, best first: fewer than ``k`` when fewer rows match, an empty integer array when none
    does. Rows with equal scores may come in any order.
    """
    raise NotImplementedError


def rerank(candidates: list, first_stage_scores, second_stage_fn, n: int) -> list:
    """Exercise 9.7.3. A two-stage re-ranker.

    ``candidates``: items, in no particular order; ``first_stage_scores[i]``: the fast first stage's score
    of ``candidates[i]`` (higher is better). ``second_stage_fn(items)`` scores a list of items with a
    slower, better model and returns one score per item (higher is better); it is expensive, so call it
    once, on the ``n`` candidates the first stage scores highest (on all of them if there are fewer).

    Return every candidate: those ``n``, ordered by the second stage's scores (best first; equal second-
    stage scores keep their first-stage order), followed by the rest in first-stage order (best first).
    """
    raise NotImplementedError
