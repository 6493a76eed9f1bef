"""The capstone's index: an embedded LanceDB database. The store only stores (rclip style).

An index folder is a LanceDB database with these tables:

* ``images_<role>_<id>``: one per *encoder identity* (role + checkpoint location + precision).
  Columns ``path`` (relative to the library), ``size``, ``mtime_ns``, ``sha1``, ``width``,
  ``height``, ``vector`` (unit length, stored as float16: half the disk and RAM of float32; the
  capstone README has what that costs in search quality). A changed model (another checkpoint,
  another precision) gets a table of its own instead of silently mixing vectors; the old table is
  kept, so switching back costs nothing.
* ``failures``: ``path``, ``size``, ``mtime_ns``, ``reason``; a broken file is not retried
  until its size or modification time changes.
* ``captions``: ``path``, ``sha1``, ``caption_en``, ``caption_zh``. Captions describe an image,
  not an encoder, so both encoders' rows share them, and writing captions never rewrites vector
  rows (LanceDB updates a row by deleting and re-appending it) nor invalidates the ANN index. The
  sha1 ties a caption to the bytes it describes: a changed file's old caption is not shown. Its two
  caption columns carry LanceDB full-text indexes (``caption_text``), created and updated by ``finish()``.
* ``meta``: key/value JSON (format, library, which table serves each role).

Every table is written the same two ways (``tables.upsert`` by path, by key for ``meta``, and
``tables.delete_paths``). Writes cost O(batch), never O(library): rows are buffered and committed
every ``commit_rows`` rows (or when the caller says), new paths with ``add`` and already-present
paths with ``merge_insert`` (which joins against the whole key column, so its cost grows with the
table; ``add`` stays flat). Each commit is one atomic LanceDB version: ``kill -9`` loses at most the
rows since the last commit and duplicates nothing. ``finish()`` compacts fragments and deletes old
versions, so an index updated many times is about the size of a fresh one.

This module is the index folder: opening (and creating) it, its tables' meta, commits and
compaction. Beside it, each in a module of its own: the tables (``tables``), the writer lock
(``lock``), search over a table's vectors (``vectors``; ``open_vectors`` below hands a table to it),
and reading the previous version's ``store.npz`` (``npz_migration``), migrated on first open.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from ..caption import text_search as caption_text
from ..errors import IndexFullError, IndexReadOnlyError, StoreError, file_system_error, log
from . import npz_migration
from . import vectors as vector_search
from .locations import is_uri, local_side_folder
from .lock import LOCK_NAME, IndexLock, ObjectStoreLock, lock_for
from .tables import (
    EncoderIdentity,
    ImageTable,
    PathTable,
    caption_schema,
    failure_schema,
    image_schema,
    meta_schema,
    quiet_lance,
    upsert,
)
from .vectors import ANN_THRESHOLD, VectorIndex

FORMAT_VERSION = 2
COMMIT_ROWS = 2048  # rows per LanceDB commit (one version each); the indexer also commits on time
ANN_DIR = "ann"
META_TABLE, FAILURES_TABLE, CAPTIONS_TABLE = "meta", "failures", "captions"
FOREIGN_FILES = {"precision.json", ANN_DIR}  # other modules' files an index folder may hold before the tables
CAPTION_INDEX_ROWS = 10_000  # captions table rows from which a BTree index on path serves the lookups


def storage_options() -> dict:
    """LanceDB's options for an object-store index: credentials, region and endpoint come from the
    standard AWS variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
    ``AWS_REGION``), which LanceDB and boto3 (the lock) both read; an ``http://`` endpoint (a local
    S3 server) is allowed without TLS only because it was named so."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    options = {"endpoint": endpoint} if endpoint else {}
    if endpoint.startswith("http://"):
        options["allow_http"] = "true"
    return options


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (what compacting a table may rewrite)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


