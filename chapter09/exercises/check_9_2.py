"""Checks for the 9.2 exercises: recall@k, prompt-ensembled zero-shot, CLIP's contrastive loss."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed, close, unit_rows


def _recall(scores, relevant, k):
    rank = (scores > scores[np.arange(len(scores)), relevant][:, None]).sum(axis=1)  # candidates ranked above
    return float(np.mean(rank < k))


def check_recall(recall_at_k, rng):
    for _ in range(4):
        queries, candidates = int(rng.integers(5, 12)), int(rng.integers(15, 40))  # rectangular: axes matter
        scores = rng.normal(size=(queries, candidates))
        relevant = [int(r) for r in rng.integers(0, candidates, size=queries)]
        k = int(rng.integers(1, 6))
        # put a few right answers exactly at rank k (the k-th best counts) and at rank k + 1 (it does not)
        order = np.argsort(-scores, axis=1)
        for q in rng.choice(queries, size=min(queries, 4), replace=False):
            relevant[q] = int(order[q, k - 1 + int(rng.integers(0, 2))])
        got = recall_at_k(scores.copy(), list(relevant), k)
        try:
            got = float(got)
        except (TypeError, ValueError):
            raise Failed(f"return one number (a float), got {type(got).__name__}") from None
        if not np.isclose(got, _recall(scores, np.array(relevant), k)):
            raise Failed(f"wrong recall@{k} on a {queries} x {candidates} score matrix")


def _classify(images, prompts):
    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    names = list(prompts)
    centroids = unit(np.stack([unit(prompts[n]).mean(axis=0) for n in names]))
    return [names[i] for i in (unit(images) @ centroids.T).argmax(axis=1)]


def check_zero_shot(zero_shot_classify, rng):
    d, n_classes, n_prompts = 24, 5, 4
    names = [f"class_{c}" for c in rng.permutation(50)[:n_classes]]
    centres = unit_rows(rng, n_classes, d)
    prompts = {}
    for c, name in enumerate(names):
        directions = centres[c] + 0.7 * rng.normal(size=(n_prompts, d)) / np.sqrt(d)
        # raw text embeddings have different lengths: one long, misleading prompt per class
        lengths = rng.uniform(0.5, 2.0, size=(n_prompts, 1))
        directions[0] = centres[(c + 1) % n_classes] + 0.3 * rng.normal(size=d) / np.sqrt(d)
        lengths[0] = 12.0
        prompts[name] = directions / np.linalg.norm(directions, axis=1, keepdims=True) * lengths
    truth = rng.integers(0, n_classes, size=60)
    images = (centres[truth] + 0.35 * rng.normal(size=(60, d)) / np.sqrt(d)) * rng.uniform(1, 20, size=(60, 1))
    got = zero_shot_classify(images.copy(), {k: v.copy() for k, v in prompts.items()})
    got = list(got)
    if len(got) != len(images):
        raise Failed(f"{len(got)} predictions for {len(images)} images")
    if not set(got) <= set(names):
        raise Failed("predictions must be class names, the keys of prompt_embeddings")
    expected = _classify(images, prompts)
    wrong = sum(g != e for g, e in zip(got, expected))
    if wrong:
        raise Failed(f"{wrong} of {len(images)} images get a different class than prompt ensembling gives")


def check_contrastive_loss(contrastive_loss, rng):
    import torch

    from ..training import clip_contrastive_loss  # the loss the toy CLIP was trained with

    for log_scale in (0.0, float(np.log(1 / 0.07)), float(np.log(200.0))):  # CLIP's start value; one over the cap
        b, d = int(rng.integers(3, 10)), int(rng.integers(8, 33))
        images = torch.tensor(rng.normal(size=(b, d)) * rng.uniform(0.5, 5), dtype=torch.float32)
        texts = torch.tensor(rng.normal(size=(b, d)) * rng.uniform(0.5, 5), dtype=torch.float32)
        texts[: b // 2] += 2 * images[: b // 2]  # some pairs match, so the two directions differ
        images[0] *= 3.0
        scale = torch.tensor(log_scale)
        got = contrastive_loss(images.clone(), texts.clone(), scale.clone())
        if not hasattr(got, "detach") or got.numel() != 1:
            raise Failed("return a single-number torch tensor (0-d), so it can be backpropagated")
        close(got.detach().reshape(()), clip_contrastive_loss(images, texts, scale),
              f"loss with logit_scale = {log_scale:.2f}", atol=1e-4)
    images = torch.tensor(rng.normal(size=(4, 8)), dtype=torch.float32, requires_grad=True)
    contrastive_loss(images, torch.tensor(rng.normal(size=(4, 8)), dtype=torch.float32), torch.tensor(2.0)).backward()
    if images.grad is None or not torch.isfinite(images.grad).all():
        raise Failed("no finite gradient reaches image_features: keep the computation in torch")


CHECKS = [
    Check("9.2.1", "recall_at_k", check_recall,
          "rank within each query's row; a right answer ranked exactly k-th counts"),
    Check("9.2.2", "zero_shot_classify", check_zero_shot,
          "average the prompts' directions, not their raw vectors, and compare directions with the image's"),
    Check("9.2.3", "contrastive_loss", check_contrastive_loss,
          "normalise both sides, scale the cosine matrix by exp(logit_scale) (at most 100), and average "
          "the cross-entropy over rows and over columns; the right pairs sit on the diagonal"),
]
