"""Checks for the 9.6 exercises: latency as the lessons measure it, choosing a model from a measured table."""
from __future__ import annotations

import statistics

import numpy as np

from .core import Check, Failed


def _verify_latency(latency_per_item, durations: list[float], warmup: int, repeats: int, n_items: int) -> None:
    """Run ``latency_per_item`` on a fake clock: call i of ``run`` takes ``durations[i]`` seconds."""
    now, calls = [0.0], []

    def clock():
        return now[0]

    def run(items):
        calls.append(len(items))
        now[0] += durations[len(calls) - 1] if len(calls) <= len(durations) else 1.0

    got = latency_per_item(run, list(range(n_items)), warmup=warmup, repeats=repeats, clock=clock)
    what = f"warmup={warmup}, repeats={repeats}, {n_items} items"
    if len(calls) != warmup + repeats:
        raise Failed(f"{what}: run was called {len(calls)} times")
    try:
        got = float(got)
    except (TypeError, ValueError):
        raise Failed(f"return the seconds per item as one number, not a {type(got).__name__}") from None
    timed = sorted(durations[warmup:warmup + repeats])
    if np.isclose(got, statistics.median(timed) / n_items):
        return
    if repeats % 2 == 0 and got * n_items in (timed[repeats // 2], timed[repeats // 2 - 1]):
        raise Failed(f"{what}: with an even number of timed runs the median is not one of them",
                     "what is the median of 1, 2, 3 and 10?")
    raise Failed(f"{what}: wrong seconds per item (the timed runs only, a slow one must not move it, per item)",
                 "put the warm-up and the timed runs of your function on paper for warmup=1, repeats=4: which "
                 "of them does your result depend on, and how?")


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
        raise Failed("return the model's name (a string), not its row")
    raise Failed(f"on a table of {len(rows)} models (min quality {min_quality:.2f}, at most {max_memory:.0f} MB) "
                 f"you chose {got!r}, which is not the fastest measured model meeting both limits"
                 + (" (here none does: return None)" if expected is None else ""),
                 "go through the rows one by one and cross out those that must not be chosen, saying why; what "
                 "does 'at least' allow, and what is left to compare among the rest?")


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
    Check("9.6.1", "latency_per_item", check_latency,
          "lesson 9.6, step 2 (Measure what is here)",
          "time a fake run whose calls take 100, 1, 3, 50 and 2 seconds with warmup=1, repeats=4, 4 items: "
          "what should come out, and why is it not 14?"),
    Check("9.6.2", "choose_model", check_choose_model,
          "lesson 9.6, step 3 (The learning path, in one breath)",
          "a model must be measured, good enough and small enough before its speed matters"),
]
