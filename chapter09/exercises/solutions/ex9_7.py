"""Solutions to the 9.7 exercises."""
import numpy as np


def reciprocal_rank_fusion(rankings: list[list], k: int = 60) -> list[tuple]:
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def filtered_top_k(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    order = np.argsort(-np.asarray(scores, dtype=float)[rows], kind="stable")
    return rows[order[:k]]


def rerank(candidates: list, first_stage_scores, second_stage_fn, n: int) -> list:
    by_first = sorted(range(len(candidates)), key=lambda i: first_stage_scores[i], reverse=True)
    shortlist = [candidates[i] for i in by_first[:n]]
    second = second_stage_fn(shortlist)
    reordered = sorted(range(len(shortlist)), key=lambda j: second[j], reverse=True)
    return [shortlist[j] for j in reordered] + [candidates[i] for i in by_first[n:]]
