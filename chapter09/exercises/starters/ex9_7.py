"""Exercises for 9.7 Capstone: a library search you build. Fill in each function, then run

    python -m chapter09.exercises check 9.7

NumPy and plain Python. Keep each function's signature.

9.7 综合项目练习：自己搭一个图库检索。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.7 --lang zh

用 NumPy 和纯 Python。不要改动函数签名。
"""
import numpy as np


def reciprocal_rank_fusion(rankings: list[list], k: int = 60) -> list[tuple]:
    """Exercise 9.7.1. Fuse several rankings into one, by reciprocal-rank fusion (Cormack et al., 2009).

    Each ranking is a list of items (paths, ids: anything hashable), best first; an item appears at most
    once in a ranking, and need not appear in every ranking. An item scores the sum, over the rankings
    that hold it, of 1 / (k + its place in that ranking), where the best place is 1.

    Return a list of (item, score) pairs, one per item that appears anywhere, highest score first (items
    with equal scores may come in any order).

    练习 9.7.1：用倒数排名融合（Cormack et al., 2009）把几个排名合成一个。

    每个排名是一个条目列表（路径、id：任何可哈希的对象），最好的在前；一个条目在同一排名里至多出现
    一次，也不必出现在每个排名里。条目的得分是：在含有它的各个排名中，1 / (k + 它在该排名中的名次)
    之和，最好的名次记为 1。

    返回 (item, score) 对组成的列表，凡在任一排名中出现过的条目各占一对，按得分从高到低排列（得分相同的
    条目先后不限）。
    """
    raise NotImplementedError


def filtered_top_k(scores: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Exercise 9.7.2. The exact top-k under a filter.

    ``scores``: (n,) floats, one per indexed row (cosine similarities: they can be negative);
    ``mask``: (n,) booleans, True for the rows the filter keeps; ``k`` >= 1.

    Return the row indices (integers into ``scores``) of the ``k`` highest-scoring rows *among those the
    filter keeps*, best first: fewer than ``k`` when fewer rows match, an empty integer array when none
    does. Rows with equal scores may come in any order.

    练习 9.7.2：带过滤条件的精确 top-k。

    ``scores``：(n,) 浮点数，每个已建索引的行一个（余弦相似度，可能为负）；
    ``mask``：(n,) 布尔值，过滤条件保留的行为 True；``k`` >= 1。

    返回*过滤条件保留的行中*得分最高的 ``k`` 行的行索引（``scores`` 的整数下标），得分高的在前：符合条件
    的行不足 ``k`` 行时少于 ``k`` 个，一行都不符合时返回空的整数数组。得分相同的行先后不限。
    """
    raise NotImplementedError


def rerank(candidates: list, first_stage_scores, second_stage_fn, n: int) -> list:
    """Exercise 9.7.3. A two-stage re-ranker.

    ``candidates``: items, in no particular order; ``first_stage_scores[i]``: the fast first stage's score
    of ``candidates[i]`` (higher is better). ``second_stage_fn(items)`` scores a list of items with a
    slower, better model and returns one score per item (higher is better); it is expensive, so call it
    once, on the ``n`` candidates the first stage scores highest (on all of them if there are fewer).

    Return every candidate: those ``n``, ordered by the second stage's scores (best first; equal second-
    stage scores keep their first-stage order), followed by the rest in first-stage order (best first).

    练习 9.7.3：两阶段重排序器。

    ``candidates``：候选条目，没有特定顺序；``first_stage_scores[i]``：快速的第一阶段给 ``candidates[i]``
    的分数（越高越好）。``second_stage_fn(items)`` 用更慢、更准的模型给一组条目打分，每个条目返回一个分数
    （越高越好）；它开销大，所以只调用一次，只处理第一阶段得分最高的 ``n`` 个候选（不足 ``n`` 个就全部处理）。

    返回全部候选：先是这 ``n`` 个，按第二阶段的分数排列（高的在前；第二阶段分数相同的保持第一阶段的先后），
    其后是其余候选，按第一阶段的顺序排列（高的在前）。
    """
    raise NotImplementedError
