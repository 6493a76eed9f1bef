"""Checks for the 9.1 exercises: unit vectors, the cosine matrix, padding, pixel normalisation."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed, close

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's processor (preprocessor_config.json)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_l2_normalize(l2_normalize, rng):
    n, d = int(rng.integers(3, 9)), int(rng.integers(4, 40))
    vectors = rng.normal(scale=rng.uniform(0.1, 20), size=(n, d))
    vectors[int(rng.integers(n))] = 0.0
    before = vectors.copy()
    got = np.asarray(l2_normalize(vectors), dtype=np.float64)
    if not np.array_equal(vectors, before):
        raise Failed("your function changed the input array")
    if got.shape != vectors.shape:
        raise Failed(f"shape {got.shape}, expected the input's {vectors.shape}")
    if np.isnan(got).any():
        raise Failed("a row of zeros came back as NaN")
    norms = np.linalg.norm(got, axis=1)
    nonzero = np.linalg.norm(vectors, axis=1) > 0
    close(norms[nonzero], np.ones(nonzero.sum()), "row lengths after normalising")
    close(got[~nonzero], np.zeros_like(got[~nonzero]), "the zero row")
    cosine = (got[nonzero] * vectors[nonzero]).sum(axis=1) / np.linalg.norm(vectors[nonzero], axis=1)
    close(cosine, np.ones(nonzero.sum()), "directions (each row should point where the input row points)")


def check_cosine_matrix(cosine_similarity_matrix, rng):
    n, m, d = int(rng.integers(2, 6)), int(rng.integers(6, 10)), int(rng.integers(8, 33))  # n != m on purpose
    images = rng.normal(size=(n, d)) * rng.uniform(0.5, 30, size=(n, 1))
    texts = rng.normal(size=(m, d)) * rng.uniform(0.5, 30, size=(m, 1))
    expected = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ \
        (texts / np.linalg.norm(texts, axis=1, keepdims=True)).T
    close(cosine_similarity_matrix(images, texts), expected, "cosine matrix")


def check_pad_batch(pad_batch, rng):
    pad_id = int(rng.integers(0, 5))
    lengths = [int(x) for x in rng.integers(1, 12, size=int(rng.integers(3, 7)))]
    lengths[int(rng.integers(len(lengths)))] = max(lengths) + 2  # one clear longest sequence
    sequences = [[int(t) for t in rng.integers(5, 1000, size=n)] for n in lengths]
    got = pad_batch([list(s) for s in sequences], pad_id)
    if not isinstance(got, tuple) or len(got) != 2:
        raise Failed("return two arrays: (input_ids, attention_mask)")
    ids, mask = (np.asarray(x) for x in got)
    shape = (len(sequences), max(lengths))
    if ids.shape != shape or mask.shape != shape:
        raise Failed(f"shapes {ids.shape} and {mask.shape}, expected {shape} for both")
    for row, sequence in enumerate(sequences):
        if list(ids[row, :len(sequence)]) != sequence:
            raise Failed(f"row {row}: the real tokens should come first, in order (pad on the right)")
        if (ids[row, len(sequence):] != pad_id).any():
            raise Failed(f"row {row}: the positions after the sequence should hold pad_id")
        if list(mask[row]) != [1] * len(sequence) + [0] * (shape[1] - len(sequence)):
            raise Failed(f"row {row}: the attention mask should be 1 on real tokens and 0 on padding")


def check_normalize_pixels(normalize_pixels, rng):
    height, width = int(rng.integers(5, 17)), int(rng.integers(5, 17))  # not square: layouts cannot hide
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    got = np.asarray(normalize_pixels(image, CLIP_MEAN, CLIP_STD))
    if got.shape != (3, height, width):
        raise Failed(f"shape {got.shape}, expected (3, {height}, {width}): channels first")
    expected = (image.astype(np.float64).transpose(2, 0, 1) / 255.0 - np.reshape(CLIP_MEAN, (3, 1, 1))) / \
        np.reshape(CLIP_STD, (3, 1, 1))
    close(got, expected, "normalised pixels", atol=1e-4)


CHECKS = [
    Check("9.1.1", "l2_normalize", check_l2_normalize,
          "divide each row by its own length (the norm along the feature axis); guard the zero row"),
    Check("9.1.2", "cosine_similarity_matrix", check_cosine_matrix,
          "cosine = dot product of unit vectors; rows are images, columns texts"),
    Check("9.1.3", "pad_batch", check_pad_batch,
          "make a b x L array full of pad_id first, then copy each sequence into the start of its row"),
    Check("9.1.4", "normalize_pixels", check_normalize_pixels,
          "uint8 runs 0-255, the mean and std are for 0-1 values; the model wants channels before height"),
]
