"""The image-library index: incremental, resumable, atomic, and honest about failures.

An index folder holds one file, ``store.npz`` (embeddings per encoder, one row per
image, plus JSON metadata), always replaced atomically (write, fsync, rename), so a
run killed at any moment leaves the previous checkpoint intact. Rows are keyed by
the image's path relative to the library, so re-running never duplicates: files
whose size and modification time are unchanged are skipped, changed ones are
re-encoded, deleted ones dropped. Checkpoints are written every ``checkpoint_s``
seconds, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..images import IMAGE_SUFFIXES, BadImageError, load_image

STORE_NAME = "store.npz"
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------- files
def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def walk_library(root: Path) -> list[Path]:
    """Every file under ``root`` (recursively, hidden folders skipped), sorted, relative to ``root``."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith("."):
                found.append((Path(folder) / name).relative_to(root))
    return sorted(found)


# ----------------------------------------------------------------------------- the store
@dataclass
class Store:
    """Rows of (record, one embedding per encoder); records are dicts keyed by 'path'."""

    library: str
    encoders: dict[str, dict]  # role -> {"location": ..., "dim": ...}
    records: list[dict] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    ann_recall: dict = field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def absolute(self, relative: str) -> Path:
        return Path(self.library) / relative

    def save(self, index_dir: Path) -> None:
        index_dir.mkdir(parents=True, exist_ok=True)
        meta = {"version": FORMAT_VERSION, "library": self.library, "encoders": self.encoders,
                "records": self.records, "ann_recall": self.ann_recall}
        arrays = {f"vectors__{role}": self.vectors[role] for role in self.encoders}
        handle, tmp = tempfile.mkstemp(prefix=".store-", suffix=".npz", dir=index_dir)
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, meta=np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8),
                         **arrays)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, index_dir / STORE_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def load(index_dir: str | Path) -> "Store":
        path = Path(index_dir) / STORE_NAME
        if not path.exists():
            raise FileNotFoundError(f"no index at {index_dir} (missing {STORE_NAME}); build one with "
                                    f"`python -m chapter09.capstone index LIBRARY_DIR --index {index_dir}`")
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            vectors = {role: data[f"vectors__{role}"] for role in meta["encoders"]}
        return Store(meta["library"], meta["encoders"], meta["records"], vectors, meta.get("ann_recall", {}))


# ----------------------------------------------------------------------------- indexing
@dataclass
class IndexSummary:
    library: str
    index: str
    total: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # files whose type is not an image (captions.jsonl...)
    seconds: float = 0.0
    images_per_s: float = 0.0

    def to_json(self) -> dict:
        return {**self.__dict__, "failed_count": len(self.failed)}

    def text(self) -> str:
        lines = [f"index {self.index}: {self.total} images from {self.library}",
                 f"  added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                 f"removed {self.removed}, failed {len(self.failed)}, skipped {len(self.skipped)} non-image files  "
                 f"({self.seconds:.1f} s, {self.images_per_s:.1f} images/s encoded)"]
        for failure in self.failed:
            lines.append(f"  FAILED {failure['path']}: {failure['reason']}")
        return "\n".join(lines)


class _Decoded:
    """DataLoader dataset: decodes and preprocesses in worker processes, errors travel as strings."""

    def __init__(self, root: Path, relative: list[str], preprocessors: dict, min_side: int):
        self.root, self.relative, self.preprocessors, self.min_side = root, relative, preprocessors, min_side

    def __len__(self):
        return len(self.relative)

    def __getitem__(self, i):
        path = self.root / self.relative[i]
        try:
            image = load_image(path, min_side=self.min_side)
            pixels = {role: pre(images=[image], return_tensors="pt")["pixel_values"][0]
                      for role, pre in self.preprocessors.items()}
            return i, pixels, None, image.size
        except BadImageError as error:
            return i, None, str(error).replace(str(path) + ": ", ""), None
        except Exception as error:  # a library bug on one file must not end the run
            return i, None, f"{type(error).__name__}: {error}", None


def _collate(items):
    return items


