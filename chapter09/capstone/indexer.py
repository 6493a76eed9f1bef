"""Bring an index up to date with a library: incremental, resumable, honest about failures, local or on Ray.

The index is a LanceDB database (``store.py``). A run compares the library on disk with the
index: files whose size and modification time match their row are ``unchanged``; changed files
are re-encoded (``updated``), new ones encoded (``added``), vanished ones dropped (``removed``).
A file that failed to decode is recorded with the reason and not retried until it changes;
non-image files are ``skipped``. Rows are committed every ``commit_rows`` rows or
``checkpoint_s`` seconds, so a run killed at any moment (even ``kill -9``) keeps everything up
to the last commit and the next run continues from there, never duplicating a row.

Engines:

* ``local``: decoding and preprocessing in DataLoader worker processes, batched encoding here.
* ``ray``: the file list is split into blocks; decoding and preprocessing run as Ray tasks,
  encoding in an actor pool (one model per actor, ``gpus_per_actor`` for CUDA clusters), and the
  rows stream back to this process, which writes them into the same LanceDB table as the local
  engine would (one writer, holding the index's lock). Without ``ray_address`` (or
  ``RAY_ADDRESS``) a local Ray is started on this machine's cores; with one, the run joins that
  cluster (the library and the index must then be reachable from every node: shared storage, or
  an object-store URI for the index, which LanceDB reads and writes natively).
"""
from __future__ import annotations

import calendar
import errno
import fnmatch
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK

import numpy as np

from ..errors import SetupError, UsageError
from ..images import IMAGE_SUFFIXES, BadImageError, file_sha1, load_image
from .store import COMMIT_ROWS, EncoderIdentity, Store, ann_for, is_uri
from .vectors import ANN_THRESHOLD

ENGINES = ("local", "ray")
RAY_BLOCK_FILES = 256  # files per Ray block: one decode task reads a block
ENCODE_CPU_SHARE = 0.75  # CPU-only Ray cluster: the encoding pool's share of its CPUs (the rest decodes)
ACTOR_START_S = 600  # how long the encoding pool's actors may take to start (an autoscaler adding nodes) before
# the run stops with what to do
DECODE_MEMORY = 512 << 20  # bytes a Ray decode task reserves beside its batch's pixels: the worker itself
# (Python, the image processors; Ray measured 370 MiB per decode worker on toy images) and one large photo
# Folders (or files) a photo library holds that are not photos: a NAS's thumbnail folders (Synology @eaDir),
# version control, JavaScript packages, Windows' recycle bin, desktop thumbnail caches. `--exclude` adds more;
# `--no-default-excludes` drops these. (Hidden entries, .git and .thumbnails among them, are skipped anyway.)
DEFAULT_EXCLUDES = ("@eaDir", ".git", "node_modules", "$RECYCLE.BIN", ".thumbnails")
EXCLUDED_LISTED = 50  # excluded folders named in the summary; the count is always exact


# ----------------------------------------------------------------------------- files
def is_excluded(relative, patterns) -> bool:
    """Whether ``relative`` (a path inside the library) or one of its folders matches a glob of ``patterns``.

    Each pattern is matched against every component's name (``@eaDir`` anywhere) and against the relative
    path up to it (``2019/raw``, ``*/cache/*``), case-insensitively (libraries move between file systems
    that differ in case: ``$Recycle.Bin``).
    """
    if not patterns:
        return False
    parts = Path(relative).parts
    return any(_matches(parts[depth], "/".join(parts[:depth + 1]), patterns) for depth in range(len(parts)))


def _matches(name: str, relative: str, patterns) -> bool:
    """One walked entry against the (lower-cased) globs: its name, or its path inside the library."""
    name, relative = name.lower(), relative.lower()
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def exclude_patterns(extra=(), defaults: bool = True) -> tuple[str, ...]:
    """The globs a run leaves out (lower-cased, as ``is_excluded`` compares): the defaults unless turned off,
    then ``extra`` (``--exclude``, repeatable)."""
    patterns = [*(DEFAULT_EXCLUDES if defaults else ()), *(extra or ())]
    for pattern in patterns:
        if not str(pattern).strip():
            raise UsageError("--exclude needs a pattern (a glob such as '@eaDir' or 'raw/*'), not an empty string")
    return tuple(dict.fromkeys(str(p).strip().strip("/").lower() for p in patterns))


def walk_library(root: Path, exclude: Path | None = None, skipped: list | None = None, patterns=(),
                 excluded: list | None = None) -> list[Path]:
    """Every regular file under ``root`` (recursively, hidden entries and ``exclude`` skipped), sorted, relative to ``root``.

    ``patterns``: globs (``is_excluded``) of folders and files left out; a folder matching one is not entered.
    What they left out goes to ``excluded`` (relative paths: folders with a trailing ``/``) when it is given.

    Entries are only ``stat``-ed here, never opened, so a named pipe, a socket or a device (reading one can
    block forever) is never read: those, broken and looping symlinks, unreadable folders and names that are
    not UTF-8 go to ``skipped`` ({"path", "reason"}) when it is given. A symlinked folder is followed once: a
    folder reached again (a loop, or a second link to it) is skipped. Iterative, so no depth is too deep.
    """
    found = []
    note = skipped.append if skipped is not None else (lambda entry: None)
    root = Path(root)
    exclude = Path(exclude).resolve() if exclude is not None else None
    top = os.stat(root)
    seen, stack = {(top.st_dev, top.st_ino)}, [Path()]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(root / folder) as entries:
                names = sorted(entry.name for entry in entries)
        except OSError as error:
            note({"path": printable(folder), "reason": f"folder not readable ({error.strerror}): skipped"})
            continue
        for name in names:
            relative = folder / name
            if name.startswith("."):
                continue
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                note({"path": printable(relative), "reason": "file name is not valid UTF-8: rename it to index it"})
                continue
            path = root / relative
            if patterns and _matches(name, relative.as_posix(), patterns):  # its folders passed when walked
                if excluded is not None:
                    excluded.append(printable(relative) + ("/" if os.path.isdir(path) else ""))
                continue
            try:
                info = os.stat(path)  # follows a symlink; opens nothing
            except OSError as error:
                reason = ("a symlink loop" if error.errno == errno.ELOOP else
                          "a broken symlink" if os.path.islink(path) else f"cannot be read ({error.strerror})")
                note({"path": printable(relative), "reason": f"{reason}: skipped"})
                continue
            if S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in seen:
                    note({"path": printable(relative),
                          "reason": "a folder already walked (a symlink loop, or a second link to it): not followed again"})
                elif exclude is None or path.resolve() != exclude:
                    seen.add((info.st_dev, info.st_ino))
                    stack.append(relative)
            elif S_ISREG(info.st_mode):
                found.append(relative)
            else:
                note({"path": printable(relative), "reason": f"not a regular file ({file_kind(info.st_mode)}): never opened"})
    return sorted(found)


