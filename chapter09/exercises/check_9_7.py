"""Checks for the 9.7 exercises: fusing rankings, the exact top-k under a filter, a two-stage re-ranker."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed, msg

RANK_TOLERANCE = 1e-9  # two sums of the same fractions, added in another order, may differ in the last bits


# ----------------------------------------------------------------------------- 9.7.1 reciprocal-rank fusion
def _rrf(rankings, k):
    scores = {}
    for ranking in rankings:
        for place, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + place)
    return scores


def _pairs(got, what) -> list[tuple]:
    try:
        pairs = [(item, float(score)) for item, score in got]
    except (TypeError, ValueError):
        raise Failed("9.7.pairs", what=what) from None
    return pairs


def _verify_fusion(fuse, rankings, k: int | None) -> None:
    copies = [list(r) for r in rankings]
    got = fuse(copies) if k is None else fuse(copies, k=k)
    expected = _rrf(rankings, 60 if k is None else k)
    sizes = sorted(len(r) for r in rankings)
    what = (msg("9.7.rankings_default", n=len(rankings), sizes=sizes) if k is None else
            msg("9.7.rankings", n=len(rankings), sizes=sizes, k=k))
    pairs = _pairs(got, what)
    items = [item for item, _ in pairs]
    if len(set(items)) != len(items):
        raise Failed("9.7.duplicate", "9.7.duplicate.hint", what=what)
    missing, extra = set(expected) - set(items), set(items) - set(expected)
    if missing:
        raise Failed("9.7.missing", "9.7.missing.hint", what=what, missing=len(missing), total=len(expected))
    if extra:
        raise Failed("9.7.extra", what=what, extra=len(extra))
    off = [item for item, score in pairs if abs(score - expected[item]) > RANK_TOLERANCE]
    if off:
        raise Failed("9.7.scores_off", "9.7.default_k.hint" if k is None else "9.7.scores_off.hint",
                     what=what, off=len(off), total=len(expected))
    scores = [score for _, score in pairs]
    if any(later > earlier + RANK_TOLERANCE for earlier, later in zip(scores, scores[1:])):
        raise Failed("9.7.fused_order", "9.7.fused_order.hint", what=what)


FIXED_RANKINGS = [
    # "b" is second in two rankings, "a" first in one only; "e" is held by one ranking; "d" misses one
    ([["a", "b", "c", "d"], ["b", "c", "d", "e"], ["c", "b", "f"]], None),
    ([["a", "b", "c", "d"], ["b", "c", "d", "e"], ["c", "b", "f"]], 0),
    ([[3, 1, 4, 5, 9], [2, 6, 5, 3], [5, 8, 9, 7, 1, 3]], 1),
    ([["only"], ["x", "y", "only"]], 60),
]


def check_fusion(fuse, rng):
    for rankings, k in FIXED_RANKINGS:
        _verify_fusion(fuse, rankings, k)
    pool = [f"img_{i:03d}.png" for i in range(60)]
    for _ in range(6):
        rankings = [list(rng.choice(pool, size=int(rng.integers(1, 25)), replace=False))
                    for _ in range(int(rng.integers(2, 5)))]
        _verify_fusion(fuse, rankings, None if rng.random() < 0.3 else int(rng.integers(0, 120)))


# ----------------------------------------------------------------------------- 9.7.2 top-k under a filter
def _verify_filtered(top_k, scores: np.ndarray, mask: np.ndarray, k: int) -> None:
    matching = np.flatnonzero(mask)
    want = min(k, len(matching))
    what = msg("9.7.filter_setting", n=len(scores), matching=len(matching), k=k)
    got = top_k(scores.copy(), mask.copy(), k)
    try:
        ids = np.asarray(got)
    except (TypeError, ValueError):
        raise Failed("9.7.row_array", what=what) from None
    if ids.ndim != 1:
        raise Failed("9.7.one_d", what=what, shape=ids.shape)
    if len(ids) and not (np.issubdtype(ids.dtype, np.integer) and not np.issubdtype(ids.dtype, np.bool_)):
        raise Failed("9.7.integer_rows", what=what, dtype=ids.dtype)
    if len(ids) != want:
        nudge = "9.7.too_many.hint" if len(ids) > want else "9.7.too_few.hint"
        raise Failed("9.7.count", nudge, what=what, got=len(ids), want=want)
    if want == 0:
        return
    if ids.min() < 0 or ids.max() >= len(scores):
        raise Failed("9.7.out_of_range", what=what)
    if len(set(ids.tolist())) != len(ids):
        raise Failed("9.7.row_twice", what=what)
    if not mask[ids].all():
        raise Failed("9.7.removed_rows", "9.7.removed_rows.hint", what=what, removed=int((~mask[ids]).sum()))
    chosen = scores[ids]
    best = np.sort(scores[matching])[::-1][:want]
    if not np.allclose(np.sort(chosen)[::-1], best):
        raise Failed("9.7.not_best_rows", "9.7.not_best_rows.hint", what=what)
    if np.any(np.diff(chosen) > 0):
        raise Failed("9.7.rows_order", what=what)


def check_filtered_top_k(top_k, rng):
    n = 12
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.35, 0.3, 0.2, 0.1, 0.05, 0.0])
    mask = np.zeros(n, bool)
    mask[[4, 7, 9, 10, 11]] = True  # the unfiltered top 4 all fail the filter
    _verify_filtered(top_k, scores, mask, 3)
    negative = np.array([0.5, -0.2, 0.4, -0.6, 0.3, -0.1, 0.2, -0.4])
    _verify_filtered(top_k, negative, negative < 0, 3)  # every kept row scores below zero
    _verify_filtered(top_k, scores[::-1].copy(), mask, 8)  # fewer matching rows than k
    _verify_filtered(top_k, scores, np.zeros(n, bool), 4)  # nothing matches
    ties = np.array([0.5, 0.7, 0.5, 0.7, 0.5, 0.1, 0.5])
    _verify_filtered(top_k, ties, np.array([True, False, True, True, True, True, True]), 3)  # ties at the cut
    for _ in range(6):
        n = int(rng.integers(20, 200))
        scores = rng.uniform(-1, 1, n)
        if rng.random() < 0.5:
            scores = np.round(scores, 1)  # ties
        mask = rng.random(n) < rng.choice([0.02, 0.1, 0.5, 0.9])
        _verify_filtered(top_k, scores, mask, int(rng.integers(1, 16)))


# ----------------------------------------------------------------------------- 9.7.3 a two-stage re-ranker
def _expected_rerank(candidates, first, second_of, n):
    by_first = sorted(range(len(candidates)), key=lambda i: -first[i])
    shortlist = [candidates[i] for i in by_first[:n]]
    reordered = sorted(range(len(shortlist)), key=lambda j: -second_of[shortlist[j]])
    return [shortlist[j] for j in reordered] + [candidates[i] for i in by_first[n:]], shortlist


def _verify_rerank(rerank, candidates, first, second_of, n) -> None:
    calls = []

    def second_stage(items):
        items = list(items)
        calls.append(items)
        return [second_of[item] for item in items]

    expected, shortlist = _expected_rerank(candidates, first, second_of, n)
    what = msg("9.7.rerank_setting", m=len(candidates), n=n)
    got = rerank(list(candidates), list(first), second_stage, n)
    if len(calls) != 1:
        raise Failed("9.7.calls", "9.7.calls.hint", what=what, calls=len(calls))
    if sorted(calls[0]) != sorted(shortlist):
        raise Failed("9.7.batch", "9.7.batch.hint", what=what, given=len(calls[0]), shortlist=len(shortlist))
    try:
        got = list(got)
    except TypeError:
        raise Failed("9.7.candidate_list", what=what) from None
    if sorted(got) != sorted(candidates):
        raise Failed("9.7.every_candidate", "9.7.every_candidate.hint", what=what, got=len(got))
    if got[:len(shortlist)] != expected[:len(shortlist)]:
        same = any(second_of[a] == second_of[b] for a in shortlist for b in shortlist if a != b)
        raise Failed("9.7.shortlist_order_ties" if same else "9.7.shortlist_order", "9.7.shortlist_order.hint",
                     what=what)
    if got != expected:
        raise Failed("9.7.rest_order", what=what)


def check_rerank(rerank, rng):
    candidates = ["c.png", "a.png", "e.png", "b.png", "d.png", "f.png", "g.png"]
    first = [0.2, 0.9, 0.5, 0.8, 0.1, 0.7, 0.3]  # not sorted: the first stage's best are a, b, f, e
    second = {"a.png": 0.1, "f.png": 0.6, "b.png": 0.6, "e.png": 0.9, "c.png": 0.95, "d.png": 0.99, "g.png": 0.0}
    _verify_rerank(rerank, candidates, first, second, 4)  # b and f tie in the second stage (b first)
    _verify_rerank(rerank, candidates, first, second, 10)  # n beyond the candidates: all re-scored
    _verify_rerank(rerank, candidates[:3], first[:3], second, 3)
    for _ in range(6):
        m = int(rng.integers(3, 30))
        names = [f"{name:03d}.jpg" for name in rng.choice(1000, m, replace=False)]
        first = list(rng.permutation(m) / m + rng.uniform(0, 0.01))  # distinct first-stage scores
        second = dict(zip(names, np.round(rng.uniform(0, 1, m), int(rng.integers(1, 3)))))  # ties happen
        _verify_rerank(rerank, names, first, second, int(rng.integers(1, m + 3)))


CHECKS = [
    Check("9.7.1", "reciprocal_rank_fusion", check_fusion, "9.7/6", "9.7.1.hint"),
    Check("9.7.2", "filtered_top_k", check_filtered_top_k, "9.7/4", "9.7.2.hint"),
    Check("9.7.3", "rerank", check_rerank, "9.7/7", "9.7.3.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    # 9.7.1 reciprocal-rank fusion
    "9.7.rankings_default": ("{n} rankings of {sizes} items, k left at its default",
                             "{n} 个排名（条目数 {sizes}），k 取默认值"),
    "9.7.rankings": ("{n} rankings of {sizes} items, k={k}", "{n} 个排名（条目数 {sizes}），k={k}"),
    "9.7.pairs": ("{what}: return a list of (item, score) pairs", "{what}：请返回由 (item, score) 对组成的列表"),
    "9.7.duplicate": ("{what}: an item appears more than once in your result",
                      "{what}：你的结果里有条目出现了不止一次"),
    "9.7.duplicate.hint": ("an item held by two rankings is one item with one fused score",
                           "两个排名里都有的条目仍是同一个条目，只有一个融合分数"),
    "9.7.missing": ("{what}: {missing} of the {total} items are missing from your result",
                    "{what}：{total} 个条目中有 {missing} 个不在你的结果里"),
    "9.7.missing.hint": ("an item that only some of the rankings hold is still a result: which rankings does the "
                         "docstring let it score from?",
                         "只出现在部分排名里的条目同样是结果：按文档字符串，它能从哪些排名得分？"),
    "9.7.extra": ("{what}: your result holds {extra} item(s) that no ranking holds",
                  "{what}：你的结果里有 {extra} 个条目不在任何一个排名中"),
    "9.7.scores_off": ("{what}: {off} of the {total} fused scores are off",
                       "{what}：{total} 个融合分数中有 {off} 个不对"),
    "9.7.default_k.hint": ("call it without k, as the search does: what does the signature promise?",
                           "像检索代码那样不传 k 调用它：函数签名承诺了什么？"),
    "9.7.scores_off.hint": ("score the fixed example by hand: an item first in one ranking, and one second in two; "
                            "which place counts as 1, and what does k add to it?",
                            "手算固定示例的分数：一个条目在某一个排名里排第一，另一个在两个排名里都排第二。"
                            "哪个名次记作 1？k 又在名次上加了什么？"),
    "9.7.fused_order": ("{what}: the scores are right but not best first",
                        "{what}：分数都对，但没有按从高到低排列"),
    "9.7.fused_order.hint": ("the first pair of your list should be the item a user sees first",
                             "列表的第一对应当是用户最先看到的那个条目"),
    # 9.7.2 the top-k under a filter
    "9.7.filter_setting": ("{n} rows, {matching} matching the filter, k={k}",
                           "共 {n} 行，其中 {matching} 行符合过滤条件，k={k}"),
    "9.7.row_array": ("{what}: return an array of row indices", "{what}：请返回由行索引组成的数组"),
    "9.7.one_d": ("{what}: return a 1-D array of row indices, not shape {shape}",
                  "{what}：请返回 1 维的行索引数组，而不是形状为 {shape} 的数组"),
    "9.7.integer_rows": ("{what}: return integer row indices, not {dtype}",
                         "{what}：行索引应为整数，而不是 {dtype}"),
    "9.7.count": ("{what}: {got} indices, expected {want}", "{what}：返回了 {got} 个索引，应为 {want} 个"),
    "9.7.too_many.hint": ("when fewer rows match than k, which rows could still honestly be returned?",
                          "符合条件的行不足 k 行时，还有哪些行能名正言顺地返回？"),
    "9.7.too_few.hint": ("if the k best rows of the whole library are all ones the filter removes, what should come "
                         "back, and how many?",
                         "假如整个图库得分最高的 k 行全被过滤掉了，应当返回什么？返回几行？"),
    "9.7.out_of_range": ("{what}: an index out of range (indices are rows of scores)",
                         "{what}：有索引越界（索引指的是 scores 的行）"),
    "9.7.row_twice": ("{what}: a row appears twice", "{what}：有一行出现了两次"),
    "9.7.removed_rows": ("{what}: {removed} of your rows are ones the filter removes",
                         "{what}：你返回的行里有 {removed} 行是被过滤掉的"),
    "9.7.removed_rows.hint": ("what should a row the filter removes score, whatever its similarity, for it never to "
                              "be chosen, even when every kept row scores below zero?",
                              "被过滤掉的行不论相似度多高，该记多少分才永远不会被选中，哪怕保留下来的行得分全是负数？"),
    "9.7.not_best_rows": ("{what}: these are not the k best of the matching rows",
                          "{what}：这些不是符合条件的行中得分最高的 k 行"),
    "9.7.not_best_rows.hint": ("are your indices rows of scores, or places in some smaller array?",
                               "你的索引是 scores 的行号，还是某个更小数组里的位置？"),
    "9.7.rows_order": ("{what}: the right rows, but not best first", "{what}：行选对了，但没有按得分从高到低排列"),
    # 9.7.3 a two-stage re-ranker
    "9.7.rerank_setting": ("{m} candidates, n={n}", "{m} 个候选，n={n}"),
    "9.7.calls": ("{what}: the second stage was called {calls} times, expected once",
                  "{what}：第二阶段被调用了 {calls} 次，应当只调用一次"),
    "9.7.calls.hint": ("the slow model is called once, on a batch: how many items does that batch hold?",
                       "慢模型只调用一次，一次处理一批：这一批里该有多少个条目？"),
    "9.7.batch": ("{what}: the second stage was given {given} items, not the {shortlist} the first stage scores "
                  "highest",
                  "{what}：第二阶段收到了 {given} 个条目，而不是第一阶段得分最高的那 {shortlist} 个"),
    "9.7.batch.hint": ("which candidates is the first stage sure enough about to spend the slow model on? The "
                       "candidates are not sorted",
                       "第一阶段对哪些候选有足够把握，值得动用慢模型？注意传进来的候选并没有排好序"),
    "9.7.candidate_list": ("{what}: return a list of candidates", "{what}：请返回候选列表"),
    "9.7.every_candidate": ("{what}: your result holds {got} items; every candidate must come back exactly once",
                            "{what}：你的结果有 {got} 个条目；每个候选都必须恰好返回一次"),
    "9.7.every_candidate.hint": ("a candidate the second stage never saw is still a result, after the others",
                                 "第二阶段没见过的候选也是结果，排在其他候选之后"),
    "9.7.shortlist_order": ("{what}: the re-scored candidates are not in the second stage's order (best first)",
                            "{what}：重新打分的候选没有按第二阶段的分数排列（从高到低）"),
    "9.7.shortlist_order_ties": ("{what}: the re-scored candidates are not in the second stage's order (best first; "
                                 "equal second-stage scores keep their first-stage order)",
                                 "{what}：重新打分的候选没有按第二阶段的分数排列（从高到低；第二阶段分数相同的，"
                                 "保持第一阶段的先后）"),
    "9.7.shortlist_order.hint": ("write the shortlist of the first fixed case with both scores: which comes first, "
                                 "and which of two equal second-stage scores?",
                                 "把第一个固定用例的入围候选连同两个分数写下来：谁排第一？第二阶段分数相同的两个，"
                                 "谁在前？"),
    "9.7.rest_order": ("{what}: the candidates after the re-scored ones are not in first-stage order (best first)",
                       "{what}：重新打分的候选之后，其余候选没有按第一阶段的顺序排列（从高到低）"),
    # the checks' own hints (check --hint)
    "9.7.1.hint": ("a ranking says which is better, not by how much: what does a place in a ranking add to an "
                   "item's fused score, and what do the rankings that do not hold it add?",
                   "排名只说明谁更好，不说明好多少：条目在某个排名里的名次给它的融合分数加了多少？"
                   "不含它的排名又加了多少？"),
    "9.7.2.hint": ("try scores 0.9, 0.8, -0.1, -0.2 with only the last two kept and k=3: what should come back?",
                   "试试 scores 为 0.9、0.8、-0.1、-0.2，只保留后两行，k=3：应当返回什么？"),
    "9.7.3.hint": ("three lists help: the candidates by first-stage score, the shortlist by second-stage score, "
                   "and what is left",
                   "列出三个列表会有帮助：按第一阶段分数排序的候选、按第二阶段分数排序的入围候选，以及剩下的候选"),
}
