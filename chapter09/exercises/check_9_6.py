"""Checks for the 9.6 exercises: latency as the lessons measure it, choosing a model from a measured table."""
from __future__ import annotations

import statistics

import numpy as np

from .core import Check, Failed, msg


def _verify_latency(latency_per_item, durations: list[float], warmup: int, repeats: int, n_items: int) -> None:
    """Run ``latency_per_item`` on a fake clock: call i of ``run`` takes ``durations[i]`` seconds."""
    now, calls = [0.0], []

    def clock():
        return now[0]

    def run(items):
        calls.append(len(items))
        now[0] += durations[len(calls) - 1] if len(calls) <= len(durations) else 1.0

    got = latency_per_item(run, list(range(n_items)), warmup=warmup, repeats=repeats, clock=clock)
    what = msg("9.6.setting", warmup=warmup, repeats=repeats, n_items=n_items)
    if len(calls) != warmup + repeats:
        raise Failed("9.6.call_count", what=what, calls=len(calls))
    try:
        got = float(got)
    except (TypeError, ValueError):
        raise Failed("9.6.one_number", type=type(got).__name__) from None
    timed = sorted(durations[warmup:warmup + repeats])
    if np.isclose(got, statistics.median(timed) / n_items):
        return
    if repeats % 2 == 0 and got * n_items in (timed[repeats // 2], timed[repeats // 2 - 1]):
        raise Failed("9.6.even_median", "9.6.even_median.hint", what=what)
    raise Failed("9.6.wrong_latency", "9.6.wrong_latency.hint", what=what)


def check_latency(latency_per_item, rng):
    # fixed: an even and an odd number of timed runs, slow warm-ups, one timed run hit by another program
    _verify_latency(latency_per_item, [100.0, 1.0, 3.0, 50.0, 2.0], warmup=1, repeats=4, n_items=4)
    _verify_latency(latency_per_item, [1.0, 60.0, 2.0], warmup=0, repeats=3, n_items=5)
    _verify_latency(latency_per_item, [90.0, 80.0, 0.5, 0.7, 40.0, 0.9, 0.6, 0.8], warmup=2, repeats=6, n_items=3)
    for warmup, repeats in ((int(rng.integers(0, 3)), int(rng.integers(2, 5)) * 2),
                            (int(rng.integers(0, 3)), int(rng.integers(2, 5)) * 2 + 1)):
        durations = list(rng.uniform(0.5, 2.0, size=warmup + repeats))
        durations[warmup + int(rng.integers(repeats))] = 50.0  # one timed run hit by another program
        if warmup:
            durations[0] = 100.0  # the warm-up is slow (lazy loading); it must not count
        _verify_latency(latency_per_item, durations, warmup, repeats, int(rng.integers(2, 17)))


def _table(rng):
    rows = []
    for i in range(int(rng.integers(5, 9))):
        row = {"model": f"model-{i}-{int(rng.integers(100))}", "quality": round(float(rng.uniform(0.5, 1.0)), 3),
               "memory_mb": round(float(rng.uniform(5, 2000)), 1), "ms_per_item": round(float(rng.uniform(1, 500)), 2)}
        if rng.random() < 0.2:
            del row["ms_per_item"]  # "not available here"
        rows.append(row)
    return rows


def _choose(rows, min_quality, max_memory_mb):
    fitting = [r for r in rows if "ms_per_item" in r and "quality" in r
               and r["quality"] >= min_quality and r["memory_mb"] <= max_memory_mb]
    return min(fitting, key=lambda r: r["ms_per_item"])["model"] if fitting else None


def _verify_choice(choose_model, rows, min_quality: float, max_memory: float) -> None:
    expected = _choose(rows, min_quality, max_memory)
    got = choose_model([dict(r) for r in rows], min_quality, max_memory)
    if got == expected:
        return
    if isinstance(got, dict):
        raise Failed("9.6.name_not_row")
    raise Failed("9.6.none_fits" if expected is None else "9.6.wrong_choice", "9.6.wrong_choice.hint",
                 rows=len(rows), min_quality=min_quality, max_memory=max_memory, got=repr(got))


FIXED_TABLE = [
    {"model": "fast-but-poor", "quality": 0.5, "memory_mb": 10.0, "ms_per_item": 1.0},
    {"model": "unmeasured", "quality": 0.99, "memory_mb": 5.0},
    {"model": "smallest", "quality": 0.9, "memory_mb": 20.0, "ms_per_item": 40.0},
    {"model": "best-quality", "quality": 0.97, "memory_mb": 400.0, "ms_per_item": 90.0},
    {"model": "on-both-limits", "quality": 0.8, "memory_mb": 500.0, "ms_per_item": 8.0},
    {"model": "too-big", "quality": 0.95, "memory_mb": 900.0, "ms_per_item": 2.0},
]


def check_choose_model(choose_model, rng):
    _verify_choice(choose_model, FIXED_TABLE, 0.8, 500.0)  # exactly at both limits still fits
    _verify_choice(choose_model, FIXED_TABLE, 0.85, 500.0)
    _verify_choice(choose_model, FIXED_TABLE, 2.0, 500.0)  # nothing fits
    for _ in range(8):
        rows = _table(rng)
        _verify_choice(choose_model, rows, float(rng.uniform(0.5, 0.95)), float(rng.uniform(50, 2000)))


CHECKS = [
    Check("9.6.1", "latency_per_item", check_latency, "9.6/2", "9.6.1.hint"),
    Check("9.6.2", "choose_model", check_choose_model, "9.6/3", "9.6.2.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    "9.6.setting": ("warmup={warmup}, repeats={repeats}, {n_items} items",
                    "warmup={warmup}、repeats={repeats}、{n_items} 条数据"),
    "9.6.call_count": ("{what}: run was called {calls} times", "{what}：run 被调用了 {calls} 次"),
    "9.6.one_number": ("return the seconds per item as one number, not a {type}",
                       "请把每条数据的耗时（秒）作为一个数返回，而不是 {type}"),
    "9.6.even_median": ("{what}: with an even number of timed runs the median is not one of them",
                        "{what}：计时次数为偶数时，中位数不是其中任何一次的耗时"),
    "9.6.even_median.hint": ("what is the median of 1, 2, 3 and 10?", "1、2、3、10 的中位数是多少？"),
    "9.6.wrong_latency": ("{what}: wrong seconds per item (the timed runs only, a slow one must not move it, per item)",
                          "{what}：每条数据的耗时算错了（只算计时的那几次，一次慢的不能影响结果，还要除以数据条数）"),
    "9.6.wrong_latency.hint": ("put the warm-up and the timed runs of your function on paper for warmup=1, repeats=4: "
                               "which of them does your result depend on, and how?",
                               "以 warmup=1、repeats=4 为例，把你的函数里预热和计时的各次运行写在纸上：结果取决于"
                               "其中哪几次？怎么算出来的？"),
    "9.6.name_not_row": ("return the model's name (a string), not its row", "请返回模型名（字符串），而不是整行"),
    "9.6.wrong_choice": ("on a table of {rows} models (min quality {min_quality:.2f}, at most {max_memory:.0f} MB) you "
                         "chose {got}, which is not the fastest measured model meeting both limits",
                         "在 {rows} 个模型的表上（质量不低于 {min_quality:.2f}，内存不超过 {max_memory:.0f} MB），"
                         "你选了 {got}；但在实测过、又满足两个条件的模型里，它不是最快的"),
    "9.6.none_fits": ("on a table of {rows} models (min quality {min_quality:.2f}, at most {max_memory:.0f} MB) you "
                      "chose {got}, which is not the fastest measured model meeting both limits (here none does: "
                      "return None)",
                      "在 {rows} 个模型的表上（质量不低于 {min_quality:.2f}，内存不超过 {max_memory:.0f} MB），"
                      "你选了 {got}，可这里没有一个模型同时满足两个条件：应返回 None"),
    "9.6.wrong_choice.hint": ("go through the rows one by one and cross out those that must not be chosen, saying "
                              "why; what does 'at least' allow, and what is left to compare among the rest?",
                              "逐行过一遍，划掉不能选的，并说出理由；“不低于”包括什么情况？剩下的模型之间该比什么？"),
    "9.6.1.hint": ("time a fake run whose calls take 100, 1, 3, 50 and 2 seconds with warmup=1, repeats=4, 4 items: "
                   "what should come out, and why is it not 14?",
                   "给一个假的 run 计时：各次调用分别耗时 100、1、3、50、2 秒，warmup=1、repeats=4、4 条数据。"
                   "结果应是多少？为什么不是 14？"),
    "9.6.2.hint": ("a model must be measured, good enough and small enough before its speed matters",
                   "模型先要实测过、质量够好、占用够小，之后才轮到比速度"),
}
