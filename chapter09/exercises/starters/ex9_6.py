"""Exercises for 9.6 Summary. Fill in each function, then run

    python -m chapter09.exercises check 9.6

Plain Python. Keep each function's signature.

9.6 总结练习。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.6 --lang zh

只用纯 Python。不要改动函数签名。
"""
import time


def latency_per_item(run, items: list, warmup: int = 1, repeats: int = 3, clock=time.perf_counter) -> float:
    """Exercise 9.6.1. Seconds per item of ``run(items)``, measured the way 9.5 and 9.6 measure.

    Call ``run(items)`` ``warmup`` times untimed (caches, lazy initialisation), then ``repeats`` times
    timed with ``clock()`` around each call. Return the *median* time divided by the number of items
    (one slow run, another program taking the CPU, must not move the result).

    练习 9.6.1：按 9.5 和 9.6 的测法，求 ``run(items)`` 处理每条数据的耗时（秒）。

    先不计时地调用 ``run(items)`` ``warmup`` 次（让缓存、延迟初始化就位），再调用 ``repeats`` 次，
    每次前后用 ``clock()`` 计时。返回耗时的*中位数*除以数据条数（偶尔一次慢了、别的程序抢了 CPU，
    都不应影响结果）。
    """
    raise NotImplementedError


def choose_model(rows: list[dict], min_quality: float, max_memory_mb: float) -> str | None:
    """Exercise 9.6.2. "The smallest model whose measured quality is enough", as a function.

    Each row is {"model", "quality", "memory_mb", "ms_per_item"}; a model that could not be measured
    lacks "ms_per_item" (or "quality"). Among the measured rows with quality >= ``min_quality`` and
    memory_mb <= ``max_memory_mb``, return the name of the fastest (lowest ms_per_item); None if none fits.

    练习 9.6.2：把“实测质量够用的最小模型”写成一个函数。

    每一行是 {"model", "quality", "memory_mb", "ms_per_item"}；没能实测的模型缺少 "ms_per_item"
    （或 "quality"）。在实测过、quality >= ``min_quality`` 且 memory_mb <= ``max_memory_mb`` 的行中，
    返回最快的（ms_per_item 最小）那个模型的名字；一个都不满足时返回 None。
    """
    raise NotImplementedError
