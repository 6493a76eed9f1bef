"""Exercises for 9.3 CLIP through sentence-transformers. Fill in each function, then run

    python -m chapter09.exercises check 9.3

NumPy for 9.3.1-9.3.2, torch for 9.3.3. Keep each function's signature.
"""
import numpy as np


def semantic_search(query_embeddings: np.ndarray, corpus_embeddings: np.ndarray, top_k: int) -> list[list[dict]]:
    """Exercise 9.3.1. What ``sentence_transformers.util.semantic_search`` returns, written yourself.

    For each query (row of q x d), the ``top_k`` corpus entries (rows of c x d) by cosine similarity,
    best first, as ``{"corpus_id": int, "score": float}`` dicts. Inputs are not normalised.
    """
    raise NotImplementedError


def encode_in_batches(encode, items: list, batch_size: int) -> np.ndarray:
    """Exercise 9.3.2. What ``model.encode(items, batch_size=...)`` does inside.

    Call ``encode(batch)`` on consecutive slices of at most ``batch_size`` items (``encode`` returns
    a len(batch) x d array) and return all rows stacked in one n x d NumPy array, in the order of ``items``.
    """
    raise NotImplementedError


def distillation_loss(student_english, student_translated, teacher_english):
    """Exercise 9.3.3. The multilingual distillation loss (Reimers & Gurevych 2020, arXiv 2004.09813), torch.

    A student text encoder learns to put an English sentence *and* its translation where the teacher
    (CLIP's text tower) puts the English sentence. All three are b x d tensors of the same b sentences.
    Return a 0-d tensor: the mean squared error of each student output against the teacher's, summed.
    """
    raise NotImplementedError
