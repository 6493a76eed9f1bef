"""Checks for the 9.3 exercises: semantic search, batched encoding, the multilingual distillation loss."""
from __future__ import annotations

import numpy as np
import torch  # imported here, so that a check runs on one torch thread (core._one_torch_thread)

from .core import Check, Failed, close, gradients_match, msg, scalar_tensor


# ----------------------------------------------------------------------------- 9.3.1
def _verify_search(semantic_search, queries, corpus, top_k: int) -> None:
    got = semantic_search(queries.copy(), corpus.copy(), top_k)
    got = list(got)
    if len(got) != len(queries):
        raise Failed("9.3.result_lists", got=len(got), n=len(queries))
    cosine = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ \
        (corpus / np.linalg.norm(corpus, axis=1, keepdims=True)).T
    for row, hits in enumerate(got):
        hits = list(hits)
        if len(hits) != top_k:
            raise Failed("9.3.hit_count", row=row, got=len(hits), top_k=top_k)
        if not all(isinstance(h, dict) and {"corpus_id", "score"} <= set(h) for h in hits):
            raise Failed("9.3.hit_dict")
        ids = [int(h["corpus_id"]) for h in hits]
        best = [int(i) for i in np.argsort(-cosine[row])[:top_k]]
        if sorted(ids) == sorted(best) and ids != best:
            raise Failed("9.3.order", "9.3.order.hint", row=row, top_k=top_k)
        if ids != best:
            raise Failed("9.3.not_top", "9.3.not_top.hint", row=row, top_k=top_k)
        close([h["score"] for h in hits], cosine[row, ids], msg("9.3.scores", row=row), hint="9.3.scores.hint")


