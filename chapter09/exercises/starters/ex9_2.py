"""Exercises for 9.2 The similarity matrix. Fill in each function, then run

    python -m chapter09.exercises check 9.2

NumPy for 9.2.1-9.2.2, torch for 9.2.3. Keep each function's signature.

9.2 相似度矩阵练习。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.2 --lang zh

9.2.1-9.2.2 用 NumPy，9.2.3 用 torch。不要改动函数签名。
"""
import numpy as np


def recall_at_k(scores: np.ndarray, relevant: list[int], k: int) -> float:
    """Exercise 9.2.1. Recall@k: the share of queries whose right answer is among their k best candidates.

    ``scores`` is queries x candidates (row q holds query q's score for every candidate);
    ``relevant[q]`` is the index of query q's right candidate. For image -> text retrieval you
    would call it with the transposed matrix.

    练习 9.2.1：Recall@k（召回率）：正确答案排进前 k 个候选的查询所占的比例。

    ``scores`` 的形状是 查询 x 候选（第 q 行是查询 q 对每个候选的得分）；``relevant[q]`` 是查询 q
    的正确候选的下标。做图像 -> 文本检索时，传入转置后的矩阵即可。
    """
    raise NotImplementedError


def zero_shot_classify(image_embeddings: np.ndarray, prompt_embeddings: dict[str, np.ndarray]) -> list[str]:
    """Exercise 9.2.2. Zero-shot classification with prompt ensembling, as the CLIP paper does it.

    ``image_embeddings``: n x d. ``prompt_embeddings[name]``: p x d, the raw text embeddings of the
    class's p prompts ("a photo of a red ...", "a red ...", ...). Each class is represented by the
    average *direction* of its prompts; return the best class name for each image.

    练习 9.2.2：按 CLIP 论文的做法，用提示词集成做零样本分类。

    ``image_embeddings``：n x d。``prompt_embeddings[name]``：p x d，该类 p 条提示词
    （"a photo of a red ..."、"a red ..." 等）的原始文本嵌入。每个类别用其提示词的平均*方向*来代表；
    为每张图像返回最匹配的类别名。
    """
    raise NotImplementedError


def contrastive_loss(image_features, text_features, logit_scale):
    """Exercise 9.2.3. CLIP's symmetric contrastive (InfoNCE) loss for a batch of b matching pairs (torch).

    ``image_features``, ``text_features``: b x d torch tensors, pair i = (image i, text i), not normalised.
    ``logit_scale``: a 0-d tensor holding log(1 / temperature), as CLIPModel stores it; the logits are
    exp(logit_scale) x cosine similarity, with exp(logit_scale) capped at 100 as CLIP does.
    Return a 0-d tensor: the mean of the image -> text and text -> image cross-entropies.

    练习 9.2.3：CLIP 的对称对比学习损失（InfoNCE），输入是一批 b 个匹配对（用 torch）。

    ``image_features``、``text_features``：b x d 的 torch 张量，第 i 对是（图像 i，文本 i），未归一化。
    ``logit_scale``：0 维张量，存的是 log(1 / 温度系数)，与 CLIPModel 的存法相同；logits 等于
    exp(logit_scale) x 余弦相似度，并像 CLIP 一样把 exp(logit_scale) 封顶在 100。
    返回 0 维张量：图像 -> 文本与文本 -> 图像两个交叉熵的平均。
    """
    raise NotImplementedError