# ----------------------------------------------------------------------------- the store
class Store:
    """An index folder (or object-store URI) holding the library's tables.

    ``Store.open(INDEX)`` opens an existing index for reading; ``Store.open(INDEX, library=ROOT,
    write=True)`` creates it if needed and takes the write lock (released by ``close``/``with``).
    """

    def __init__(self, location: str, db, write: bool, lock: IndexLock | ObjectStoreLock | None,
                 commit_rows: int):
        self.location, self.db, self.write, self.lock = location, db, write, lock
        self.commit_rows = commit_rows
        self._handles: dict[str, object] | None = None  # kept table handles (``keep_handles``), None: reopen
        self._meta = self._read_meta()
        self._tables: dict[str, ImageTable] = {}
        self._failures = PathTable(self, FAILURES_TABLE, failure_schema())
        self._captions = PathTable(self, CAPTIONS_TABLE, caption_schema())
        self._failures_pending: list[dict] = []
        self._touched: set[str] = set()  # tables written in this session: the ones finish() compacts

    def mark_written(self, table: str) -> None:
        """``table`` was written in this session: ``finish`` compacts it (every writer of a table says so)."""
        self._touched.add(table)

    @property
    def written(self) -> bool:
        """Whether any table was written in this session (since the last ``finish``)."""
        return bool(self._touched)

    # ---- opening
    @classmethod
    def open(cls, index: str | os.PathLike, library: str | os.PathLike | None = None, write: bool = False,
             wait_s: float = 0.0, commit_rows: int = COMMIT_ROWS) -> "Store":
        import lancedb  # heavy: lancedb

        location = str(index)
        local = not is_uri(location)
        path = Path(location)
        old = path / npz_migration.OLD_STORE_NAME
        if local:
            if path.exists() and not path.is_dir():
                raise StoreError(f"{path} is a file, not an index folder")
            exists = (path / f"{META_TABLE}.lance").is_dir()
            if not exists and not old.is_file():
                if not write:
                    raise FileNotFoundError(f"no index at {path}; build one with "
                                            f"`python -m chapter09.capstone index LIBRARY_DIR --index {path}`")
                if path.is_dir() and any(p for p in path.iterdir() if p.name not in FOREIGN_FILES and
                                         not p.name.startswith(".")):
                    raise StoreError(f"{path} is not empty and holds no index; use an empty or new folder for --index")
        lock = None
        if write or (local and (not (path / f"{META_TABLE}.lance").is_dir() or old.is_file())):
            lock = lock_for(path if local else location, wait_s)
            if lock is None:  # gs://, az://: LanceDB writes them, but this store has no lock there
                log(f"{location}: no write lock on this kind of object store, so run one `index` at a time")
            else:
                lock.acquire()
        try:
            db = lancedb.connect(location, **({} if local else {"storage_options": storage_options()}))
            store = cls(location, db, write, lock, commit_rows)
            if store._meta is None or store._meta.get("migrating"):
                if local and old.is_file():
                    store._migrate(npz_migration.read_old_index(old))
                elif not write:
                    raise FileNotFoundError(f"no index at {location}")
                else:
                    store._create(library)
            if library is not None:
                wanted = str(Path(library).resolve()) if not is_uri(str(library)) else str(library)
                if store.library != wanted:
                    raise StoreError(f"index {location} belongs to library {store.library}, not {wanted}; "
                                     "use another --index folder")
        except BaseException:
            if lock:
                lock.release()
            raise
        if not write and lock:  # the lock was only needed to migrate or create
            lock.release()
            store.lock = None
        return store

    def close(self) -> None:
        if self.write:
            self.commit()
        if self.lock:
            self.lock.release()
            self.lock = None

    def __enter__(self):
        return self

    def __exit__(self, kind, *exc):
        if kind is None:
            self.close()
            return
        if self.write:  # interrupted (Ctrl-C, an error): the queued rows are complete rows, keep them
            with contextlib.suppress(Exception):
                self.commit()
        if self.lock:
            self.lock.release()
            self.lock = None

    def _check_writable(self) -> None:
        if not self.write:
            raise StoreError(f"index {self.location} was opened read-only")

    @contextlib.contextmanager
    def writing(self, doing: str, needed: int | None = None):
        """Every write to the index goes through here: a full disk or a read-only folder becomes
        ``IndexFullError`` / ``IndexReadOnlyError`` with a message naming the folder, what is kept
        (every earlier commit: each commit is one atomic LanceDB version) and what to do next.
        ``needed``: about how many bytes the write was adding, when known."""
        try:
            yield
        except (IndexFullError, IndexReadOnlyError):
            raise
        except (OSError, RuntimeError) as error:
            translated = file_system_error(self.location, error, doing, self.kept, needed)
            if translated is error:
                raise
            raise translated from None

    def kept(self) -> str:
        """What the index holds now, in words: its committed rows (read back, so a failed write is not counted)."""
        parts = []
        for name in self._meta.get("current", {}).values() if self._meta else ():
            table = self._tables[name].table if name in self._tables else self._open_table(name)
            with contextlib.suppress(Exception):
                if table.count_rows():
                    parts.append(f"{table.count_rows():,} images in {name}")
        return ("the last commit, " + ", ".join(parts) + ", is intact") if parts else \
            "no images had been committed yet"

    # ---- tables
    def _open_table(self, name: str):
        if self._handles is not None and name in self._handles:
            return self._handles[name]
        try:
            table = self.db.open_table(name)
        except ValueError:
            table = None
        if self._handles is not None:
            self._handles[name] = table  # a missing table too: ``checkout_latest`` forgets it
        return table

    def keep_handles(self) -> None:
        """Keep every table handle (and every table found missing) once opened, instead of opening the table at
        each read (an open is a few LanceDB round trips): for a long-lived reader (``serve``), which calls
        ``checkout_latest`` whenever ``versions_stamp`` changed. A read-only store only: a writer's reads see its
        own commits through the handles it writes with."""
        if not self.write:
            self._handles = {}

    def checkout_latest(self) -> None:
        """The kept handles moved to their tables' latest versions; tables found missing are looked for again."""
        if self._handles is None:
            return
        for name, table in list(self._handles.items()):
            if table is None:
                del self._handles[name]
            else:
                table.checkout_latest()

    def versions_stamp(self) -> tuple | None:
        """What changes whenever any table of a local index gets a version (every commit writes a new manifest
        into its ``_versions`` folder: versions only grow) or a table is made or dropped; read from the folder
        listings, no LanceDB call and no clock. None for an object store, where it cannot be read so cheaply."""
        if is_uri(self.location):
            return None
        try:
            tables = sorted(entry.name for entry in os.scandir(self.location) if entry.name.endswith(".lance"))
            stamp = [tuple(tables)]
            for name in tables:
                manifests = [entry.name for entry in os.scandir(Path(self.location) / name / "_versions")
                             if entry.name.endswith(".manifest")]
                stamp.append((len(manifests), min(manifests, default=""), max(manifests, default="")))
        except OSError:  # a table made or dropped while listed: say "changed"
            return None
        return tuple(stamp)

    def _table(self, name: str, schema):
        table = self._open_table(name)
        if table is None:
            with quiet_lance(), self.writing(f"creating table {name}"):
                table = self.db.create_table(name, schema=schema, exist_ok=True)
        return table

    # ---- meta
    def _read_meta(self) -> dict | None:
        table = self._open_table(META_TABLE)
        if table is None:
            return None
        rows = table.to_arrow().to_pylist()
        meta = {row["key"]: json.loads(row["value"]) for row in rows}
        if meta.get("format", 0) > FORMAT_VERSION:
            raise StoreError(f"index {self.location} was written by a newer version (format {meta['format']}); "
                             "update the code")
        return meta

    def _write_meta(self, **items) -> None:
        import pyarrow as pa  # heavy: pyarrow

        table = self._table(META_TABLE, meta_schema())
        rows = pa.table({"key": list(items), "value": [json.dumps(v, ensure_ascii=False) for v in items.values()]},
                        schema=meta_schema())
        with self.writing("writing the meta table"):
            upsert(table, rows, key="key")
        self._meta = {**(self._meta or {}), **items}
        self.mark_written(META_TABLE)

    def _create(self, library) -> None:
        if library is None:
            raise StoreError(f"creating index {self.location} needs the library folder it indexes")
        library = str(Path(library).resolve()) if not is_uri(str(library)) else str(library)
        self._table(FAILURES_TABLE, failure_schema())
        self._table(CAPTIONS_TABLE, caption_schema())
        self._write_meta(format=FORMAT_VERSION, library=library, created=time.time(), tables={}, current={})

    @property
    def library(self) -> str:
        return self._meta["library"]

    def absolute(self, relative: str) -> Path:
        return Path(self.library) / relative

    def __len__(self) -> int:
        """Images indexed (rows of the first role's table, clip first)."""
        return len(self.images(self.roles[0])) if self.roles else 0

    @property
    def roles(self) -> list[str]:
        """Roles with a current table (e.g. ['clip', 'chinese_clip'])."""
        return list(self._meta.get("current", {}))

    def identity(self, role: str) -> EncoderIdentity:
        name = self._meta.get("current", {}).get(role)
        if name is None:
            raise StoreError(f"index {self.location} has no {role} vectors; re-run `index`"
                             + (" with --chinese-clip" if role == "chinese_clip" else ""))
        return EncoderIdentity.from_json(self._meta["tables"][name])

    def images(self, role_or_identity: str | EncoderIdentity) -> ImageTable:
        """The images table for a role (its current table) or for an encoder identity (created if new).

        Asking for a new identity of a role makes its table the role's current one; ``index`` calls
        ``switch_note`` first to say why it is re-encoding.
        """
        if isinstance(role_or_identity, str):
            identity = self.identity(role_or_identity)
        else:
            identity = self._adopt(role_or_identity)
        name = identity.table
        if name not in self._tables:
            if isinstance(role_or_identity, EncoderIdentity):
                self._check_writable()
                table = self._table(name, image_schema(identity.dim))
                tables = dict(self._meta.get("tables", {}))
                current = dict(self._meta.get("current", {}))
                if tables.get(name) != identity.to_json() or current.get(identity.role) != name:
                    tables[name] = identity.to_json()
                    current[identity.role] = name
                    self._write_meta(tables=tables, current=current)
            else:
                table = self._open_table(name)
                if table is None:
                    raise StoreError(f"index {self.location} lists table {name} but it is missing; "
                                     "re-run `index` to rebuild it")
            self._tables[name] = ImageTable(self, identity, table)
        return self._tables[name]

    def _adopt(self, identity: EncoderIdentity) -> EncoderIdentity:
        """A migrated table (precision unknown) is adopted by the first run with the same checkpoint."""
        for name, data in self._meta.get("tables", {}).items():
            if (data["role"], data["location"], int(data["dim"])) == (identity.role, identity.location, identity.dim) \
                    and data["precision"] == npz_migration.MIGRATED_PRECISION:
                return replace(identity, table_name=name)
        return identity

    def switch_note(self, identity: EncoderIdentity) -> str | None:
        """Why a run with ``identity`` cannot reuse the role's current vectors (None if it can)."""
        current_name = self._meta.get("current", {}).get(identity.role)
        target = self._adopt(identity).table
        if current_name is None or current_name == target:
            return None
        current = self.identity(identity.role)
        old_rows = self.images(identity.role).table.count_rows()
        changed = [f"{what} {a} -> {b}" for what, a, b in (
            ("checkpoint", current.location, identity.location), ("precision", current.precision, identity.precision),
            ("dimension", current.dim, identity.dim)) if a != b]
        reuse = self._open_table(target)
        again = f" (kept from an earlier run: {reuse.count_rows()} rows)" if reuse is not None else ""
        return (f"the {identity.role} model changed ({'; '.join(changed)}), so its images are re-encoded into "
                f"table {target}{again}; the old table {current_name} ({old_rows} rows) is kept")

    # ---- failures
    def failures(self) -> dict[str, dict]:
        return {row["path"]: row for row in self._failures.rows()}

    def put_failures(self, rows: list[dict]) -> None:
        """Queue failures (path, size, mtime_ns, reason); written with the next ``commit``."""
        self._failures_pending.extend(rows)

    def drop_failures(self, paths: Iterable[str]) -> None:
        self._failures.delete(paths)

    # ---- captions
    def captions(self, paths: list[str] | None = None, with_sha1: bool = False) -> dict[str, dict]:
        """path -> {"en": ..., "zh": ...} (languages captioned so far) for ``paths``, or all if None.

        ``with_sha1`` adds the hash of the bytes each caption describes (key "sha1").
        """
        out = {}
        for row in self._captions.rows(paths):
            caps = {lang: row[f"caption_{lang}"] for lang in ("en", "zh") if row[f"caption_{lang}"] is not None}
            if with_sha1:
                caps["sha1"] = row["sha1"]
            out[row["path"]] = caps
        return out

    def drop_captions(self, paths: Iterable[str]) -> None:
        self._captions.delete(paths)

    def captions_table(self):
        """The captions' LanceDB table (None before any was created): ``caption_text`` searches it."""
        return self._captions._open()

    def put_captions(self, rows: list[dict]) -> None:
        """rows: {"path", "sha1", "en"?, "zh"?}; languages not given keep their stored caption."""
        if not rows:
            return
        self._check_writable()
        old = self.captions([r["path"] for r in rows], with_sha1=True)
        merged = []
        for row in rows:
            kept = old.get(row["path"], {})
            if kept.get("sha1") != row["sha1"]:  # the file changed: its old captions describe other bytes
                kept = {}
            merged.append({"path": row["path"], "sha1": row["sha1"],
                           **{f"caption_{lang}": row.get(lang, kept.get(lang)) for lang in ("en", "zh")}})
        self._captions.upsert(merged)

    # ---- commits and the end of a run
    def commit(self) -> None:
        """Write every queued row (all images tables and failures)."""
        if self.lock is not None and hasattr(self.lock, "check"):  # an S3 lease lost: write nothing more
            self.lock.check()
        for table in self._tables.values():
            table.commit()
        if self._failures_pending:
            pending, self._failures_pending = self._failures_pending, []
            self._failures.upsert(pending)

    def finish(self) -> None:
        """Commit, then compact the tables written in this session and delete their old versions.

        We hold the lock: no other writer. Tables not written keep their version, so the cached ANN
        index of an images table stays valid when only captions changed, unless an earlier run's
        compaction was cut short (``kill -9``): a table still holding old versions is compacted too.
        """
        self.commit()
        self._check_writable()
        for name in [META_TABLE, FAILURES_TABLE, CAPTIONS_TABLE, *self._meta.get("tables", {})]:
            table = self._tables[name].table if name in self._tables else self._open_table(name)
            # captions without their full-text index (written before it existed): built here, by any writing run
            text_due = name == CAPTIONS_TABLE and table is not None and table.count_rows() > 0 and \
                any(state != "ok" for state in caption_text.index_state(table).values())
            if table is None or (name not in self._touched and len(table.list_versions()) <= 1 and not text_due):
                continue
            with quiet_lance(), self.writing(f"compacting table {name}", needed=_folder_bytes(
                    Path(self.location) / f"{name}.lance") if not is_uri(self.location) else None):
                if name == CAPTIONS_TABLE and table.count_rows() >= CAPTION_INDEX_ROWS and \
                        not any(list(i.columns) == ["path"] for i in table.list_indices()):  # hits look up by path
                    table.create_scalar_index("path", replace=True)
                if text_due:
                    caption_text.ensure_index(table)
                table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)  # also indexes new captions
        self._touched.clear()

    def size_bytes(self) -> int:
        """Bytes of the tables on disk (the ANN cache and the lock file excluded)."""
        if is_uri(self.location):
            raise StoreError("size_bytes is for local index folders")
        total = 0
        for folder, dirs, files in os.walk(self.location):
            dirs[:] = [d for d in dirs if not (folder == self.location and d == ANN_DIR)]
            total += sum(os.path.getsize(os.path.join(folder, f)) for f in files if f != LOCK_NAME)
        return total

    def ann_dir(self) -> Path:
        """Where built vector indexes are cached: INDEX/ann, or a local cache folder for a URI index."""
        return local_side_folder(self.location, "ann") if is_uri(self.location) else Path(self.location) / ANN_DIR

    # ---- migration from store.npz
    def _migrate(self, old: npz_migration.OldIndex) -> None:
        started = time.time()
        if self._meta is None:
            self._create(old.library)
        was_writing, self.write = self.write, True
        self._write_meta(migrating=True)  # a migration cut short is redone on the next open (rows upserted)
        for role, spec in old.encoders.items():
            table = self.images(EncoderIdentity(role, spec["location"], npz_migration.MIGRATED_PRECISION,
                                                int(spec["dim"])))
            for rows in old.rows(role):
                table.put(rows)
        self.commit()
        self._write_meta(migrating=False)
        self.finish()
        self.write = was_writing
        npz_migration.retire(old, time.time() - started)
        self._meta = self._read_meta()


