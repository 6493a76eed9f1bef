"""Exercises for 9.1 CLIP basics. Fill in each function, then run

    python -m chapter09.exercises check 9.1

The checker calls your functions on data you have not seen and says, per exercise, what passed.
Use NumPy only; keep each function's signature.

9.1 CLIP 基础练习。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.1 --lang zh

判分程序会用你没见过的数据调用这些函数，逐题告诉你是否通过。
只用 NumPy；不要改动函数签名。
"""
import numpy as np


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Exercise 9.1.1. Scale each row of ``vectors`` (n x d) to length 1, keeping its direction.

    A row of zeros has no direction: return it as zeros (no NaN). Do not change the input array.

    练习 9.1.1：把 ``vectors``（n x d）的每一行缩放到长度 1，方向保持不变。

    全零行没有方向：原样返回全零（不能出现 NaN）。不要改动传入的数组。
    """
    raise NotImplementedError


def cosine_similarity_matrix(image_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """Exercise 9.1.2. Cosine similarity of every image (rows, n x d) with every text (m x d): an n x m matrix.

    The inputs are raw encoder outputs, not unit vectors.

    练习 9.1.2：每张图像（按行，n x d）与每条文本（m x d）的余弦相似度，得到 n x m 矩阵。

    输入是编码器的原始输出，不是单位向量。
    """
    raise NotImplementedError


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Exercise 9.1.3. Token-id lists of different lengths -> (input_ids, attention_mask), both int64, b x L.

    L is the longest sequence. Pad on the right with ``pad_id``; the mask is 1 on real tokens, 0 on padding.

    练习 9.1.3：把长短不一的词元 id 列表变成 (input_ids, attention_mask)，两者都是 int64、形状 b x L。

    L 是最长序列的长度。用 ``pad_id`` 在右侧填充；掩码在真实词元处为 1，在填充处为 0。
    """
    raise NotImplementedError


def normalize_pixels(image: np.ndarray, mean, std) -> np.ndarray:
    """Exercise 9.1.4. An RGB image as uint8 (H x W x 3, values 0-255) -> the model's input, float32 3 x H x W.

    Scale to 0-1, then per channel subtract ``mean[c]`` and divide by ``std[c]`` (CLIP's processor does
    this after resizing and cropping).

    练习 9.1.4：把 uint8 的 RGB 图像（H x W x 3，取值 0-255）变成模型的输入：float32、3 x H x W。

    先缩放到 0-1，再逐通道减去 ``mean[c]``、除以 ``std[c]``（CLIP 的预处理器在缩放和裁剪之后做的就是这一步）。
    """
    raise NotImplementedError
