"""The precision sidecars, in one format, read and written here only: ``precision.json`` (the precision ``index``
encoded the images at) and ``captions-precision.json`` (the one ``caption --index`` captions at).

A sidecar is ``{"format": 2, "verdicts": [VERDICT, ...]}``. A verdict is one JSON object holding at least
``precision``, ``reason``, ``cpu`` (``cpu.describe()``: a verdict holds for one CPU) and ``recorded_at``; the
keys that say what it was measured for (its *subject*: the index's encoder ``locations``; the captioner's
``captioner``, ``location`` and ``candidates``); and whatever else the measurement reported (fidelity rows,
bar, margins, sample, runtime...).

Sidecars written before this format still read, as verdicts: an old ``precision.json`` was one verdict as a
flat object; an old ``captions-precision.json`` mapped a key, the JSON list [captioner, location, candidates,
CPU name, CPU flags], to {precision, reason, fidelity}. The next write turns them into this format.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from ...cpu import cpu_name, describe, flags

FORMAT = 2
INDEX_SIDECAR = "precision.json"
CAPTION_SIDECAR = "captions-precision.json"


def read_verdicts(path: Path) -> list[dict]:
    """The verdicts ``path`` records, whichever format wrote it; [] when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    if data.get("format") == FORMAT:
        return [v for v in data.get("verdicts", ()) if isinstance(v, dict) and "precision" in v]
    if "precision" in data:  # an old precision.json: one verdict, flat
        return [data]
    return [v for v in map(_old_caption_verdict, data.items()) if v is not None]


def _old_caption_verdict(entry) -> dict | None:
    """A verdict of an old ``captions-precision.json``: its key named the CPU by name and flags, which this
    machine's ``describe()`` stands for when they are this CPU's."""
    key, verdict = entry
    try:
        captioner, location, candidates, name, cpu_flags = json.loads(key)
    except (ValueError, TypeError):
        return None
    if not isinstance(verdict, dict) or "precision" not in verdict:
        return None
    here = name == cpu_name() and sorted(cpu_flags) == sorted(flags())
    cpu = describe() if here else f"{name}: {' '.join(sorted(cpu_flags))}"
    return {"recorded_at": None, **verdict, "captioner": captioner, "location": location,  # when: not recorded
            "candidates": sorted(candidates), "cpu": cpu}


def find_verdict(path: Path, subject: dict) -> dict | None:
    """The verdict ``path`` records for ``subject`` (every key equal) on this CPU, or None: measure."""
    here = describe()
    for verdict in read_verdicts(path):
        if verdict.get("cpu") == here and all(verdict.get(key) == value for key, value in subject.items()):
            return verdict
    return None


def record_verdict(path: Path, verdict: dict, subject: dict, *, only: bool = False) -> dict:
    """Record ``verdict`` for ``subject`` on this CPU in ``path`` (atomically: written, then renamed) and return
    it as recorded. It replaces the verdict for the same subject and CPU; ``only``: every other verdict too (an
    index is encoded at one precision)."""
    recorded = {**verdict, **subject, "cpu": describe(), "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    kept = [] if only else [v for v in read_verdicts(path)
                            if not (v.get("cpu") == recorded["cpu"] and all(v.get(k) == subject[k] for k in subject))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"format": FORMAT, "verdicts": kept + [recorded]}, out, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return recorded
