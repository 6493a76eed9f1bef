"""Exercises for 9.1 CLIP basics. Fill in each function, then run

    python -m chapter09.exercises check 9.1

The checker calls your functions on data you have not seen and says, per exercise, what passed.
Use NumPy only; keep each function's signature.
"""
import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Exercise 9.1.1. Scale each row of ``vectors`` (n x d) to length 1, keeping its direction.

    A row of zeros has no direction: return it as zeros (no NaN). Do not change the input array.
    """
    raise NotImplementedError


def cosine_similarity_matrix(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Exercise 9.1.2. Cosine similarity of every image (rows, n x d) with every text (m x d): an n x m matrix.

    The inputs are raw encoder outputs, not unit vectors.
    """
    raise NotImplementedError


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Exercise 9.1.3. Token-id lists of different lengths -> (input_ids, attention_mask), both int64, b x L.

    L is the longest sequence. Pad on the right with ``pad_id``; the mask is 1 on real tokens, 0 on padding.
    """
    raise NotImplementedError


def normalize_pixels(image: np.ndarray, mean, std) -> np.ndarray:
    """Exercise 9.1.4. An RGB image as uint8 (H x W x 3, values 0-255) -> the model's input, float32 3 x H x W.

    Scale to 0-1, then per channel subtract ``mean[c]`` and divide by ``std[c]`` (CLIP's processor does
    this after resizing and cropping).
    """
    raise NotImplementedError
