"""Exercises for 9.2 The similarity matrix. Fill in each function, then run

    python -m chapter09.exercises check 9.2

NumPy for 9.2.1-9.2.2, torch for 9.2.3. Keep each function's signature.
"""
import numpy as np


def recall_at_k(scores: np.ndarray, relevant: list[int], k: int) -> float:
    """Exercise 9.2.1. Recall@k: the share of queries whose right answer is among their k best candidates.

    ``scores`` is queries x candidates (row q holds query q's score for every candidate);
    ``relevant[q]`` is the index of query q's right candidate. For image -> text retrieval you
    would call it with the transposed matrix.
    """
    raise NotImplementedError


def zero_shot_classify(image_embeddings: np.ndarray, prompt_embeddings: dict[str, np.ndarray]) -> list[str]:
    """Exercise 9.2.2. Zero-shot classification with prompt ensembling, as the CLIP paper does it.

    ``image_embeddings``: n x d. ``prompt_embeddings[name]``: p x d, the raw text embeddings of the
    class's p prompts ("a photo of a red ...", "a red ...", ...). Each class is represented by the
    average *direction* of its prompts; return the best class name for each image.
    """
    raise NotImplementedError


def contrastive_loss(image_features, text_features, logit_scale):
    """Exercise 9.2.3. CLIP's symmetric contrastive (InfoNCE) loss for a batch of b matching pairs (torch).

    ``image_features``, ``text_features``: b x d torch tensors, pair i = (image i, text i), not normalised.
    ``logit_scale``: a 0-d tensor holding log(1 / temperature), as CLIPModel stores it; the logits are
    exp(logit_scale) x cosine similarity, with exp(logit_scale) capped at 100 as CLIP does.
    Return a 0-d tensor: the mean of the image -> text and text -> image cross-entropies.
    """
    raise NotImplementedError
