"""What a run must do, read from the library and the tables before anything is encoded: the files to encode (and
for which roles), the rows to remove, the files whose bytes the index already holds (moved, copied, touched:
``recognise``, written by ``apply_reuse``) and the rows that predate the metadata columns (``fill_metadata``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ...images import IMAGE_SUFFIXES, file_sha1
from ..store.database import Store
from .metadata import STORED_METADATA, header_metadata, metadata_row
from .summary import IndexSummary
from .video import frame_key, is_video, split_key, unit_of
from .walk import EXCLUDED_LISTED, is_excluded, walk_library


@dataclass
class Plan:
    todo: list[str]  # relative paths to decode and encode, sorted
    needs: dict[str, list[str]]  # path -> roles whose table lacks an up-to-date row
    updated: set[str]
    removed: dict[str, list[str]]  # role -> paths to delete
    reuse: dict[str, tuple] = field(default_factory=dict)  # path -> (source path, kind, sha1, size, mtime_ns)
    backfill: list[str] = field(default_factory=list)  # unchanged paths whose rows lack the metadata columns


def file_catalogs(catalogs: dict) -> tuple[dict, dict]:
    """The tables' catalogs (role -> row key -> entry) by file: role -> file -> its entry (a video's first frame
    row's: every frame row carries the video file's size, time and sha1), and role -> video -> its frame keys."""
    files, frames = {}, {}
    for role, catalog in catalogs.items():
        files[role], frames[role] = {}, {}
        for key, entry in catalog.items():
            file, time_s = split_key(key)
            files[role].setdefault(file, entry)
            if time_s is not None:
                frames[role].setdefault(file, []).append(key)
    return files, frames


def plan_run(root: Path, tables: dict, failures: dict, summary: IndexSummary, index_dir=None, patterns=()) -> Plan:
    """What this run does, file by file (a video is one unit, its frame rows planned together: ``file_catalogs``)."""
    catalogs, frames = file_catalogs({role: table.catalog() for role, table in tables.items()})
    todo, needs, updated, backfill, sizes = [], {}, set(), [], {}
    on_disk, excluded = set(), []
    # an index inside its library is not photos; entries that are not regular files are skipped unopened
    for relative_path in walk_library(root, exclude=index_dir, skipped=summary.skipped, patterns=patterns,
                                      excluded=excluded):
        relative = str(relative_path)
        if relative_path.suffix.lower() not in IMAGE_SUFFIXES and not is_video(relative_path):
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
    plan = Plan(todo, needs, updated, {}, backfill=backfill)
    recognise(root, plan, catalogs, sizes, on_disk, summary)
    gone = set().union(*removed.values()) if removed else set()
    moved_from = {unit_of(source) for source, kind, *_ in plan.reuse.values() if kind == "moved"}
    summary.removed = len(gone - moved_from)
    resampled = [path for path in plan.todo if path in updated and is_video(path)]  # their old frames go first
    plan.removed = {role: sorted([key for file in removed[role] for key in frames[role].get(file, [file])] +
                                 [key for video in resampled for key in frames[role].get(video, ())])
                    for role in catalogs}
    frames_reused(plan, frames)
    summary.excluded_removed = sum(1 for path in gone - moved_from if is_excluded(path, patterns))
    return plan


def recognise(root: Path, plan: Plan, catalogs: dict, sizes: dict, on_disk: set, summary: IndexSummary) -> None:
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


def frames_reused(plan: Plan, frames: dict) -> None:
    """A reused video (moved, copied, touched) as its frames: each of the source's frame rows re-keyed to the
    video's new path (``plan.reuse`` and ``plan.needs`` per frame key), so ``apply_reuse`` copies rows, never
    decoding the video."""
    for path in [path for path in plan.reuse if is_video(path)]:
        source, kind, *state = plan.reuse.pop(path)
        roles = plan.needs[path]
        for key in frames[roles[0]].get(source, ()):
            new = frame_key(path, split_key(key)[1])
            plan.reuse[new], plan.needs[new] = (key, kind, *state), roles


def apply_reuse(root: Path, store: Store, tables: dict, plan: Plan, failures: dict, summary: IndexSummary) -> None:
    """Write ``plan.reuse``: each path gets its source's rows (vectors, metadata) in every table that needs one,
    with its own size and time, and its source's captions when they describe these bytes; committed before the
    vanished paths' rows are deleted, so an interruption never loses a vector (the next run sees the rest)."""
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
                    STORED_METADATA}
            for j, path in enumerate(chunk):
                mtime_ns = plan.reuse[path][4]
                if meta["taken_from"][j] is None or meta["lat"][j] is None:  # the source predates the metadata
                    # (or the GPS columns): read this file's header
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
    store.drop_failures(sorted({unit_of(path) for path in paths} & set(failures)))
    for kind in {unit_of(path): plan.reuse[path][1] for path in paths}.values():  # a video's frames: one file
        setattr(summary, kind, getattr(summary, kind) + 1)


def fill_metadata(root: Path, store: Store, tables: dict, plan: Plan, summary: IndexSummary) -> None:
    """Rows indexed before the metadata columns existed, for files unchanged since: their metadata read from
    the file's header (no decode, no encode) and written into every table lacking it."""
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
            rows = rows.filter(pc.or_(pc.is_null(rows.column("taken_from")), pc.is_null(rows.column("lat"))))
            if not rows.num_rows:
                continue
            order = rows.column("path").to_pylist()
            for name in STORED_METADATA:
                values = [metadata_row(found[p]).get(name, found[p].get(name)) for p in order]
                rows = rows.set_column(rows.schema.get_field_index(name), name,
                                       pa.array(values, table.schema.field(name).type))
            table.put(rows)
        summary.metadata_filled += len(found)
        store.commit()
    summary.metadata_s = round(time.time() - started, 2)

