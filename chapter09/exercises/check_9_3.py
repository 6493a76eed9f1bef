"""Checks for the 9.3 exercises: semantic search, batched encoding, the multilingual distillation loss."""
from __future__ import annotations

import numpy as np
import torch  # imported here, so that a check runs on one torch thread (core._one_torch_thread)

from .core import Check, Failed, close, gradients_match, scalar_tensor


# ----------------------------------------------------------------------------- 9.3.1
def _verify_search(semantic_search, queries, corpus, top_k: int) -> None:
    got = semantic_search(queries.copy(), corpus.copy(), top_k)
    got = list(got)
    if len(got) != len(queries):
        raise Failed(f"{len(got)} result lists for {len(queries)} queries: one list per query")
    cosine = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ \
        (corpus / np.linalg.norm(corpus, axis=1, keepdims=True)).T
    for row, hits in enumerate(got):
        hits = list(hits)
        if len(hits) != top_k:
            raise Failed(f"query {row}: {len(hits)} hits, expected top_k = {top_k}")
        if not all(isinstance(h, dict) and {"corpus_id", "score"} <= set(h) for h in hits):
            raise Failed('each hit should be a dict with "corpus_id" and "score"')
        ids = [int(h["corpus_id"]) for h in hits]
        best = [int(i) for i in np.argsort(-cosine[row])[:top_k]]
        if sorted(ids) == sorted(best) and ids != best:
            raise Failed(f"query {row}: the right {top_k} entries, in the wrong order (best first)",
                         "which end of np.argsort's answer holds the largest value?")
        if ids != best:
            raise Failed(f"query {row}: not the top {top_k} corpus entries by cosine similarity, best first",
                         "cosine similarity ignores how long a vector is: would your ranking change if one "
                         "corpus row were ten times longer?")
        close([h["score"] for h in hits], cosine[row, ids], f"query {row}: scores",
              hint="a score is the cosine of the two directions: between -1 and 1, whatever the vectors' lengths")


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
    what = f"{n} items in batches of {batch_size}"
    if any(len(batch) > batch_size for batch in calls):
        raise Failed(f"{what}: encode was called with more than batch_size items")
    if any(len(batch) == 0 for batch in calls):
        raise Failed(f"{what}: encode was called with an empty batch", "count your batches for 6 items in "
                     "batches of 3: how many does your loop make?")
    if len(calls) != -(-n // batch_size):
        raise Failed(f"{what}: encode was called {len(calls)} times",
                     "count by hand: how many batches do 7 items in batches of 3 need, and 6, and 2 in batches of 5?")
    if [item for batch in calls for item in batch] != items:
        raise Failed(f"{what}: every item should be encoded once, in order",
                     "write down the slices your loop takes for 7 items in batches of 3")
    if not isinstance(got, np.ndarray):
        raise Failed(f"{what}: return one NumPy array (every row, stacked), not a {type(got).__name__}")
    close(got, np.stack([table[item] for item in items]), f"{what}: stacked embeddings (n x d)",
          hint="np.stack makes a new axis, np.concatenate joins along an existing one: which gives n x d?")


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
              f"distillation loss for {b} sentences of {d} dimensions",
              hint="the loss has two terms, one per student; for each, which tensor is the target, and is it "
                   "a mean over every number or a sum?")
        gradients_match(distillation_loss, _reference_distillation,
                        {"student_english": student_en, "student_translated": student_zh, "teacher_english": teacher},
                        learnt=("student_english", "student_translated"))


CHECKS = [
    Check("9.3.1", "semantic_search", check_semantic_search,
          "lesson 9.3, step 2 (Search with util.semantic_search and util.cos_sim)",
          "call util.semantic_search on a tiny query and corpus and print what it returns next to yours: "
          "same ids, same order, same scores?"),
    Check("9.3.2", "encode_in_batches", check_encode_in_batches,
          "lesson 9.3, step 1 (One interface for images and text)",
          "run your function with an encode that prints its batch, on 7 items in batches of 3 and on 6"),
    Check("9.3.3", "distillation_loss", check_distillation_loss,
          "lesson 9.3, step 3 (Chinese queries through a multilingual text encoder)",
          "the loss is what training minimises: after .backward(), do both students get a gradient, and does "
          "your value match F.mse_loss term by term?"),
]