def build_index(library: str | Path, index_dir: str | Path, encoders: dict, batch_size: int = 64,
                workers: int | None = None, checkpoint_s: float = 20.0, progress: bool = True,
                stop_after: int | None = None) -> IndexSummary:
    """Bring ``index_dir`` up to date with ``library``; ``encoders``: role -> ClipEncoder.

    ``stop_after`` (for tests of resumption) stops after that many new images, as a kill would.
    """
    import torch
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    started = time.time()
    root = Path(library).resolve()
    index_dir = Path(index_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"library {root} is not a folder")
    summary = IndexSummary(str(root), str(index_dir))
    wanted = {role: {"location": enc.resolved.location, "dim": enc.dim} for role, enc in encoders.items()}
    try:
        store = Store.load(index_dir)
        if store.library != str(root):
            raise ValueError(f"index {index_dir} belongs to library {store.library}, not {root}; "
                             "use another --index folder")
        if store.encoders != wanted:
            print(f"[index] the models differ from those that built {index_dir}; re-encoding everything",
                  file=sys.stderr)
            store = Store(str(root), wanted)
    except FileNotFoundError:
        store = Store(str(root), wanted)
    for role, spec in wanted.items():
        store.vectors.setdefault(role, np.zeros((0, spec["dim"]), np.float32))

    on_disk = {str(p): p for p in walk_library(root)}
    keep, todo = [], []
    for row, record in enumerate(store.records):
        path = on_disk.get(record["path"])
        if path is None:
            summary.removed += 1
            continue
        stat = (root / path).stat()
        if stat.st_size == record["size"] and stat.st_mtime_ns == record["mtime_ns"]:
            keep.append(row)
        else:
            summary.updated += 1
            todo.append(record["path"])
    known = {store.records[row]["path"] for row in keep} | set(todo)
    for relative, path in on_disk.items():
        if relative in known:
            continue
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            summary.skipped.append({"path": relative, "reason": f"not an image file type ({path.suffix or 'no suffix'})"})
            continue
        todo.append(relative)
    store.records = [store.records[row] for row in keep]
    for role in store.encoders:
        store.vectors[role] = store.vectors[role][keep]
    summary.unchanged = len(keep)
    updated_paths = set(todo[:summary.updated])

    min_side = max(enc.image_side for enc in encoders.values())
    dataset = _Decoded(root, todo, {role: enc.processor.image_processor for role, enc in encoders.items()}, min_side)
    workers = (min(2, os.cpu_count() or 1) if len(todo) > 2 * batch_size else 0) if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    bar = tqdm(total=len(todo), unit="img", disable=not progress or not todo, file=sys.stderr, desc="indexing")
    last_save, encoded = time.time(), 0
    encode_started = time.time()
    try:
        for items in loader:
            good = [item for item in items if item[1] is not None]
            for i, _pixels, reason, _size in items:
                if reason is not None:
                    summary.failed.append({"path": todo[i], "reason": reason})
            if good:
                for role, encoder in encoders.items():
                    pixels = torch.stack([item[1][role] for item in good])
                    store.vectors[role] = np.concatenate([store.vectors[role], encoder.encode_pixels(pixels)])
                for i, _pixels, _reason, size in good:
                    path = root / todo[i]
                    stat = path.stat()
                    store.records.append({"path": todo[i], "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                          "sha1": file_sha1(path), "width": size[0], "height": size[1]})
                    if todo[i] in updated_paths:
                        continue
                    summary.added += 1
            encoded += len(good)
            bar.update(len(items))
            if stop_after is not None and encoded >= stop_after:
                store.save(index_dir)
                raise KeyboardInterrupt(f"stopped after {encoded} images (stop_after)")
            if time.time() - last_save > checkpoint_s:
                store.save(index_dir)
                last_save = time.time()
    finally:
        bar.close()
    store.ann_recall = {}
    store.save(index_dir)
    summary.total = len(store)
    summary.seconds = round(time.time() - started, 2)
    summary.images_per_s = round(encoded / max(time.time() - encode_started, 1e-9), 1)
    return summary
