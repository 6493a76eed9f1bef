"""Checks for the 9.1 exercises: unit vectors, the cosine matrix, padding, pixel normalisation."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed, close

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's processor (preprocessor_config.json)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ----------------------------------------------------------------------------- 9.1.1
def _verify_unit_rows(l2_normalize, vectors: np.ndarray) -> None:
    before = vectors.copy()
    got = l2_normalize(vectors)
    if not np.array_equal(vectors, before):
        raise Failed("your function changed the input array", "the caller still needs its own vectors: "
                     "which of your operations writes into the array it was given?")
    got = np.asarray(got, dtype=np.float64)
    if got.shape != vectors.shape:
        raise Failed(f"shape {got.shape} for a {vectors.shape} input: the output should have the input's shape")
    if np.isnan(got).any():
        raise Failed("a row of zeros came back as NaN", "what is 0 / 0 in NumPy, and what could a zero row "
                     "be divided by instead so that it stays zero?")
    lengths = np.linalg.norm(vectors.astype(np.float64), axis=1)
    nonzero = lengths > 0
    close(np.linalg.norm(got[nonzero], axis=1), np.ones(nonzero.sum()),
          f"lengths of the rows of a {vectors.shape[0]} x {vectors.shape[1]} input after normalising")
    close(got[~nonzero], np.zeros_like(got[~nonzero]), "the zero row")
    cosine = (got[nonzero] * vectors[nonzero]).sum(axis=1) / lengths[nonzero]
    close(cosine, np.ones(nonzero.sum()), "directions (each row should point where the input row points)")


def check_l2_normalize(l2_normalize, rng):
    _verify_unit_rows(l2_normalize, np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]))  # 2 x 3: rows, not columns
    _verify_unit_rows(l2_normalize, np.array([[3, 4], [0, 0], [1, 1]]))  # integers: a new float array
    _verify_unit_rows(l2_normalize, np.array([[1e-3, 0.0, 2e-3, 0.0], [0.0, 2e3, 0.0, 1e3]]))  # tiny and huge
    n, d = int(rng.integers(3, 9)), int(rng.integers(4, 40))
    vectors = rng.normal(scale=rng.uniform(0.1, 20), size=(n, d))
    vectors[int(rng.integers(n))] = 0.0
    _verify_unit_rows(l2_normalize, vectors)


# ----------------------------------------------------------------------------- 9.1.2
def _verify_cosines(cosine_similarity_matrix, images, texts) -> None:
    expected = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ \
        (texts / np.linalg.norm(texts, axis=1, keepdims=True)).T
    got = cosine_similarity_matrix(images.copy(), texts.copy())
    close(got, expected, f"cosine matrix of {len(images)} images x {len(texts)} texts")


def check_cosine_matrix(cosine_similarity_matrix, rng):
    _verify_cosines(cosine_similarity_matrix, np.array([[3.0, 4.0, 0.0], [0.0, 0.5, 0.0]]),
                    np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]]))
    n, m, d = int(rng.integers(2, 6)), int(rng.integers(6, 10)), int(rng.integers(8, 33))  # n != m on purpose
    images = rng.normal(size=(n, d)) * rng.uniform(0.5, 30, size=(n, 1))
    texts = rng.normal(size=(m, d)) * rng.uniform(0.5, 30, size=(m, 1))
    _verify_cosines(cosine_similarity_matrix, images, texts)


# ----------------------------------------------------------------------------- 9.1.3
def _verify_padding(pad_batch, sequences: list[list[int]], pad_id: int) -> None:
    got = pad_batch([list(s) for s in sequences], pad_id)
    if not isinstance(got, tuple) or len(got) != 2:
        raise Failed("return two arrays: (input_ids, attention_mask)")
    ids, mask = (np.asarray(x) for x in got)
    shape = (len(sequences), max(len(s) for s in sequences))
    if ids.shape != shape or mask.shape != shape:
        raise Failed(f"shapes {ids.shape} and {mask.shape} for {len(sequences)} sequences of lengths "
                     f"{[len(s) for s in sequences]}: both should be b x L, L the longest length",
                     "what does Python's max() return for a list of lists, and is that what you want?")
    for name, array in (("input_ids", ids), ("attention_mask", mask)):
        if array.dtype != np.int64:
            raise Failed(f"{name} is {array.dtype}; the docstring asks for int64 (what the model's embedding "
                         "lookup takes)", "which dtype do np.zeros and np.ones make unless told otherwise?")
    for row, sequence in enumerate(sequences):
        if list(ids[row, :len(sequence)]) != sequence:
            raise Failed(f"row {row}: the real tokens should come first, in order (pad on the right)")
        if (ids[row, len(sequence):] != pad_id).any():
            raise Failed(f"row {row}: the positions after the sequence should hold pad_id (here {pad_id})")
        if list(mask[row]) != [1] * len(sequence) + [0] * (shape[1] - len(sequence)):
            raise Failed(f"row {row}: the attention mask should be 1 on real tokens and 0 on padding")


def check_pad_batch(pad_batch, rng):
    _verify_padding(pad_batch, [[9], [5, 6, 7], [8, 5]], pad_id=1)  # the largest list is not the longest
    pad_id = int(rng.integers(0, 5))
    lengths = [int(x) for x in rng.integers(1, 12, size=int(rng.integers(3, 7)))]
    lengths[int(rng.integers(len(lengths)))] = max(lengths) + 2  # one clear longest sequence
    _verify_padding(pad_batch, [[int(t) for t in rng.integers(5, 1000, size=n)] for n in lengths], pad_id)


# ----------------------------------------------------------------------------- 9.1.4
def _verify_pixels(normalize_pixels, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    got = np.asarray(normalize_pixels(image.copy(), CLIP_MEAN, CLIP_STD))
    if got.shape != (3, height, width):
        raise Failed(f"shape {got.shape} for a {height} x {width} image, expected (3, {height}, {width}): "
                     "channels first", "which axis of the input holds the channels, and where must it go?")
    if got.dtype != np.float32:
        raise Failed(f"dtype {got.dtype}; the docstring asks for float32 (what the model's weights are)",
                     "dividing a uint8 array by a Python float gives which dtype?")
    expected = (image.astype(np.float64).transpose(2, 0, 1) / 255.0 - np.reshape(CLIP_MEAN, (3, 1, 1))) / \
        np.reshape(CLIP_STD, (3, 1, 1))
    close(got, expected, f"normalised pixels of a {height} x {width} image", atol=1e-4,
          hint="print one pixel of the input and of your output, and redo the three steps for it by hand: "
               "is each value where it was (reshape and transpose differ), and is the order of the steps right?")


def check_normalize_pixels(normalize_pixels, rng):
    fixed = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 0], [255, 255, 255], [128, 64, 32]]],
                     dtype=np.uint8)  # 2 x 3 x 3: red, green, blue, black, white, brown
    _verify_pixels(normalize_pixels, fixed)
    height, width = int(rng.integers(5, 17)), int(rng.integers(5, 17))
    while height == width:  # not square: layouts cannot hide
        width = int(rng.integers(5, 17))
    _verify_pixels(normalize_pixels, rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


CHECKS = [
    Check("9.1.1", "l2_normalize", check_l2_normalize,
          "lesson 9.1, step 3 (Embeddings and normalisation)",
          "a row's length is a norm taken along one axis only: which axis runs along a row? Try your function "
          "on a 2 x 3 array by hand"),
    Check("9.1.2", "cosine_similarity_matrix", check_cosine_matrix,
          "lesson 9.1, step 4 (Cosine similarity)",
          "cosine similarity does not change when a vector gets longer: does your result? Scale one input row "
          "by 10 and compare"),
    Check("9.1.3", "pad_batch", check_pad_batch,
          "lesson 9.1, step 1 (Tokenization)",
          "check your output on [[9], [5, 6, 7]] with pad_id 1 by hand: its shape, both dtypes, where the 1s "
          "of the mask sit"),
    Check("9.1.4", "normalize_pixels", check_normalize_pixels,
          "lesson 9.1, step 2 (Image preprocessing)",
          "the mean and std are given for values between 0 and 1: what range do your values have when you "
          "subtract them, and what dtype is the result?"),
]
