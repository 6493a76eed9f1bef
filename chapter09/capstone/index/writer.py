"""Decoded and encoded items into table rows and failures, committed every ``checkpoint_s`` seconds; the counts
the summary reports. One writer per run, whichever engine encodes (a Ray run streams its rows back here)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..store.database import Store
from .metadata import metadata_row
from .plan import Plan
from .summary import IndexSummary
from .video import unit_of


class RowWriter:
    """Turns decoded + encoded items into table rows and failures; commits on time; counts for the summary."""

    def __init__(self, store: Store, tables: dict, plan: Plan, summary: IndexSummary, checkpoint_s: float,
                 stop_after: int | None, known_failures: dict):
        self.store, self.tables, self.plan, self.summary = store, tables, plan, summary
        self.checkpoint_s, self.stop_after, self.known_failures = checkpoint_s, stop_after, known_failures
        self.last_commit, self.encoded, self.cleared = time.time(), 0, []
        self.changed: dict[str, str] = {}  # updated path -> its new sha1 (captions of the old bytes go)
        self.counted: set[str] = set()  # videos already counted (a video's frames are one file, maybe several batches)

    def write(self, items: list[dict], vectors: dict[str, np.ndarray]) -> None:
        """``items``: decoded items (``ok``/``reason``...); ``vectors[role]``: one row per item (ignored if not needed)."""
        for role, table in self.tables.items():
            chosen = [j for j, item in enumerate(items)
                      if item["ok"] and role in self.plan.needs[unit_of(item["path"])]]
            if chosen:
                meta = [metadata_row(items[j]) for j in chosen]
                table.put({"path": [items[j]["path"] for j in chosen], "size": [items[j]["size"] for j in chosen],
                           "mtime_ns": [items[j]["mtime_ns"] for j in chosen],
                           "sha1": [items[j]["sha1"] for j in chosen], "width": [items[j]["width"] for j in chosen],
                           "height": [items[j]["height"] for j in chosen], "vector": vectors[role][chosen],
                           **{name: [m[name] for m in meta] for name in meta[0]}})
        failed = []
        for item in items:
            file = unit_of(item["path"])
            if item["ok"]:
                self.encoded += 1  # rows: a video's frames each
                if file in self.counted:
                    continue
                if file != item["path"]:
                    self.counted.add(file)
                if file in self.known_failures:
                    self.cleared.append(file)
                if file in self.plan.updated:
                    self.summary.updated += 1
                    self.changed[item["path"]] = item["sha1"]
                else:
                    self.summary.added += 1
            else:
                if not item.get("retry"):  # a broken file waits until it changes; an unreadable one is retried
                    failed.append({"path": item["path"], "size": item["size"], "mtime_ns": item["mtime_ns"],
                                   "reason": item["reason"]})
                self.summary.failed.append({"path": item["path"], "reason": item["reason"], "retried": True})
        self.store.put_failures(failed)
        if self.stop_after is not None and self.encoded >= self.stop_after:
            self.commit()
            raise KeyboardInterrupt(f"stopped after {self.encoded} images (stop_after)")
        if time.time() - self.last_commit > self.checkpoint_s:
            self.commit()

    def commit(self) -> None:
        self.store.commit()
        if self.cleared:
            self.store.drop_failures(self.cleared)
            self.cleared = []
        if self.changed:
            old = self.store.captions(list(self.changed), with_sha1=True)
            self.store.drop_captions([p for p, caps in old.items() if caps.get("sha1") != self.changed[p]])
            self.changed = {}
        self.last_commit = time.time()



def write_sample_rows(root: Path, plan: Plan, sample_rows: dict, encoders: dict, writer: RowWriter) -> int:
    """``build_index``'s ``precomputed``: the precision check's sample rows written as they are, not encoded
    again; returns how many. A row is used only where the indexer's plan still needs it, the file is in the
    state it was read at (size and modification time), and the vectors came from the very encoders indexing
    now (same identity); the rest stays in ``plan.todo``."""
    if any(sample_rows["identities"].get(role) != enc.identity for role, enc in encoders.items()):
        return 0
    todo, chosen = set(plan.todo), []
    for j, item in enumerate(sample_rows["items"]):
        if item["path"] not in todo or any(role not in sample_rows["vectors"] for role in plan.needs[item["path"]]):
            continue
        try:
            stat = (root / item["path"]).stat()
        except OSError:
            continue
        if (stat.st_size, stat.st_mtime_ns) == (item["size"], item["mtime_ns"]):
            chosen.append(j)
    if not chosen:
        return 0
    writer.write([sample_rows["items"][j] for j in chosen],
                 {role: np.asarray(v)[chosen] for role, v in sample_rows["vectors"].items()})
    done = {sample_rows["items"][j]["path"] for j in chosen}
    plan.todo = [path for path in plan.todo if path not in done]
    return len(chosen)

