"""Checks for the 9.2 exercises: recall@k, prompt-ensembled zero-shot, CLIP's contrastive loss."""
from __future__ import annotations

import numpy as np
import torch  # imported here, so that a check runs on one torch thread (core._one_torch_thread)

from .core import Check, Failed, close, gradients_match, msg, scalar_tensor, unit_rows


# ----------------------------------------------------------------------------- 9.2.1
def _recall(scores, relevant, k):
    rank = (scores > scores[np.arange(len(scores)), relevant][:, None]).sum(axis=1)  # candidates ranked above
    return float(np.mean(rank < k))


def _verify_recall(recall_at_k, scores: np.ndarray, relevant: list[int], k: int) -> None:
    got = recall_at_k(scores.copy(), list(relevant), k)
    try:
        got = float(got)
    except (TypeError, ValueError):
        raise Failed("9.2.one_number", type=type(got).__name__) from None
    if not np.isclose(got, _recall(scores, np.array(relevant), k)):
        queries, candidates = scores.shape
        raise Failed("9.2.wrong_recall", k=k, queries=queries, candidates=candidates)


# three queries, five candidates: the right answers rank 2nd, 3rd and 1st in their rows
FIXED_SCORES = np.array([[0.9, 0.1, 0.5, 0.3, 0.2], [0.1, 0.2, 0.3, 0.8, 0.9], [0.7, 0.6, 0.1, 0.2, 0.3]])


def check_recall(recall_at_k, rng):
    _verify_recall(recall_at_k, FIXED_SCORES, [2, 2, 0], k=2)
    _verify_recall(recall_at_k, FIXED_SCORES, [2, 2, 0], k=3)
    for _ in range(4):
        queries, candidates = int(rng.integers(5, 12)), int(rng.integers(15, 40))  # rectangular: axes matter
        scores = rng.normal(size=(queries, candidates))
        relevant = [int(r) for r in rng.integers(0, candidates, size=queries)]
        k = int(rng.integers(1, 6))
        # put a few right answers exactly at rank k (the k-th best counts) and at rank k + 1 (it does not)
        order = np.argsort(-scores, axis=1)
        for q in rng.choice(queries, size=min(queries, 4), replace=False):
            relevant[q] = int(order[q, k - 1 + int(rng.integers(0, 2))])
        _verify_recall(recall_at_k, scores, relevant, k)


# ----------------------------------------------------------------------------- 9.2.2
def _classify(images, prompts):
    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    names = list(prompts)
    centroids = unit(np.stack([unit(prompts[n]).mean(axis=0) for n in names]))
    return [names[i] for i in (unit(images) @ centroids.T).argmax(axis=1)]


def _verify_zero_shot(zero_shot_classify, images, prompts, what) -> None:
    got = zero_shot_classify(images.copy(), {k: v.copy() for k, v in prompts.items()})
    got = list(got)
    if len(got) != len(images):
        raise Failed("9.2.prediction_count", got=len(got), n=len(images))
    if not all(isinstance(g, str) for g in got) or not set(got) <= set(prompts):
        raise Failed("9.2.class_names")
    wrong = sum(g != e for g, e in zip(got, _classify(images, prompts)))
    if wrong:
        raise Failed("9.2.zero_shot_wrong", what=what, wrong=wrong, n=len(images))


def _spread_and_tight() -> tuple[np.ndarray, dict]:
    """Two classes in 3-D. "spread": prompts 60 degrees either side of the x axis (their mean direction is
    x itself, but the mean of the unit vectors is only half a unit long); "tight": two prompts 40 degrees
    off x, in another plane. An image on the x axis belongs to "spread"."""
    angle60, angle40 = np.radians(60), np.radians(40)
    spread = np.array([[np.cos(angle60), np.sin(angle60), 0.0], [np.cos(angle60), -np.sin(angle60), 0.0]])
    tight = np.array([[np.cos(angle40), 0.0, np.sin(angle40)]] * 2)
    prompts = {"tight": tight * np.array([[1.0], [1.0]]), "spread": spread * np.array([[3.0], [0.5]])}
    images = np.array([[2.0, 0.0, 0.0], [0.5 * np.cos(angle40), 0.0, 0.5 * np.sin(angle40)]])
    return images, prompts


def check_zero_shot(zero_shot_classify, rng):
    images, prompts = _spread_and_tight()
    _verify_zero_shot(zero_shot_classify, images, prompts, msg("9.2.two_classes"))
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
    _verify_zero_shot(zero_shot_classify, images, prompts, msg("9.2.classes", n=n_classes, p=n_prompts))


