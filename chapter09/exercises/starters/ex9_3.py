"""Exercises for 9.3 CLIP through sentence-transformers. Fill in each function, then run

    python -m chapter09.exercises check 9.3

NumPy for 9.3.1-9.3.2, torch for 9.3.3. Keep each function's signature.

9.3 用 sentence-transformers 调用 CLIP 练习。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.3 --lang zh

9.3.1-9.3.2 用 NumPy，9.3.3 用 torch。不要改动函数签名。
"""
import numpy as np


def semantic_search(query_embeddings: np.ndarray, corpus_embeddings: np.ndarray, top_k: int) -> list[list[dict]]:
    """Exercise 9.3.1. What ``sentence_transformers.util.semantic_search`` returns, written yourself.

    For each query (row of q x d), the ``top_k`` corpus entries (rows of c x d) by cosine similarity,
    best first, as ``{"corpus_id": int, "score": float}`` dicts. Inputs are not normalised.

    练习 9.3.1：自己实现 ``sentence_transformers.util.semantic_search`` 的返回结果。

    对每个查询（q x d 中的一行），按余弦相似度从高到低返回 ``top_k`` 条语料（c x d 中的行），
    每条是 ``{"corpus_id": int, "score": float}`` 形式的 dict。输入未归一化。
    """
    raise NotImplementedError


def encode_in_batches(encode, items: list, batch_size: int) -> np.ndarray:
    """Exercise 9.3.2. What ``model.encode(items, batch_size=...)`` does inside.

    Call ``encode(batch)`` on consecutive slices of at most ``batch_size`` items (``encode`` returns
    a len(batch) x d array) and return all rows stacked in one n x d NumPy array, in the order of ``items``.

    练习 9.3.2：``model.encode(items, batch_size=...)`` 内部做的事。

    把 ``items`` 切成连续的、每片最多 ``batch_size`` 条的批，逐批调用 ``encode(batch)``（它返回
    len(batch) x d 的数组），再按 ``items`` 的顺序把所有行堆成一个 n x d 的 NumPy 数组返回。
    """
    raise NotImplementedError


def distillation_loss(student_english, student_translated, teacher_english):
    """Exercise 9.3.3. The multilingual distillation loss (Reimers & Gurevych 2020, arXiv 2004.09813), torch.

    A student text encoder learns to put an English sentence *and* its translation where the teacher
    (CLIP's text tower) puts the English sentence. All three are b x d tensors of the same b sentences.
    Return a 0-d tensor: the mean squared error of each student output against the teacher's, summed.

    练习 9.3.3：多语言蒸馏损失（Reimers & Gurevych 2020，arXiv 2004.09813），用 torch。

    学生文本编码器要学会把英文句子*和*它的译文，都放到教师（CLIP 的文本塔）放英文句子的位置。
    三个输入都是同样 b 个句子的 b x d 张量。返回 0 维张量：两个学生输出各自与教师输出的均方误差之和。
    """
    raise NotImplementedError
