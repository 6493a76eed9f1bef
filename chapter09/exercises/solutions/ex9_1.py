"""Solutions to the 9.1 exercises (kept apart from the lessons: try first, then compare)."""
import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)  # a zero row divided by 1 stays zero


def cosine_similarity_matrix(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    def unit(x):  # inputs are raw embeddings (no zero rows): divide each row by its length
        x = np.asarray(x, dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    return unit(image_embeddings) @ unit(text_embeddings).T


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(s) for s in sequences)
    input_ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    attention_mask = np.zeros((len(sequences), length), dtype=np.int64)
    for row, sequence in enumerate(sequences):
        input_ids[row, :len(sequence)] = sequence
        attention_mask[row, :len(sequence)] = 1
    return input_ids, attention_mask


def normalize_pixels(image: np.ndarray, mean, std) -> np.ndarray:
    scaled = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return (scaled - mean) / std