def held_precision(index: str | os.PathLike, locations: dict[str, str]) -> str | None:
    """The precision the index's current vectors of every role in ``locations`` share (None: no index,
    another model, a migrated table of unknown precision, or roles at different precisions)."""
    try:
        store = Store.open(index)
    except (FileNotFoundError, StoreError):
        return None
    held = set()
    for role, location in locations.items():
        if role not in store.roles or store.identity(role).location != str(location):
            return None
        held.add(store.identity(role).base_precision)
    return held.pop() if len(held) == 1 and npz_migration.MIGRATED_PRECISION not in held else None


# ----------------------------------------------------------------------------- a table handed to vector search
def ann_for(store: Store, table: ImageTable, build: bool = True) -> VectorIndex | None:
    """Cached ANN index of ``table``, or (``build``) a freshly built one, cached when the folder is writable."""
    folder = store.ann_dir()
    ann = vector_search.load_ann(table, folder)
    if ann is not None or not build:
        return ann
    if len(table) >= ANN_THRESHOLD:
        log(f"building the ANN index of {table.name} ({len(table)} rows); `index` builds it ahead")
    ann = vector_search.build_ann(table)
    try:
        vector_search.save_ann(table, ann, folder)
    except OSError as error:  # a read-only index: search works, the index is rebuilt next time
        log(f"could not cache the ANN index in {folder} ({error}); it will be rebuilt next time")
    return ann


def open_vectors(store: Store, role: str, mode: str = "auto", threshold: int = ANN_THRESHOLD) -> VectorIndex:
    """Exact below ``threshold`` rows, the cached (or built) IVF-SQ8 index above; ``mode`` forces one."""
    if mode not in ("auto", "exact", "ann"):
        raise ValueError("mode must be auto, exact or ann")
    table = store.images(role)
    rows = len(table)
    if mode == "auto":
        mode = "ann" if rows >= threshold else "exact"
    if mode == "exact" or rows == 0:
        return vector_search.open_exact(table)
    return ann_for(store, table)
