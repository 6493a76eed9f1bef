"""Checks for the 9.6 exercises: latency as the lessons measure it, choosing a model from a measured table."""
from __future__ import annotations

import statistics

import numpy as np

from .core import Check, Failed


def check_latency(latency_per_item, rng):
    for warmup, repeats in ((1, 3), (int(rng.integers(0, 3)), int(rng.integers(4, 8)))):
        durations = list(rng.uniform(0.5, 2.0, size=warmup + repeats))
        durations[warmup + int(rng.integers(repeats))] = 50.0  # one timed run hit by another program
        if warmup:
            durations[0] = 100.0  # the warm-up is slow (lazy loading); it must not count
        now, calls = [0.0], []

        def clock():
            return now[0]

        def run(items):
            calls.append(len(items))
            now[0] += durations[len(calls) - 1] if len(calls) <= len(durations) else 1.0

        items = list(range(int(rng.integers(2, 17))))
        got = latency_per_item(run, items, warmup=warmup, repeats=repeats, clock=clock)
        if len(calls) != warmup + repeats:
            raise Failed(f"run was called {len(calls)} times with warmup={warmup}, repeats={repeats}")
        expected = statistics.median(durations[warmup:]) / len(items)
        if not np.isclose(float(got), expected):
            raise Failed(f"wrong seconds per item with warmup={warmup}, repeats={repeats} (timed: the median of "
                         "the timed runs only, per item)")


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


def check_choose_model(choose_model, rng):
    cases = 0
    while cases < 12:
        rows = _table(rng)
        min_quality, max_memory = float(rng.uniform(0.5, 0.95)), float(rng.uniform(50, 2000))
        if cases == 0:  # the fastest model is not good enough, and the smallest is not the fastest fitting one
            rows.append({"model": "fast-but-poor", "quality": 0.1, "memory_mb": 1.0, "ms_per_item": 0.01})
        if cases == 1:
            rows.append({"model": "unmeasured", "quality": 1.0, "memory_mb": 1.0})
        if cases == 2:
            min_quality = 2.0  # nothing fits
        expected = _choose(rows, min_quality, max_memory)
        got = choose_model([dict(r) for r in rows], min_quality, max_memory)
        if got != expected:
            raise Failed(f"on a table of {len(rows)} models (min quality {min_quality:.2f}, at most {max_memory:.0f} MB) "
                         f"you chose {got!r}, which is not the fastest model meeting both limits"
                         + (" (here none does: return None)" if expected is None else ""))
        cases += 1


CHECKS = [
    Check("9.6.1", "latency_per_item", check_latency,
          "only the timed repeats count, one slow run must not move the result, and the answer is per item"),
    Check("9.6.2", "choose_model", check_choose_model,
          "a model must be measured, good enough and small enough before its speed matters"),
]
