"""Reading an index the capstone's first version wrote (one ``store.npz``), so the store can migrate it.

That version kept records and vectors in one NumPy archive. Its vectors are still good (the same
checkpoint gives the same vectors), so the store copies them into LanceDB on first open instead of
re-encoding the library; the archive is then renamed ``store.npz.migrated``. Its precision was not
recorded: the tables are marked ``migrated`` and adopted by the first run with the same checkpoint.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StoreError, log

OLD_STORE_NAME = "store.npz"
MIGRATED_PRECISION = "migrated"  # the precision recorded for a migrated table: unknown
CHUNK_ROWS = 50_000  # rows per put while copying (bounded memory for the arrow conversion)


@dataclass
class OldIndex:
    path: Path
    library: str
    records: list[dict]
    encoders: dict[str, dict]  # role -> {"location": ..., "dim": ...}
    vectors: dict[str, np.ndarray]  # role -> (records, dim), in ``records`` order

    def rows(self, role: str) -> Iterator[dict]:
        """``role``'s rows as column dicts of at most CHUNK_ROWS (what ``ImageTable.put`` takes)."""
        for start in range(0, len(self.records), CHUNK_ROWS):
            part = self.records[start:start + CHUNK_ROWS]
            yield {"path": [r["path"] for r in part], "size": [r["size"] for r in part],
                   "mtime_ns": [r["mtime_ns"] for r in part], "sha1": [r["sha1"] for r in part],
                   "width": [r.get("width", 0) for r in part], "height": [r.get("height", 0) for r in part],
                   "vector": self.vectors[role][start:start + CHUNK_ROWS]}


def read_old_index(path: Path) -> OldIndex:
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        vectors = {role: data[f"vectors__{role}"] for role in meta["encoders"]}
    records = meta["records"]
    for role, vec in vectors.items():
        if len(vec) != len(records):
            raise StoreError(f"{path}: {role} has {len(vec)} vectors for {len(records)} records; "
                             "the old index is damaged, build a new one")
    return OldIndex(path, meta["library"], records, meta["encoders"], vectors)


def retire(old: OldIndex, seconds: float) -> None:
    """Rename the migrated archive (kept, not deleted) and say what happened."""
    os.replace(old.path, old.path.with_name(OLD_STORE_NAME + ".migrated"))
    log(f"migrated {old.path} ({len(old.records)} images; {', '.join(old.encoders)} vectors kept, nothing "
        f"re-encoded) to a LanceDB database in {old.path.parent} in {seconds:.1f} s; "
        f"the old file is kept as {OLD_STORE_NAME}.migrated")
