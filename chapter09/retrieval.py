"""The retrieval maths every lesson, the toy-world evaluation and the capstone share, written once.

Embeddings are rows; a score matrix is queries x candidates. Unit vectors make the dot
product the cosine similarity.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero instead of dividing by 0)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True).clip(1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of ``a`` against rows of ``b``; both are normalised here, so inputs may be raw."""
    return l2_normalize(a) @ l2_normalize(b).T


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores in each row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def top_k_scores(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices) of the ``k`` best per row, best first."""
    ids = top_k(scores, k)
    return np.take_along_axis(scores, ids, axis=1), ids


def recall_at_k(scores: np.ndarray, relevant: Sequence[set[int] | int], ks=(1, 5, 10)) -> dict[str, float]:
    """Fraction of queries (rows) with a relevant column among their top k, for each k."""
    ranked = top_k(scores, max(ks))
    relevant = [{r} if isinstance(r, (int, np.integer)) else set(r) for r in relevant]
    return {f"R@{k}": float(np.mean([bool(relevant[i] & set(ranked[i, :k])) for i in range(len(ranked))]))
            for k in ks}


def recall_both_ways(text_vectors: np.ndarray, image_vectors: np.ndarray, text_images: Sequence[set[int] | int],
                     ks=(1, 5, 10)) -> dict:
    """Text -> image and image -> text recall@k; ``text_images[t]``: the images text t describes.

    Images that no text describes are left out of image -> text (they have no right answer).
    """
    text_images = [{r} if isinstance(r, (int, np.integer)) else set(r) for r in text_images]
    scores = text_vectors @ image_vectors.T
    image_texts: list[set[int]] = [set() for _ in range(len(image_vectors))]
    for t, owners in enumerate(text_images):
        for i in owners:
            image_texts[i].add(t)
    described = [i for i, texts in enumerate(image_texts) if texts]
    return {"text_to_image": recall_at_k(scores, text_images, ks),
            "image_to_text": recall_at_k(scores.T[described], [image_texts[i] for i in described], ks),
            "queries": len(text_vectors)}


def zero_shot_classify(encoder, image_embeddings: np.ndarray, class_prompts: dict[str, list[str]]):
    """Prompt ensembling as in the CLIP paper: each class is the mean of its prompts' embeddings.

    ``encoder`` is anything with ``encode_texts``. Returns (predicted class per image, class
    names, probabilities).
    """
    names = list(class_prompts)
    centroids = np.stack([encoder.encode_texts(class_prompts[name]).mean(axis=0) for name in names])
    scores = cosine_similarity(image_embeddings, centroids) * 100.0
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return [names[i] for i in probs.argmax(axis=1)], names, probs


def accuracy_margin(hits: Sequence[bool], baseline_hits: Sequence[bool], draws: int = 2000, seed: int = 0) -> dict:
    """How much more often ``hits`` is right than ``baseline_hits`` on the same items, and how noisy that is.

    Both are per-item right/wrong on the same items (for example images). Returns the margin
    (accuracy difference), its standard error from a paired bootstrap over the items (each draw
    resamples items, keeping both methods' answers on an item together), the margin in standard
    errors, and how many items only one of the two gets right: the items that make the difference.
    """
    hits, baseline_hits = np.asarray(hits, dtype=bool), np.asarray(baseline_hits, dtype=bool)
    if hits.shape != baseline_hits.shape or hits.ndim != 1 or not len(hits):
        raise ValueError("hits and baseline_hits must be two equally long, non-empty sequences")
    difference = hits.astype(float) - baseline_hits.astype(float)
    draws_of_items = np.random.default_rng(seed).integers(0, len(difference), size=(draws, len(difference)))
    margin, standard_error = float(difference.mean()), float(difference[draws_of_items].mean(axis=1).std())
    return {"margin": margin, "standard_error": standard_error,
            "standard_errors_from_zero": margin / standard_error if standard_error else 0.0 if not margin else np.inf,
            "accuracy": float(hits.mean()), "baseline_accuracy": float(baseline_hits.mean()),
            "only_hits": int((hits & ~baseline_hits).sum()), "only_baseline": int((baseline_hits & ~hits).sum()),
            "items": len(hits)}
