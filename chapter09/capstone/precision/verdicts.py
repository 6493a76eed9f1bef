"""Precision verdicts remembered across indexes: the same models, the same CPU, the same bar give the same answer.

A first ``index --precision auto`` measures bf16 and int8 against fp32 on a sample of its library (seconds to tens
of seconds: the largest share of a small first index). The verdict depends on the models, the CPU's numeric
kernels and the bar far more than on which photos were sampled, so it is kept in a user cache
(``$CH09_CACHE/precision/verdicts.json``, default ``~/.cache/chapter09``) and a later new index on this machine
reuses it. ``CH09_PRECISION_CACHE=0`` turns the cache off (every new index measures its own sample again).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from ...cpu import describe
from ...fidelity import Fidelity, FidelityBar
from ...onnx_runtime import cache_root

ENV_SWITCH = "CH09_PRECISION_CACHE"
MAX_ENTRIES = 64  # a few models x CPUs x bars: old entries beyond this are dropped, oldest first


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_file() -> Path:
    return cache_root("precision") / "verdicts.json"


def verdict_key(locations: dict[str, str], runtimes: dict[str, str], bar: FidelityBar) -> str:
    """One entry per set of encoders (by model location), the runtime each precision runs on (bf16 on torch and on
    OpenVINO round differently and run at different speeds), CPU (``cpu.describe()``: name and numeric flags,
    hidden ones included) and fidelity bar."""
    identity = json.dumps({"locations": dict(sorted(locations.items())), "cpu": describe(),
                           "runtimes": dict(sorted(runtimes.items())),
                           "bar": [bar.min_mean_cosine, bar.min_top10_agreement]}, sort_keys=True)
    return hashlib.sha1(identity.encode()).hexdigest()[:20]


def _read() -> dict:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_fidelity(locations: dict[str, str], runtimes: dict[str, str], precisions, bar: FidelityBar):
    """(fidelity rows per role, the sample they were measured on) remembered for these models on these runtimes, this
    CPU and this bar, covering every one of ``precisions``; None when the cache is off, empty or unreadable for them."""
    if not enabled():
        return None
    entry = _read().get(verdict_key(locations, runtimes, bar))
    try:
        rows = {role: {p: Fidelity.from_json(row) for p, row in entry["fidelity"][role].items()} for role in locations}
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
    if any(p not in by_precision or "fp32" not in by_precision for by_precision in rows.values() for p in precisions):
        return None
    return rows, entry.get("sample", "")


def remember_fidelity(locations: dict[str, str], runtimes: dict[str, str], bar: FidelityBar, per_role: dict,
                      sample: str) -> None:
    """Keep a freshly measured verdict (atomically: a concurrent reader sees the old file or the new one)."""
    if not enabled():
        return
    data = _read()
    data[verdict_key(locations, runtimes, bar)] = {
        "locations": locations, "runtimes": runtimes, "cpu": describe(), "sample": sample, "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "fidelity": {role: {p: row.to_json() for p, row in rows.items()} for role, rows in per_role.items()}}
    while len(data) > MAX_ENTRIES:
        oldest = min(data, key=lambda key: data[key].get("recorded_at", ""))
        del data[oldest]
    folder = cache_file().parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".verdicts-", suffix=".json", dir=folder)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, ensure_ascii=False)
    os.replace(tmp, cache_file())