def file_kind(mode: int) -> str:
    """What a non-regular directory entry is, in words."""
    for test, kind in ((S_ISFIFO, "a named pipe"), (S_ISSOCK, "a socket"), (S_ISCHR, "a character device"),
                       (S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "an unknown kind of entry"


def printable(relative) -> str:
    """A path as text that prints and serialises anywhere (bytes that are not UTF-8 shown as \\xNN)."""
    return os.fsencode(str(relative)).decode("utf-8", "backslashreplace")


def encoder_identity(role: str, encoder) -> EncoderIdentity:
    """The identity under which ``encoder``'s vectors are stored: checkpoint location + precision."""
    return EncoderIdentity(role, str(encoder.resolved.location), encoder.precision_id, int(encoder.dim))


# ----------------------------------------------------------------------------- the summary
@dataclass
class IndexSummary:
    library: str
    index: str
    engine: str = "local"
    total: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0  # rows of files gone from the library (or now excluded); a moved file's old path not counted
    moved: int = 0  # a new path with the bytes (sha1) of an indexed file that is gone: re-pointed, not encoded
    copied: int = 0  # a new path with the bytes of an indexed file still there: its rows copied, not encoded
    touched: int = 0  # a file whose time changed but not its bytes: its row's time updated, not encoded
    hashed: int = 0  # files hashed before decoding to recognise moves and copies (same size as an indexed file)
    excluded: int = 0  # folders and files left out by the exclude patterns in this walk
    excluded_removed: int = 0  # of ``removed``: rows of files the exclude patterns now leave out
    excludes: list[str] = field(default_factory=list)  # the patterns
    excluded_paths: list[str] = field(default_factory=list)  # the first EXCLUDED_LISTED of them (folders end in /)
    metadata_filled: int = 0  # unchanged rows from before the metadata columns, filled from a header read
    metadata_s: float = 0.0
    failed: list[dict] = field(default_factory=list)  # {"path", "reason", "retried"}: retried False = known
    skipped: list[dict] = field(default_factory=list)  # not an image type (captions.jsonl...), or not a regular file
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0  # images encoded / seconds from the first decode to the last row (Ray: incl. start)
    startup_s: float = 0.0  # ray: joining or starting Ray
    ray: dict = field(default_factory=dict)  # ray: the cluster and where decoding and encoding ran (_run_ray)
    ann: dict = field(default_factory=dict)  # role -> {"nprobe", "recall_at_10", "build_s"} when built

    def to_json(self) -> dict:
        # new/changed: issue 19's names for added/updated (kept for existing readers)
        return {**self.__dict__, "failed_count": len(self.failed), "new": self.added, "changed": self.updated}

    def text(self) -> str:
        lines = [f"index {self.index}: {self.total} images from {self.library}",
                 f"  added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
                 f"removed {self.removed}, failed {len(self.failed)}, skipped {len(self.skipped)} (not images, or not regular files)  "
                 f"({self.seconds:.1f} s, {self.images_per_s:.1f} images/s encoded, engine {self.engine})"]
        if self.moved or self.copied or self.touched:
            lines.append(f"  moved {self.moved}, copied {self.copied}, touched {self.touched} (same bytes as an indexed "
                         f"file: vectors and captions kept, nothing encoded; {self.hashed} files hashed to tell)")
        if self.excluded or self.excluded_removed:
            shown = ", ".join(self.excluded_paths[:5]) + (", ..." if len(self.excluded_paths) > 5 else "")
            lines.append(f"  excluded {self.excluded} folders/files ({shown}) by {', '.join(self.excludes)}"
                         + (f"; {self.excluded_removed} indexed images in them removed from the index"
                            if self.excluded_removed else ""))
        if self.metadata_filled:
            lines.append(f"  capture date, camera and format filled for {self.metadata_filled} images indexed before "
                         f"they were stored ({self.metadata_s:.1f} s: headers read, nothing encoded)")
        lines += [f"  note: {note}" for note in self.notes]
        if self.ray:
            r = self.ray
            lines.append(f"  ray: {r['nodes']} nodes ({r['cpus']:g} CPUs, {r['gpus']:g} GPUs), started in "
                         f"{self.startup_s:.1f} s; {r['actors']} encoding actors ({r['cpus_per_actor']:g} CPUs each) "
                         f"on {r['actor_nodes']} nodes; decoding on {r['decode_nodes']} nodes")
        for role, ann in self.ann.items():
            lines.append(f"  {role}: ANN index (IVF-SQ8) built in {ann['build_s']} s, nprobe {ann['nprobe']}, "
                         f"recall@10 vs exact {ann['recall_at_10']:.3f}")
        lines += [f"  SKIPPED {entry['path']}: {entry['reason']}" for entry in self.skipped
                  if not entry["reason"].startswith("not an image file type")]
        for failure in self.failed:
            again = "" if failure.get("retried", True) else "  (unchanged since it failed: not retried)"
            lines.append(f"  FAILED {failure['path']}: {failure['reason']}{again}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- metadata
EXIF_IFD, EXIF_MAKE, EXIF_MODEL, EXIF_ORIENTATION = 0x8769, 0x010F, 0x0110, 0x0112
EXIF_DATETIME_ORIGINAL, EXIF_DATETIME_DIGITIZED = 0x9003, 0x9004
_EXIF_TIME = re.compile(r"\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
NO_METADATA = {"taken_s": 0, "taken_from": "", "camera_make": "", "camera_model": "", "format": ""}


def exif_time(value) -> int | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' as seconds since the epoch, the wall-clock read as UTC (EXIF rarely says its
    zone; a date filter on the day a photo shows then matches it); None for a blank or impossible date
    ('0000:00:00 00:00:00', as cameras without a clock write)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _EXIF_TIME.match(str(value)) if value else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61 and year >= 1826):
        return None  # 1826: the oldest surviving photograph; anything before is a clock never set
    try:
        return calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def _exif_text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "").strip() if value is not None else ""


def photo_metadata(image, mtime_ns: int) -> dict:
    """What the index stores about a photo beside its vector, from an opened (not yet decoded) Pillow image:
    capture time (EXIF DateTimeOriginal, else DateTimeDigitized, else the file's mtime; ``taken_from`` says
    which), camera make and model ('' when unknown), Pillow's format lower-cased, and the original pixel size
    as it is shown (width and height swapped when EXIF orientation turns it by 90 degrees). Reads only what
    Pillow parsed from the header; a broken EXIF block counts as none (the photo is still indexed)."""
    try:
        exif = image.getexif()
        sub = exif.get_ifd(EXIF_IFD)
    except Exception:  # a malformed EXIF block (seen in the wild): the pixels may still be fine
        exif, sub = {}, {}
    taken = exif_time(sub.get(EXIF_DATETIME_ORIGINAL)) or exif_time(sub.get(EXIF_DATETIME_DIGITIZED))
    width, height = image.size
    if exif.get(EXIF_ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width
    return {"taken_s": taken if taken is not None else int(mtime_ns // 1_000_000_000),
            "taken_from": "exif" if taken is not None else "file",
            "camera_make": _exif_text(exif.get(EXIF_MAKE)), "camera_model": _exif_text(exif.get(EXIF_MODEL)),
            "format": (image.format or "").lower(), "width": width, "height": height}


def header_metadata(path: Path, mtime_ns: int) -> dict | None:
    """``photo_metadata`` of a file without decoding it (Pillow reads the header): for rows indexed before the
    metadata columns, and copies whose source row lacks them. None if the file does not open as an image."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return photo_metadata(image, mtime_ns)
    except Exception:
        return None


def metadata_row(item: dict) -> dict:
    """The metadata columns of one decoded item as stored: '' (the worker's 'unknown', which crosses Ray's
    columns as a string) becomes null."""
    return {"taken_s": int(item.get("taken_s") or 0) if item.get("taken_from") else None,
            **{key: (item.get(key) or None) for key in ("taken_from", "camera_make", "camera_model", "format")}}


# ----------------------------------------------------------------------------- decoding
def decode_one(root: Path, relative: str, preprocessors: dict, min_side: int) -> dict:
    """Read, hash, decode and preprocess one file; a failure comes back as a reason, never an exception.

    The metadata (``photo_metadata``) is read from the image as ``load_image`` opens it: no second read."""
    path = root / relative
    out = {"path": relative, "ok": False, "reason": "", "width": 0, "height": 0, "size": 0, "mtime_ns": 0,
           "sha1": "", "pixels": None, **NO_METADATA}
    try:
        stat = path.stat()
        out["size"], out["mtime_ns"] = stat.st_size, stat.st_mtime_ns
        if not S_ISREG(stat.st_mode):  # became a pipe or a device since the walk: reading it could block
            raise BadImageError(f"{path}: not a regular file ({file_kind(stat.st_mode)}): never opened")
        out["sha1"] = file_sha1(path)
        meta = {}
        image = load_image(path, min_side=min_side, on_open=lambda opened: meta.update(
            photo_metadata(opened, stat.st_mtime_ns)))
        out["pixels"] = {role: np.asarray(pre(images=[image], return_tensors="pt")["pixel_values"][0].numpy())
                         for role, pre in preprocessors.items()}
        out.update(meta)  # width, height: the original's (the draft decode may have scaled the pixels)
        out["ok"] = True
    except BadImageError as error:
        out["reason"] = str(error).replace(str(path) + ": ", "")
    except OSError as error:  # unreadable (permissions, an I/O error, gone): not the file's content, so retried
        out["reason"], out["retry"] = f"cannot be read ({error.strerror or error}); tried again next run", True
    except Exception as error:  # a library bug on one file must not end the run
        out["reason"] = f"{type(error).__name__}: {error}"
    return out


class _Decoded:
    """DataLoader dataset over the files to encode (decoded in worker processes)."""

    def __init__(self, root: Path, relative: list[str], preprocessors: dict, min_side: int):
        self.root, self.relative, self.preprocessors, self.min_side = root, relative, preprocessors, min_side

    def __len__(self):
        return len(self.relative)

    def __getitem__(self, i):
        return decode_one(self.root, self.relative[i], self.preprocessors, self.min_side)


def _collate(items):
    return items


# ----------------------------------------------------------------------------- the plan
@dataclass
class _Plan:
    todo: list[str]  # relative paths to decode and encode, sorted
    needs: dict[str, list[str]]  # path -> roles whose table lacks an up-to-date row
    updated: set[str]
    removed: dict[str, list[str]]  # role -> paths to delete
    reuse: dict[str, tuple] = field(default_factory=dict)  # path -> (source path, kind, sha1, size, mtime_ns)
    backfill: list[str] = field(default_factory=list)  # unchanged paths whose rows lack the metadata columns


def _plan(root: Path, tables: dict, failures: dict, summary: IndexSummary, index_dir=None, patterns=()) -> _Plan:
    catalogs = {role: table.catalog() for role, table in tables.items()}
    todo, needs, updated, backfill, sizes = [], {}, set(), [], {}
    on_disk, excluded = set(), []
    # an index inside its library is not photos; entries that are not regular files are skipped unopened
    for relative_path in walk_library(root, exclude=index_dir, skipped=summary.skipped, patterns=patterns,
                                      excluded=excluded):
        relative = str(relative_path)
        if relative_path.suffix.lower() not in IMAGE_SUFFIXES:
            on_disk.add(relative)
            summary.skipped.append({"path": relative,
                                    "reason": f"not an image file type ({relative_path.suffix or 'no suffix'})"})
            continue
        try:
            stat = (root / relative_path).stat()
        except OSError as error:  # vanished (or became unreadable) since the walk
            summary.skipped.append({"path": relative, "reason": f"gone since the folder was listed ({error.strerror})"})
            continue
        on_disk.add(relative)
        now = (stat.st_size, stat.st_mtime_ns)
        missing = [role for role, catalog in catalogs.items() if catalog.get(relative, (None, None))[:2] != now]
        if not missing:
            summary.unchanged += 1
            if not all(catalog[relative][3] for catalog in catalogs.values()):
                backfill.append(relative)
            continue
        failure = failures.get(relative)
        if failure is not None and (failure["size"], failure["mtime_ns"]) == now:
            summary.failed.append({"path": relative, "reason": failure["reason"], "retried": False})
            continue
        todo.append(relative)
        needs[relative] = missing
        sizes[relative] = now
        if any(relative in catalogs[role] for role in missing):
            updated.add(relative)
    summary.excluded, summary.excluded_paths = len(excluded), excluded[:EXCLUDED_LISTED]
    removed = {role: set(catalog) - on_disk for role, catalog in catalogs.items()}
    plan = _Plan(todo, needs, updated, {role: sorted(paths) for role, paths in removed.items()}, backfill=backfill)
    _recognise(root, plan, catalogs, sizes, on_disk, summary)
    gone = set().union(*removed.values()) if removed else set()
    moved_from = {source for source, kind, *_ in plan.reuse.values() if kind == "moved"}
    summary.removed = len(gone - moved_from)
    summary.excluded_removed = sum(1 for path in gone - moved_from if is_excluded(path, patterns))
    return plan


def _recognise(root: Path, plan: _Plan, catalogs: dict, sizes: dict, on_disk: set, summary: IndexSummary) -> None:
    """Moved, renamed, copied and merely touched files: a path to encode whose bytes (sha1) some row of every
    table it needs already holds takes that row's vectors instead of being decoded (``plan.reuse``).

    Only files of a size some row has are hashed (a copy has its source's size), so a fresh index, or new
    photos, cost no extra read. The source preferred: the path's own row (only its time changed), then a row
    whose file is gone (the file moved: the first such path takes it), else any row (a copy)."""
    if not plan.todo:
        return
    held_sizes = set()
    for catalog in catalogs.values():
        held_sizes.update(entry[0] for entry in catalog.values())
    candidates = [path for path in plan.todo if sizes[path][0] in held_sizes]
    if not candidates:
        return
    by_sha1 = {role: {} for role in catalogs}
    for role, catalog in catalogs.items():
        for path, (_, _, sha1, _) in catalog.items():
            by_sha1[role].setdefault(sha1, []).append(path)
    claimed = set()  # gone paths already taken by a move
    for path in candidates:
        try:
            sha1 = file_sha1(root / path)
        except OSError:
            continue  # decoding will report it
        summary.hashed += 1
        roles = plan.needs[path]
        sources = [source for source in by_sha1[roles[0]].get(sha1, ())
                   if all(catalogs[role].get(source, (0, 0, None))[2] == sha1 for role in roles[1:])]
        if not sources:
            continue
        if path in sources:
            source, kind = path, "touched"
        else:
            vanished = [s for s in sources if s not in on_disk and s not in claimed]
            source, kind = (vanished[0], "moved") if vanished else (sources[0], "copied")
            if kind == "moved":
                claimed.add(source)
        plan.reuse[path] = (source, kind, sha1, *sizes[path])
    if plan.reuse:
        plan.todo = [path for path in plan.todo if path not in plan.reuse]


def _apply_reuse(root: Path, store: Store, tables: dict, plan: _Plan, failures: dict, summary: IndexSummary) -> None:
    """Write ``plan.reuse``: each path gets its source's rows (vectors, metadata) in every table that needs one,
    with its own size and time, and its source's captions when they describe these bytes; committed before the
    vanished paths' rows are deleted, so an interruption never loses a vector (the next run sees the rest)."""
    import pyarrow as pa

    if not plan.reuse:
        return
    paths = sorted(plan.reuse)
    for role, table in tables.items():
        mine = [path for path in paths if role in plan.needs[path]]
        for start in range(0, len(mine), store.commit_rows):
            chunk = mine[start:start + store.commit_rows]
            rows = table.rows_of(sorted({plan.reuse[p][0] for p in chunk}))
            where = {p: i for i, p in enumerate(rows.column("path").to_pylist())}
            chunk = [p for p in chunk if plan.reuse[p][0] in where]
            new = rows.take(pa.array([where[plan.reuse[p][0]] for p in chunk], pa.int64()))
            meta = {name: new.column(name).to_pylist() for name in
                    ("taken_s", "taken_from", "camera_make", "camera_model", "format", "width", "height")}
            for j, path in enumerate(chunk):
                mtime_ns = plan.reuse[path][4]
                if meta["taken_from"][j] is None:  # the source row predates the metadata: read this file's header
                    found = header_metadata(root / path, mtime_ns)
                    if found:
                        for name in meta:
                            meta[name][j] = metadata_row(found).get(name, found.get(name))
                elif meta["taken_from"][j] == "file":  # the time came from the file: this file's time
                    meta["taken_s"][j] = int(mtime_ns // 1_000_000_000)
            columns = {"path": pa.array(chunk, pa.string()),
                       "size": pa.array([plan.reuse[p][3] for p in chunk], pa.int64()),
                       "mtime_ns": pa.array([plan.reuse[p][4] for p in chunk], pa.int64()),
                       **{name: pa.array(values, table.schema.field(name).type) for name, values in meta.items()}}
            for name, values in columns.items():
                new = new.set_column(new.schema.get_field_index(name), name, values)
            table.put(new)
    store.commit()
    sources = sorted({source for source, *_ in plan.reuse.values()} | set(paths))
    held = store.captions(sources, with_sha1=True)
    carry, stale = [], []
    for path in paths:
        source, kind, sha1 = plan.reuse[path][:3]
        caps = held.get(source, {})
        if source != path and caps.get("sha1") == sha1:
            carry.append({"path": path, "sha1": sha1, **{k: v for k, v in caps.items() if k in ("en", "zh")}})
        elif source != path and held.get(path, {}).get("sha1") not in (None, sha1):
            stale.append(path)  # this path held other bytes before, and their captions
    store.drop_captions(stale)
    store.put_captions(carry)
    store.drop_failures([path for path in paths if path in failures])
    for path in paths:
        kind = plan.reuse[path][1]
        setattr(summary, kind, getattr(summary, kind) + 1)


def _fill_metadata(root: Path, store: Store, tables: dict, plan: _Plan, summary: IndexSummary) -> None:
    """Rows indexed before the metadata columns existed, for files unchanged since: their metadata read from
    the file's header (no decode, no encode) and written into every table lacking it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not plan.backfill:
        return
    started = time.time()
    for start in range(0, len(plan.backfill), store.commit_rows):
        chunk = plan.backfill[start:start + store.commit_rows]
        found = {}
        for path in chunk:
            try:
                mtime_ns = (root / path).stat().st_mtime_ns
            except OSError:
                continue
            meta = header_metadata(root / path, mtime_ns)
            if meta is not None:
                found[path] = meta
        if not found:
            continue
        for table in tables.values():
            rows = table.rows_of(sorted(found))
            rows = rows.filter(pc.is_null(rows.column("taken_from")))
            if not rows.num_rows:
                continue
            order = rows.column("path").to_pylist()
            for name in ("taken_s", "taken_from", "camera_make", "camera_model", "format", "width", "height"):
                values = [metadata_row(found[p]).get(name, found[p].get(name)) for p in order]
                rows = rows.set_column(rows.schema.get_field_index(name), name,
                                       pa.array(values, table.schema.field(name).type))
            table.put(rows)
        summary.metadata_filled += len(found)
        store.commit()
    summary.metadata_s = round(time.time() - started, 2)


# ----------------------------------------------------------------------------- writing rows
class _Writer:
    """Turns decoded + encoded items into table rows and failures; commits on time; counts for the summary."""

    def __init__(self, store: Store, tables: dict, plan: _Plan, summary: IndexSummary, checkpoint_s: float,
                 stop_after: int | None, known_failures: dict):
        self.store, self.tables, self.plan, self.summary = store, tables, plan, summary
        self.checkpoint_s, self.stop_after, self.known_failures = checkpoint_s, stop_after, known_failures
        self.last_commit, self.encoded, self.cleared = time.time(), 0, []
        self.changed: dict[str, str] = {}  # updated path -> its new sha1 (captions of the old bytes go)

    def write(self, items: list[dict], vectors: dict[str, np.ndarray]) -> None:
        """``items``: decoded items (``ok``/``reason``...); ``vectors[role]``: one row per item (ignored if not needed)."""
        for role, table in self.tables.items():
            chosen = [j for j, item in enumerate(items) if item["ok"] and role in self.plan.needs[item["path"]]]
            if chosen:
                meta = [metadata_row(items[j]) for j in chosen]
                table.put({"path": [items[j]["path"] for j in chosen], "size": [items[j]["size"] for j in chosen],
                           "mtime_ns": [items[j]["mtime_ns"] for j in chosen],
                           "sha1": [items[j]["sha1"] for j in chosen], "width": [items[j]["width"] for j in chosen],
                           "height": [items[j]["height"] for j in chosen], "vector": vectors[role][chosen],
                           **{name: [m[name] for m in meta] for name in meta[0]}})
        failed = []
        for item in items:
            if item["ok"]:
                if item["path"] in self.known_failures:
                    self.cleared.append(item["path"])
                if item["path"] in self.plan.updated:
                    self.summary.updated += 1
                    self.changed[item["path"]] = item["sha1"]
                else:
                    self.summary.added += 1
                self.encoded += 1
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


# ----------------------------------------------------------------------------- engines
def decode_loader(root: Path, todo: list[str], encoders: dict, batch_size: int, workers: int | None):
    """The local engine's decoding: batches of decoded items from DataLoader worker processes (also timed
    alone by the bench, as the decode half of the pipeline's limit)."""
    from torch.utils.data import DataLoader

    min_side = max(enc.image_side for enc in encoders.values())
    preprocessors = {role: enc.processor.image_processor for role, enc in encoders.items()}
    dataset = _Decoded(root, todo, preprocessors, min_side)
    workers = (min(2, os.cpu_count() or 1) if len(todo) > 2 * batch_size else 0) if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        prefetch_factor=4 if workers else None, persistent_workers=False,
                        multiprocessing_context=decode_context(preprocessors) if workers else None)
    return _then_stop_fork_server(loader) if workers else loader


def _then_stop_fork_server(loader):
    """The loader's batches; once they end (or the caller stops), its workers and then the fork server exit, so
    their CPU time is this process's children's (``getrusage(RUSAGE_CHILDREN)``, which the bench reads: a fork
    server's workers are its children, counted only when it is reaped) and nothing is left running."""
    import multiprocessing.forkserver
    import types

    # A worker started by a fork server (or spawn) first re-runs the parent's main script unless it is guarded by
    # `if __name__ == "__main__"`: a lesson, the tour (run by run_all_sections through runpy) or a learner's own
    # script calling build_index at top level would start indexing again in every worker. The workers need
    # nothing from __main__ (the dataset and collate function live here), so they are started with it hidden.
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        batches = iter(loader)  # starts the workers (and the fork server)
    finally:
        sys.modules["__main__"] = main
    try:
        yield from batches
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        del batches
        stop = getattr(getattr(multiprocessing.forkserver, "_forkserver", None), "_stop", None)
        if stop is not None:
            stop()


def decode_context(preprocessors: dict):
    """How decode workers start: never as a fork of this process, which holds LanceDB's runtime (LanceDB warns
    that a forked child can deadlock). A fork server (a fresh interpreter that has imported only torch, this
    module and the image processors, never LanceDB) forks them instead: its start-up is paid once per
    pool (it is stopped when the pool's batches end), each worker after it starts in a fraction of a second;
    spawn, where there is no fork server, re-imports everything in every worker."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", __name__, *sorted({type(p).__module__ for p in preprocessors.values()})])
    return context


def _run_local(root: Path, plan: _Plan, encoders: dict, writer: _Writer, batch_size: int, workers: int | None,
               bar) -> None:
    import torch

    for items in decode_loader(root, plan.todo, encoders, batch_size, workers):
        vectors = {}
        for role, encoder in encoders.items():
            chosen = [j for j, item in enumerate(items) if item["ok"] and role in plan.needs[item["path"]]]
            out = np.zeros((len(items), encoder.dim), np.float32)
            if chosen:
                pixels = torch.stack([torch.from_numpy(np.asarray(items[j]["pixels"][role])) for j in chosen])
                out[chosen] = encoder.encode_pixels(pixels)
            vectors[role] = out
        writer.write(items, vectors)
        bar.update(len(items))


def _encoder_specs(encoders: dict) -> dict:
    """What an actor needs to build the same encoders: role -> (Settings, a local checkpoint folder). The
    Settings decide the numeric format (``precision.numeric_format``) on the actor as they did here."""
    return {role: (enc.settings, enc.resolved.location if enc.resolved.source == "local-dir" else None)
            for role, enc in encoders.items()}


def _decode_block(batch: dict, root: str, preprocessors: dict, min_side: int) -> dict:
    """Ray task: decode one block of files; pixel arrays are zeros for failures (columns must be rectangular)."""
    items = [decode_one(Path(root), str(p), preprocessors, min_side) for p in batch["path"]]
    text = ("path", "reason", "sha1", "taken_from", "camera_make", "camera_model", "format")
    out = {key: np.array([item[key] for item in items], dtype=object if key in text else None)
           for key in ("path", "ok", "reason", "width", "height", "size", "mtime_ns", "sha1", *NO_METADATA)}
    out["roles"] = batch["roles"]
    out["decode_node"], out["decode_worker"] = _where(len(items))
    for role in preprocessors:
        shape = next((np.asarray(item["pixels"][role]).shape for item in items if item["ok"]), None)
        stack = np.zeros((len(items), *(shape or (0,))), np.float32)
        for j, item in enumerate(items):
            if item["ok"]:
                stack[j] = item["pixels"][role]
        out[f"pixels_{role}"] = stack
    return out


def _where(n: int) -> tuple:
    """Columns naming the Ray node and worker process that ran this batch (the summary counts them)."""
    import ray

    context = ray.get_runtime_context()
    return np.array([context.get_node_id()] * n, dtype=object), np.array([context.get_worker_id()] * n, dtype=object)


class _EncodeActor:
    """Ray actor: one copy of each encoder; pixel batches in, unit vectors out; torch threads = the CPUs Ray gave it."""

    def __init__(self, specs: dict, identities: dict):
        import ray
        import torch

        from ..clip import ClipEncoder

        torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        self.encoders = {}
        for role, (settings, local_dir) in specs.items():
            self.encoders[role] = ClipEncoder(role, settings, local_dir=local_dir)
            mine = encoder_identity(role, self.encoders[role])
            if mine != identities[role]:  # e.g. another checkpoint on this node: never mix vectors
                raise SetupError(f"the Ray worker's {role} model differs from the driver's: "
                                   f"{mine.describe()} vs {identities[role].describe()}")

    def __call__(self, batch: dict) -> dict:
        import torch

        out = {key: value for key, value in batch.items() if not key.startswith("pixels_")}
        for role, encoder in self.encoders.items():
            vectors = np.zeros((len(batch["path"]), encoder.dim), np.float32)
            chosen = [j for j, (roles, ok) in enumerate(zip(batch["roles"], batch["ok"]))
                      if ok and role in str(roles).split(",")]
            if chosen:
                vectors[chosen] = encoder.encode_pixels(torch.from_numpy(np.ascontiguousarray(
                    batch[f"pixels_{role}"][chosen])))
            out[f"vector_{role}"] = vectors
        out["encode_node"], out["encode_worker"] = _where(len(batch["path"]))
        return out


def start_ray(address: str | None = None, num_cpus: int | None = None):
    """Join ``address`` (or $RAY_ADDRESS), else start a local Ray; returns (ray, started_here)."""
    try:
        import ray
    except ImportError as error:
        raise SetupError("--engine ray needs Ray: pip install -r requirements-scale.txt") from error
    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:  # "local": a Ray of its own, never one that `ray start` or a test cluster left on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    return ray, True


def whole_pools_first(context) -> None:
    """Every actor of a (fixed) pool is up before the first batch goes out: otherwise the first actor to load its
    model takes every batch of a short run while the others still start (seen: 1 encoding actor of 2 taking all 3
    batches of a 20-image run); once all are up, a batch goes to the actor on the node that decoded it."""
    context.wait_for_min_actors_s = ACTOR_START_S


def ray_batches(ds, pool: str):
    """``ds``'s batches as its blocks come back (numpy); a pool that could not start in time says what to do."""
    import ray

    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.GetTimeoutError as error:
        raise SetupError(f"the Ray cluster did not start {pool} in {ACTOR_START_S} s: pass fewer --actors, add "
                         f"nodes, or see what the cluster lacks with `ray status`") from error


def actor_count(resources: dict, actors: int | None, gpus_per_actor: float, cpus_per_actor: float, *,
                actor: str, work: str, reserved_cpus: float, reserved_for: str, share: float) -> int:
    """How many ``actor`` actors (e.g. "encoding") a Ray cluster with ``resources`` runs, by the rules every
    pool here shares: on GPUs one per ``gpus_per_actor`` (or ``actors``); on CPUs ``actors``, else ``share`` of
    the CPUs, never touching the ``reserved_cpus`` kept for ``reserved_for`` (decoding, a translator); a
    cluster too small, or ``actors`` too many, is refused with what to do. ``work``: the verb, for messages."""
    if gpus_per_actor:
        gpus = resources.get("GPU", 0)
        if gpus < gpus_per_actor:
            raise SetupError(f"--gpus-per-actor {gpus_per_actor:g}, but the Ray cluster has {gpus:g} GPUs: "
                             f"add GPU nodes, or drop --gpus-per-actor to {work} on CPUs")
        return actors or max(1, int(gpus // gpus_per_actor))
    cpus = resources.get("CPU", 0)
    most = int((cpus - reserved_cpus) // cpus_per_actor)
    article = "an" if actor[0] in "aeiou" else "a"
    if most < 1:
        raise SetupError(f"the Ray cluster has {cpus:g} CPUs: {article} {actor} actor needs {cpus_per_actor:g}"
                         + (f" and {reserved_for} one more" if reserved_cpus else "")
                         + "; add nodes, join another cluster with --ray-address, or use --engine local")
    if actors and actors > most:
        raise UsageError(f"--actors {actors}: the Ray cluster's {cpus:g} CPUs hold at most {most} {actor} actors "
                         f"of {cpus_per_actor:g} CPUs" + (f" beside {reserved_for}" if reserved_cpus else "")
                         + f"; pass --actors {most} or fewer, or add nodes")
    return actors or max(1, min(most, int(cpus * share // cpus_per_actor)))


def encoding_pool(resources: dict, actors: int | None, gpus_per_actor: float, cpus_per_actor: float) -> tuple:
    """(min, max) actors of the encoding pool on a cluster with ``resources`` (``ray.cluster_resources()``).

    With ``gpus_per_actor``: one actor per ``gpus_per_actor`` GPUs (or ``actors``). On CPUs: ``actors``, else
    as many as ``ENCODE_CPU_SHARE`` of the cluster's CPUs hold; either way at least one CPU is left to the
    decode tasks. A fixed pool: every actor loads its model at the start, in parallel.
    """
    size = actor_count(resources, actors, gpus_per_actor, cpus_per_actor, actor="encoding", work="encode",
                       reserved_cpus=0 if gpus_per_actor else 1, reserved_for="decoding", share=ENCODE_CPU_SHARE)
    return size, size


def _run_ray(root: Path, plan: _Plan, encoders: dict, writer: _Writer, batch_size: int, bar,
             ray_address: str | None, actors: int | None, gpus_per_actor: float, cpus_per_actor: float) -> None:
    t = time.time()
    ray, started = start_ray(ray_address)
    writer.summary.startup_s = round(time.time() - t, 2)
    try:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        whole_pools_first(context)
        min_side = max(enc.image_side for enc in encoders.values())
        preprocessors = {role: enc.processor.image_processor for role, enc in encoders.items()}
        per_block = min(RAY_BLOCK_FILES, max(batch_size, len(plan.todo) // 16))  # >= 16 blocks to pipeline
        blocks = max(1, -(-len(plan.todo) // per_block))
        resources = ray.cluster_resources()
        smallest, largest = encoding_pool(resources, actors, gpus_per_actor, cpus_per_actor)
        nodes = sum(1 for node in ray.nodes() if node["Alive"])
        ds = ray.data.from_items([{"path": p, "roles": ",".join(plan.needs[p])} for p in plan.todo],
                                 override_num_blocks=blocks)
        # Decoding stays an operator of its own, never fused into the encoding actors (where it would no
        # longer overlap with encoding): Ray Data fuses a task map into an actor map only when their remote
        # args agree, and each decode task reserves the memory it holds (its worker and decoded batch).
        pixels = batch_size * sum(4 * 3 * enc.image_side ** 2 for enc in encoders.values())
        ds = ds.map_batches(_decode_block, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                            memory=pixels + DECODE_MEMORY,
                            fn_kwargs={"root": str(root), "preprocessors": preprocessors, "min_side": min_side})
        ds = ds.map_batches(_EncodeActor, batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(min_size=smallest, max_size=largest),
                            fn_constructor_kwargs={"specs": _encoder_specs(encoders),
                                                   "identities": {r: encoder_identity(r, e) for r, e in encoders.items()}},
                            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
        seen = {"decode_node": set(), "decode_worker": set(), "encode_node": set(), "encode_worker": set()}
        gpus = f", {gpus_per_actor:g} GPUs" if gpus_per_actor else ""
        batches = ray_batches(ds, f"{smallest} encoding actors ({cpus_per_actor:g} CPUs{gpus} each)")
        write_s = wait_s = 0.0
        while True:
            t = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            wait_s += time.perf_counter() - t
            t = time.perf_counter()
            items = [{"path": str(batch["path"][j]), "ok": bool(batch["ok"][j]), "reason": str(batch["reason"][j]),
                      "width": int(batch["width"][j]), "height": int(batch["height"][j]),
                      "size": int(batch["size"][j]), "mtime_ns": int(batch["mtime_ns"][j]),
                      "sha1": str(batch["sha1"][j]), "taken_s": int(batch["taken_s"][j]),
                      **{key: str(batch[key][j]) for key in ("taken_from", "camera_make", "camera_model", "format")}}
                     for j in range(len(batch["path"]))]
            writer.write(items, {role: batch[f"vector_{role}"] for role in encoders})
            write_s += time.perf_counter() - t  # the one writer's own time (rows, commits), apart from waiting
            for key, values in seen.items():
                values.update(str(v) for v in batch[key])
            writer.summary.ray = {
                "nodes": nodes, "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0),
                "pool": [smallest, largest], "cpus_per_actor": cpus_per_actor, "gpus_per_actor": gpus_per_actor,
                "actors": len(seen["encode_worker"]), "actor_nodes": len(seen["encode_node"]),
                "decode_workers": len(seen["decode_worker"]), "decode_nodes": len(seen["decode_node"]),
                "decoded_inside_actors": len(seen["decode_worker"] & seen["encode_worker"]),
                "write_s": round(write_s, 3), "wait_s": round(wait_s, 3)}
            bar.update(len(items))
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------- the entry point
def write_sample_rows(root: Path, plan, sample_rows: dict, encoders: dict, writer) -> int:
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


def build_index(library: str | Path, index_dir: str | Path, encoders: dict, batch_size: int = 64,
                workers: int | None = None, checkpoint_s: float = 20.0, progress: bool = True,
                stop_after: int | None = None, engine: str = "local", ray_address: str | None = None,
                actors: int | None = None, gpus_per_actor: float = 0.0, cpus_per_actor: float = 1.0,
                commit_rows: int = COMMIT_ROWS, wait_s: float = 0.0, build_ann: bool = True,
                log=None, precomputed: dict | None = None, excludes=(), default_excludes: bool = True,
                fill_metadata: bool = True) -> IndexSummary:
    """Bring ``index_dir`` up to date with ``library``; ``encoders``: role -> ClipEncoder.

    ``stop_after`` (for tests of resumption) commits and stops after that many new images, as an
    interrupted run would. ``wait_s``: how long to wait for another run holding the index's lock
    (0: refuse at once). ``build_ann``: build the IVF index at the end when the table is large
    enough for ``search`` to use one (so ``serve`` opens ready). ``precomputed``: rows already encoded by
    these encoders (the precision check's sample, ``write_sample_rows``), written as they are.
    ``excludes``: globs of folders and files to leave out (``is_excluded``), beside ``DEFAULT_EXCLUDES`` unless
    ``default_excludes`` is False; indexed rows they now match are removed. Files whose bytes the index holds
    (moved, renamed, copied, touched) take the held vectors and captions instead of being encoded
    (``_recognise``). ``fill_metadata``: rows indexed before the metadata columns get them from a header read.
    """
    from tqdm import tqdm

    log = log or (lambda message: print(f"[index] {message}", file=sys.stderr))
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    if not encoders:
        raise ValueError("no encoders: pass at least {'clip': ClipEncoder}")
    started = time.time()
    root = Path(library).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"library {root} is not a folder")
    patterns = exclude_patterns(excludes, default_excludes)
    summary = IndexSummary(str(root), str(index_dir), engine, excludes=list(patterns))
    identities = {role: encoder_identity(role, enc) for role, enc in encoders.items()}
    with Store.open(index_dir, library=root, write=True, wait_s=wait_s, commit_rows=commit_rows) as store:
        for identity in identities.values():
            note = store.switch_note(identity)
            if note:
                log(note)
                summary.notes.append(note)
        tables = {role: store.images(identity) for role, identity in identities.items()}
        failures = store.failures()
        plan = _plan(root, tables, failures, summary, None if is_uri(index_dir) else Path(index_dir), patterns)
        _apply_reuse(root, store, tables, plan, failures, summary)  # before the deletes: a moved row is never lost
        for role, paths in plan.removed.items():
            tables[role].delete(paths)
        store.drop_captions(set().union(*plan.removed.values()))
        gone = [p for p in failures if not (root / p).is_file() or is_excluded(p, patterns)]
        store.drop_failures(gone)
        if fill_metadata:
            _fill_metadata(root, store, tables, plan, summary)
        writer = _Writer(store, tables, plan, summary, checkpoint_s, stop_after, failures)
        reused = 0
        if precomputed:
            reused = write_sample_rows(root, plan, precomputed, encoders, writer)
            if reused:
                summary.notes.append(f"{reused} images' vectors kept from the precision check (not encoded again)")
        bar = tqdm(total=len(plan.todo), unit="img", disable=not progress or not plan.todo, file=sys.stderr,
                   desc=f"indexing ({engine})")
        encode_started = time.time()
        try:
            if plan.todo and engine == "local":
                _run_local(root, plan, encoders, writer, batch_size, workers, bar)
            elif plan.todo:
                _run_ray(root, plan, encoders, writer, batch_size, bar, ray_address, actors, gpus_per_actor,
                         cpus_per_actor)
        finally:
            bar.close()
        encode_s = time.time() - encode_started
        writer.commit()
        wrote = bool(plan.todo or reused or any(plan.removed.values()) or gone or plan.reuse
                     or summary.metadata_filled or store._touched)
        if wrote:
            store.finish()  # compaction + old versions deleted: the index stays the size of a fresh one
        for role, table in tables.items():
            if build_ann and len(table) >= ANN_THRESHOLD and ann_for(store, table, build=False) is None:
                log(f"{role}: building the ANN index over {len(table)} rows")
                t = time.time()
                ann = ann_for(store, table)
                summary.ann[role] = {"nprobe": ann.nprobe, "recall_at_10": ann.recall_at_10,
                                     "build_s": round(time.time() - t, 1)}
        summary.total = len(tables[next(iter(tables))])
    summary.seconds = round(time.time() - started, 2)
    summary.images_per_s = round((writer.encoded - reused) / max(encode_s, 1e-9), 1) if plan.todo else 0.0
    return summary
