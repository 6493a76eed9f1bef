"""Checks for the 9.3 exercises: semantic search, batched encoding, the multilingual distillation loss."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed, close


def check_semantic_search(semantic_search, rng):
    q, c, d = int(rng.integers(2, 5)), int(rng.integers(12, 30)), int(rng.integers(8, 24))
    queries = rng.normal(size=(q, d))
    corpus = rng.normal(size=(c, d)) * rng.uniform(0.2, 15, size=(c, 1))  # lengths differ: dot != cosine
    top_k = int(rng.integers(2, 6))
    got = semantic_search(queries.copy(), corpus.copy(), top_k)
    if len(got) != q:
        raise Failed(f"{len(got)} result lists for {q} queries")
    cosine = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ \
        (corpus / np.linalg.norm(corpus, axis=1, keepdims=True)).T
    for row, hits in enumerate(got):
        hits = list(hits)
        if len(hits) != top_k:
            raise Failed(f"query {row}: {len(hits)} hits, expected top_k = {top_k}")
        if not all(isinstance(h, dict) and {"corpus_id", "score"} <= set(h) for h in hits):
            raise Failed('each hit should be a dict with "corpus_id" and "score"')
        ids = [int(h["corpus_id"]) for h in hits]
        if ids != [int(i) for i in np.argsort(-cosine[row])[:top_k]]:
            raise Failed(f"query {row}: not the top {top_k} corpus entries by cosine similarity, best first")
        close([h["score"] for h in hits], cosine[row, ids], f"query {row}: scores")


def check_encode_in_batches(encode_in_batches, rng):
    d = int(rng.integers(3, 9))
    n, batch_size = int(rng.integers(11, 40)), int(rng.integers(3, 8))
    while n % batch_size == 0:  # a short last batch must not be lost
        n += 1
    items = [f"item-{i}-{int(rng.integers(1000))}" for i in range(n)]
    table = {item: rng.normal(size=d) for item in items}
    calls = []

    def encode(batch):
        calls.append(list(batch))
        return np.stack([table[item] for item in batch])

    got = np.asarray(encode_in_batches(encode, list(items), batch_size))
    if any(len(batch) > batch_size for batch in calls):
        raise Failed(f"encode was called with more than batch_size = {batch_size} items")
    if len(calls) != -(-n // batch_size):
        raise Failed(f"encode was called {len(calls)} times for {n} items in batches of {batch_size}")
    if [item for batch in calls for item in batch] != items:
        raise Failed("every item should be encoded once, in order")
    close(got, np.stack([table[item] for item in items]), "stacked embeddings")


def check_distillation_loss(distillation_loss, rng):
    import torch

    b, d = int(rng.integers(3, 9)), int(rng.integers(4, 17))
    student_en, student_zh, teacher = (torch.tensor(rng.normal(size=(b, d)), dtype=torch.float32) for _ in range(3))
    student_zh = student_zh * 2.0  # the two students differ in scale, so swapping roles shows
    expected = ((student_en - teacher) ** 2).mean() + ((student_zh - teacher) ** 2).mean()
    got = distillation_loss(student_en.clone(), student_zh.clone(), teacher.clone())
    if not hasattr(got, "detach") or got.numel() != 1:
        raise Failed("return a single-number torch tensor (0-d)")
    close(got.detach().reshape(()), expected, "distillation loss")


CHECKS = [
    Check("9.3.1", "semantic_search", check_semantic_search,
          "cosine similarity needs unit vectors on both sides; sort each query's row from high to low"),
    Check("9.3.2", "encode_in_batches", check_encode_in_batches,
          "step through the list in strides of batch_size; the last slice may be shorter"),
    Check("9.3.3", "distillation_loss", check_distillation_loss,
          "both student outputs are pulled towards the teacher's embedding of the English sentence"),
]
