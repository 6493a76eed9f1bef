"""Exercises for 9.6 Summary. Fill in each function, then run

    python -m chapter09.exercises check 9.6

Plain Python. Keep each function's signature.
"""
import time


def latency_per_item(run, items: list, warmup: int = 1, repeats: int = 3, clock=time.perf_counter) -> float:
    """Exercise 9.6.1. Seconds per item of ``run(items)``, measured the way 9.5 and 9.6 measure.

    Call ``run(items)`` ``warmup`` times untimed (caches, lazy initialisation), then ``repeats`` times
    timed with ``clock()`` around each call. Return the *median* time divided by the number of items
    (one slow run, another program taking the CPU, must not move the result).
    """
    raise NotImplementedError


def choose_model(rows: list[dict], min_quality: float, max_memory_mb: float) -> str | None:
    """Exercise 9.6.2. "The smallest model whose measured quality is enough", as a function.

    Each row is {"model", "quality", "memory_mb", "ms_per_item"}; a model that could not be measured
    lacks "ms_per_item" (or "quality"). Among the measured rows with quality >= ``min_quality`` and
    memory_mb <= ``max_memory_mb``, return the name of the fastest (lowest ms_per_item); None if none fits.
    """
    raise NotImplementedError