def check_semantic_search(semantic_search, rng):
    queries = np.array([[1.0, 0.0, 0.0], [0.0, 3.0, 1.0]])
    corpus = np.array([[0.9, 0.1, 0.0], [40.0, 30.0, 0.0], [0.0, 0.0, 0.2], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    _verify_search(semantic_search, queries, corpus, top_k=3)  # the longest corpus row is not the best match
    q, c, d = int(rng.integers(2, 5)), int(rng.integers(12, 30)), int(rng.integers(8, 24))
    queries = rng.normal(size=(q, d)) * rng.uniform(0.2, 15, size=(q, 1))
    corpus = rng.normal(size=(c, d)) * rng.uniform(0.2, 15, size=(c, 1))  # lengths differ: dot != cosine
    _verify_search(semantic_search, queries, corpus, int(rng.integers(2, 6)))


# ----------------------------------------------------------------------------- 9.3.2
def _verify_batches(encode_in_batches, rng, n: int, batch_size: int) -> None:
    d = int(rng.integers(3, 9))
    items = [f"item-{i}-{int(rng.integers(1000))}" for i in range(n)]
    table = {item: rng.normal(size=d) for item in items}
    calls = []

    def encode(batch):
        calls.append(list(batch))
        return np.stack([table[item] for item in batch]) if len(batch) else np.zeros((0, d))

    got = encode_in_batches(encode, list(items), batch_size)
    what = msg("9.3.batches", n=n, batch_size=batch_size)
    if any(len(batch) > batch_size for batch in calls):
        raise Failed("9.3.batch_too_big", what=what)
    if any(len(batch) == 0 for batch in calls):
        raise Failed("9.3.empty_batch", "9.3.empty_batch.hint", what=what)
    if len(calls) != -(-n // batch_size):
        raise Failed("9.3.call_count", "9.3.call_count.hint", what=what, calls=len(calls))
    if [item for batch in calls for item in batch] != items:
        raise Failed("9.3.once_in_order", "9.3.once_in_order.hint", what=what)
    if not isinstance(got, np.ndarray):
        raise Failed("9.3.one_array", what=what, type=type(got).__name__)
    close(got, np.stack([table[item] for item in items]), msg("9.3.stacked", what=what), hint="9.3.stacked.hint")


def check_encode_in_batches(encode_in_batches, rng):
    for n, batch_size in ((7, 3), (6, 3), (2, 5), (9, 1)):  # a short last batch, none, a single one, ones
        _verify_batches(encode_in_batches, rng, n, batch_size)
    n, batch_size = int(rng.integers(11, 40)), int(rng.integers(3, 8))
    _verify_batches(encode_in_batches, rng, n, batch_size)


# ----------------------------------------------------------------------------- 9.3.3
def _reference_distillation(student_english, student_translated, teacher_english):
    return ((student_english - teacher_english) ** 2).mean() + ((student_translated - teacher_english) ** 2).mean()


def check_distillation_loss(distillation_loss, rng):
    for b, d in ((2, 3), (int(rng.integers(3, 9)), int(rng.integers(4, 17)))):
        student_en, student_zh, teacher = (torch.tensor(rng.normal(size=(b, d)), dtype=torch.float32)
                                           for _ in range(3))
        student_zh = student_zh * 2.0  # the two students differ in scale, so swapping roles shows
        got = scalar_tensor(distillation_loss(student_en.clone(), student_zh.clone(), teacher.clone()))
        close(got.detach().reshape(()), _reference_distillation(student_en, student_zh, teacher),
              msg("9.3.distillation", b=b, d=d), hint="9.3.distillation.hint")
        gradients_match(distillation_loss, _reference_distillation,
                        {"student_english": student_en, "student_translated": student_zh, "teacher_english": teacher},
                        learnt=("student_english", "student_translated"))


CHECKS = [
    Check("9.3.1", "semantic_search", check_semantic_search, "9.3/2", "9.3.1.hint"),
    Check("9.3.2", "encode_in_batches", check_encode_in_batches, "9.3/1", "9.3.2.hint"),
    Check("9.3.3", "distillation_loss", check_distillation_loss, "9.3/3", "9.3.3.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    "9.3.result_lists": ("{got} result lists for {n} queries: one list per query",
                         "{n} 个查询却返回了 {got} 个结果列表：每个查询对应一个列表"),
    "9.3.hit_count": ("query {row}: {got} hits, expected top_k = {top_k}",
                      "查询 {row}：返回了 {got} 条结果，应为 top_k = {top_k} 条"),
    "9.3.hit_dict": ('each hit should be a dict with "corpus_id" and "score"',
                     '每条结果都应是含 "corpus_id" 和 "score" 的 dict'),
    "9.3.order": ("query {row}: the right {top_k} entries, in the wrong order (best first)",
                  "查询 {row}：{top_k} 条结果选对了，顺序却错了（应从最好的排起）"),
    "9.3.order.hint": ("which end of np.argsort's answer holds the largest value?",
                       "np.argsort 的结果里，最大值排在哪一端？"),
    "9.3.not_top": ("query {row}: not the top {top_k} corpus entries by cosine similarity, best first",
                    "查询 {row}：返回的不是按余弦相似度从高到低排的前 {top_k} 条语料"),
    "9.3.not_top.hint": ("cosine similarity ignores how long a vector is: would your ranking change if one corpus "
                         "row were ten times longer?",
                         "余弦相似度与向量长短无关：把语料中的某一行放大十倍，你的排序会变吗？"),
    "9.3.scores": ("query {row}: scores", "查询 {row}：得分"),
    "9.3.scores.hint": ("a score is the cosine of the two directions: between -1 and 1, whatever the vectors' lengths",
                        "得分是两个方向夹角的余弦：不论向量多长，都在 -1 到 1 之间"),
    "9.3.batches": ("{n} items in batches of {batch_size}", "{n} 条数据，每批 {batch_size} 条"),
    "9.3.batch_too_big": ("{what}: encode was called with more than batch_size items",
                          "{what}：调用 encode 时传入的数据超过了 batch_size 条"),
    "9.3.empty_batch": ("{what}: encode was called with an empty batch", "{what}：调用 encode 时传入了空批"),
    "9.3.empty_batch.hint": ("count your batches for 6 items in batches of 3: how many does your loop make?",
                             "6 条数据、每批 3 条，数数你的循环分出了几批？"),
    "9.3.call_count": ("{what}: encode was called {calls} times", "{what}：encode 被调用了 {calls} 次"),
    "9.3.call_count.hint": ("count by hand: how many batches do 7 items in batches of 3 need, and 6, and 2 in "
                            "batches of 5?",
                            "手算一下：7 条数据每批 3 条要分几批？6 条呢？2 条每批 5 条呢？"),
    "9.3.once_in_order": ("{what}: every item should be encoded once, in order",
                          "{what}：每条数据都应按顺序编码，且只编码一次"),
    "9.3.once_in_order.hint": ("write down the slices your loop takes for 7 items in batches of 3",
                               "写出 7 条数据、每批 3 条时你的循环取的每个切片"),
    "9.3.one_array": ("{what}: return one NumPy array (every row, stacked), not a {type}",
                      "{what}：请返回一个 NumPy 数组（所有行堆叠在一起），而不是 {type}"),
    "9.3.stacked": ("{what}: stacked embeddings (n x d)", "{what}：堆叠后的嵌入向量（n x d）"),
    "9.3.stacked.hint": ("np.stack makes a new axis, np.concatenate joins along an existing one: which gives n x d?",
                         "np.stack 会新建一个轴，np.concatenate 沿已有的轴拼接：哪个得到 n x d？"),
    "9.3.distillation": ("distillation loss for {b} sentences of {d} dimensions", "{b} 个句子、{d} 维时的蒸馏损失"),
    "9.3.distillation.hint": ("the loss has two terms, one per student; for each, which tensor is the target, and is "
                              "it a mean over every number or a sum?",
                              "损失有两项，每个学生输出各一项：每一项的目标是哪个张量？是对所有数取平均，还是求和？"),
    "9.3.1.hint": ("call util.semantic_search on a tiny query and corpus and print what it returns next to yours: "
                   "same ids, same order, same scores?",
                   "用很小的查询和语料调用 util.semantic_search，把它的返回值和你的并排打印：id、顺序、得分都一样吗？"),
    "9.3.2.hint": ("run your function with an encode that prints its batch, on 7 items in batches of 3 and on 6",
                   "给你的函数传一个会打印每批数据的 encode，分别用 7 条和 6 条数据、每批 3 条试一试"),
    "9.3.3.hint": ("the loss is what training minimises: after .backward(), do both students get a gradient, and "
                   "does your value match F.mse_loss term by term?",
                   "训练最小化的就是这个损失：调用 .backward() 之后，两个学生输出都有梯度吗？你的值与逐项用 "
                   "F.mse_loss 算出的一致吗？"),
}