# ----------------------------------------------------------------------------- 9.2.3
def _pairs(rng, b: int, d: int):
    images = torch.tensor(rng.normal(size=(b, d)) * rng.uniform(0.5, 5), dtype=torch.float32)
    texts = torch.tensor(rng.normal(size=(b, d)) * rng.uniform(0.5, 5), dtype=torch.float32)
    texts[: b // 2] += 2 * images[: b // 2]  # some pairs match, so the two directions differ
    images[0] *= 3.0  # lengths differ
    return images, texts


def check_contrastive_loss(contrastive_loss, rng):
    from ..training import clip_contrastive_loss  # the loss the toy CLIP was trained with

    fixed = _pairs(np.random.default_rng(9), 4, 6)  # a batch where the cap changes the loss well beyond rounding
    for index, log_scale in enumerate((0.0, float(np.log(1 / 0.07)), float(np.log(200.0))) * 2):
        # CLIP's start value, one over the cap; the fixed batch first, then drawn ones
        images, texts = fixed if index < 3 else _pairs(rng, int(rng.integers(3, 10)), int(rng.integers(8, 33)))
        scale = torch.tensor(log_scale)
        got = scalar_tensor(contrastive_loss(images.clone(), texts.clone(), scale.clone()))
        close(got.detach().reshape(()), clip_contrastive_loss(images, texts, scale),
              msg("9.2.loss_at", log_scale=log_scale, scale=float(np.exp(log_scale))), atol=1e-4)
    images, texts = _pairs(rng, int(rng.integers(3, 8)), int(rng.integers(4, 12)))
    gradients_match(contrastive_loss, clip_contrastive_loss,
                    {"image_features": images, "text_features": texts, "logit_scale": torch.tensor(2.3)},
                    learnt=("image_features", "text_features", "logit_scale"))


CHECKS = [
    Check("9.2.1", "recall_at_k", check_recall, "9.2/4", "9.2.1.hint"),
    Check("9.2.2", "zero_shot_classify", check_zero_shot, "9.2/3", "9.2.2.hint"),
    Check("9.2.3", "contrastive_loss", check_contrastive_loss, "9.2/2", "9.2.3.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    "9.2.one_number": ("return one number (a float), got {type}", "请返回一个数（float），得到的却是 {type}"),
    "9.2.wrong_recall": ("wrong recall@{k} on a {queries} x {candidates} score matrix (queries x candidates)",
                         "在 {queries} x {candidates} 的得分矩阵（查询 x 候选）上，recall@{k} 算错了"),
    "9.2.prediction_count": ("{got} predictions for {n} images", "{n} 张图像却给出了 {got} 个预测"),
    "9.2.class_names": ("predictions must be class names, the keys of prompt_embeddings",
                        "预测结果必须是类别名，也就是 prompt_embeddings 的键"),
    "9.2.zero_shot_wrong": ("{what}: {wrong} of {n} images get a different class than prompt ensembling gives",
                            "{what}：{n} 张图像中有 {wrong} 张的类别与提示词集成的结果不同"),
    "9.2.two_classes": ("two classes whose prompts spread differently", "两个类别，提示词的分散程度不同"),
    "9.2.classes": ("{n} classes of {p} prompts", "{n} 个类别，每类 {p} 条提示词"),
    "9.2.loss_at": ("loss with logit_scale = {log_scale:.2f} (exp: {scale:.1f})",
                    "logit_scale = {log_scale:.2f}（取 exp 后为 {scale:.1f}）时的损失"),
    "9.2.1.hint": ("work the 3 x 5 matrix [[.9,.1,.5,.3,.2], [.1,.2,.3,.8,.9], [.7,.6,.1,.2,.3]] with right "
                   "answers [2, 2, 0] by hand for k = 2 and k = 3, then compare with your function",
                   "拿 3 x 5 的矩阵 [[.9,.1,.5,.3,.2], [.1,.2,.3,.8,.9], [.7,.6,.1,.2,.3]]、正确答案 [2, 2, 0]，"
                   "分别手算 k = 2 和 k = 3，再和你的函数对照"),
    "9.2.2.hint": ("is the average of two unit vectors a unit vector? Take two unit vectors 120 degrees apart and "
                   "see what comparing an image with their average rewards",
                   "两个单位向量的平均还是单位向量吗？取夹角 120 度的两个单位向量，看看拿图像与这个平均比较时，"
                   "什么样的类别会占便宜"),
    "9.2.3.hint": ("CLIP learns its temperature: after loss.backward(), does each of the three inputs have a .grad? "
                   "Does your loss still change when exp(logit_scale) is above 100, and does it treat texts as "
                   "queries too?",
                   "CLIP 的温度系数是学出来的：loss.backward() 之后，三个输入是否都有 .grad？exp(logit_scale) "
                   "超过 100 时你的损失还在变吗？文本是否也被当作查询算了一遍？"),
}
