"""The capstone's index: an embedded LanceDB database. The store only stores (rclip style).

An index folder is a LanceDB database with these tables:

* ``images_<role>_<id>``: one per *encoder identity* (role + checkpoint location + precision).
  Columns ``path`` (relative to the library), ``size``, ``mtime_ns``, ``sha1``, ``width``,
  ``height``, ``vector`` (unit length, stored as float16: half the disk and RAM of float32, and
  exact top-10 agrees with float32 vectors on 0.99+ of queries, see ``bench``). A changed model
  (another checkpoint, another precision) gets a table of its own instead of silently mixing
  vectors; the old table is kept, so switching back costs nothing.
* ``failures``: ``path``, ``size``, ``mtime_ns``, ``reason``; a broken file is not retried
  until its size or modification time changes.
* ``captions``: ``path``, ``sha1``, ``caption_en``, ``caption_zh``. Captions describe an image,
  not an encoder, so both encoders' rows share them, and writing captions never rewrites vector
  rows (LanceDB updates a row by deleting and re-appending it) nor invalidates the ANN index. The
  sha1 ties a caption to the bytes it describes: a changed file's old caption is not shown.
* ``meta``: key/value JSON (format, library, which table serves each role).

Writes cost O(batch), never O(library): rows are buffered and committed every ``commit_rows``
rows (or when the caller says), new paths with ``add`` and already-present paths with
``merge_insert`` keyed by path (``merge_insert`` joins against the whole key column, which
made a 4096-row commit grow from 45 ms to 145 ms between 0 and 1M rows here; ``add`` stays
flat). Each commit is one atomic LanceDB version: ``kill -9`` loses at most the rows since the
last commit and duplicates nothing. ``finish()`` compacts fragments and deletes old versions,
so an index updated many times is about the size of a fresh one. A lock file (``.lock``,
``flock``: released by the kernel when the holder dies, even by ``kill -9``) keeps a second
writer out, with a message naming the holder. A ``store.npz`` left by the previous version of
the capstone is migrated on first open (vectors kept, nothing re-encoded).

Vector search over a table (``open_vectors``): exact below ``ANN_THRESHOLD`` rows (FAISS flat
index on the float16 codes: 2 bytes per dimension, never a float32 copy), FAISS IVF-SQ8 above
it (1 byte per dimension: 512 MB at 1M x 512), built from the table in streaming passes, tuned
(``nprobe`` doubled until recall@10 against exact search reaches ``IVF_TARGET_RECALL`` on
library vectors, then doubled once more as a margin) and cached in ``INDEX/ann/`` keyed by the
table version, so opening a 1M-row index for search reads 0.5 GB and trains nothing.
LanceDB's own IVF_SQ index was measured against this on 200k clustered 512-d rows here:
82 s to build vs 4 s, p50 3.6 ms vs 0.2 ms per query at equal recall (>= 0.99).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import numpy as np

from ..retrieval import top_k_scores

FORMAT_VERSION = 2
COMMIT_ROWS = 2048  # rows per LanceDB commit (one version each); the indexer also commits on time
LOCK_NAME = ".lock"
ANN_DIR = "ann"
OLD_STORE_NAME = "store.npz"  # the previous version's index file (migrated on first open)
META_TABLE, FAILURES_TABLE, CAPTIONS_TABLE = "meta", "failures", "captions"
VECTOR_TYPE = "float16"
ANN_THRESHOLD = 50_000  # rows; below this exact search costs a few ms and no index is worth building
IVF_TARGET_RECALL = 0.95  # recall@10 against exact search that nprobe is tuned to reach (then doubled)
IVF_TRAIN_PER_CELL = 40  # k-means training sample: 40 vectors per cell (FAISS warns below 39)
IVF_KMEANS_ITERATIONS = 10
TUNING_QUERIES = 200
FOREIGN_FILES = {"precision.json", ANN_DIR}  # other modules' files an index folder may hold before the tables
CAPTION_INDEX_ROWS = 10_000  # captions table rows from which a BTree index on path serves the lookups
SCAN_ROWS = 8_192  # rows per batch when reading vectors (8 MB of float16 at 512-d)


class StoreError(RuntimeError):
    """The index cannot be used as asked; the message says why and what to do."""


class IndexLockedError(StoreError):
    """Another run holds the index's write lock."""


def log(message: str) -> None:
    print(f"[store] {message}", file=sys.stderr)


@contextlib.contextmanager
def _quiet():
    """LanceDB warns on every optimize(cleanup_older_than=0) and on deprecated helpers; we know."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


# ----------------------------------------------------------------------------- encoder identity
@dataclass(frozen=True)
class EncoderIdentity:
    """What decides a vector: the role, the checkpoint it came from and the precision it ran at."""

    role: str
    location: str
    precision: str
    dim: int
    table_name: str = field(default="", compare=False)  # set for a migrated table adopted by a later run

    @property
    def key(self) -> str:
        return f"{self.role}\n{self.location}\n{self.precision}\n{self.dim}"

    @property
    def table(self) -> str:
        """A stable table name: the same identity always maps to the same table."""
        return self.table_name or f"images_{self.role}_{hashlib.sha1(self.key.encode()).hexdigest()[:12]}"

    def describe(self) -> str:
        return f"{self.location} at {self.precision}, {self.dim}-d"

    def to_json(self) -> dict:
        return {"role": self.role, "location": self.location, "precision": self.precision, "dim": self.dim,
                "table": self.table}

    @staticmethod
    def from_json(data: dict) -> "EncoderIdentity":
        return EncoderIdentity(data["role"], data["location"], data["precision"], int(data["dim"]),
                               data.get("table", ""))


# ----------------------------------------------------------------------------- schemas
def image_schema(dim: int):
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha1", pa.string()),
                      ("width", pa.int32()), ("height", pa.int32()), ("vector", pa.list_(pa.float16(), dim))])


def _failure_schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("reason", pa.string())])


def _caption_schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("sha1", pa.string()), ("caption_en", pa.string()),
                      ("caption_zh", pa.string())])


def _meta_schema():
    import pyarrow as pa

    return pa.schema([("key", pa.string()), ("value", pa.string())])


def vectors_column(vectors: np.ndarray, dim: int):
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float16)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"vectors must be (rows, {dim}); got {vectors.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float16()), dim)


def vectors_of(column) -> np.ndarray:
    """A FixedSizeList<float16> arrow column -> (rows, dim) float16 numpy array."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    dim = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, dim) if len(flat) else np.zeros((0, dim), np.float16)


def sql_list(values: Iterable[str]) -> str:
    """'a','b' with SQL quoting (a quote inside a path is doubled)."""
    return ",".join("'" + str(v).replace("'", "''") + "'" for v in values)


def is_uri(location: str | os.PathLike) -> bool:
    return "://" in str(location)


# ----------------------------------------------------------------------------- the write lock
class IndexLock:
    """An exclusive ``flock`` on ``INDEX/.lock``: one writer at a time, released by the kernel on death.

    ``wait_s``: how long to wait for another holder (0: refuse at once). The file carries the
    holder's pid, host and start time so the refusal can say who has it.
    """

    def __init__(self, index_dir: str | os.PathLike, wait_s: float = 0.0):
        self.path = Path(index_dir) / LOCK_NAME
        self.wait_s = wait_s
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        if not data:
            return "another process"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.get("since", 0)))
        return f"pid {data.get('pid')} on {data.get('host')}, since {since}"

    def acquire(self) -> "IndexLock":
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, told = time.monotonic() + self.wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" after waiting {self.wait_s:g} s" if self.wait_s else ""
                    raise IndexLockedError(
                        f"index {self.path.parent} is being updated by another run ({self.holder()}){waited}; "
                        "nothing was written. Wait for it to finish, or pass --wait SECONDS to queue behind it") \
                        from None
                if not told:
                    log(f"index {self.path.parent} is being updated by another run ({self.holder()}); "
                        f"waiting up to {self.wait_s:g} s for it to finish")
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# ----------------------------------------------------------------------------- one images table
class ImageTable:
    """The rows of one encoder identity. ``put`` buffers; ``commit`` writes one LanceDB version."""

    COLUMNS = ("path", "size", "mtime_ns", "sha1", "width", "height", "vector")

    def __init__(self, store: "Store", identity: EncoderIdentity, table):
        self.store, self.identity, self.table = store, identity, table
        self.name = identity.table
        self.schema = image_schema(identity.dim)
        self._pending: list = []
        self._pending_rows = 0
        self._known: set[str] | None = None  # paths present in the table, loaded on the first commit

    def __len__(self) -> int:
        return self.table.count_rows()

    @property
    def version(self) -> int:
        return self.table.version

    def scan(self, columns: list[str], batch_rows: int = SCAN_ROWS) -> Iterator:
        """The table's rows as arrow record batches of ``columns``, in table order.

        Read by offset ranges (``take_offsets``) rather than with a streaming scan: LanceDB's scan
        reads ahead into its own buffers (about 0.5 GB more peak RSS over a 1M x 512 table here),
        which a search process that must stay small cannot afford.
        """
        n = self.table.count_rows()
        for start in range(0, n, batch_rows):
            part = self.table.take_offsets(list(range(start, min(n, start + batch_rows)))).select(list(columns))
            table = part.to_arrow().combine_chunks()
            yield from table.to_batches(max_chunksize=table.num_rows or None)

    def column(self, name: str):
        import pyarrow as pa

        batches = list(self.scan([name]))
        if not batches:
            return pa.array([], self.schema.field(name).type)
        return pa.concat_arrays([b.column(name) for b in batches])

    def state(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every row: what the indexer compares with the disk."""
        out = {}
        for batch in self.scan(["path", "size", "mtime_ns"]):
            out.update(zip(batch.column("path").to_pylist(),
                           zip(batch.column("size").to_pylist(), batch.column("mtime_ns").to_pylist())))
        return out

    def records(self, columns=("path", "size", "mtime_ns", "sha1", "width", "height")) -> list[dict]:
        rows = []
        for batch in self.scan(list(columns)):
            rows.extend(batch.to_pylist())
        return rows

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(paths, float16 vectors) of the whole table, in one consistent order."""
        paths, chunks = [], []
        for batch in self.scan(["path", "vector"]):
            paths.extend(batch.column("path").to_pylist())
            chunks.append(vectors_of(batch.column("vector")))
        return paths, (np.concatenate(chunks) if chunks else np.zeros((0, self.identity.dim), np.float16))

    def put(self, rows) -> None:
        """Queue rows (a dict of columns, a list of row dicts, or an arrow table); commits every COMMIT_ROWS.

        ``vector`` may be float32 or float16 ``(rows, dim)``; a path already in the table is replaced.
        """
        import pyarrow as pa

        if isinstance(rows, list):
            if not rows:
                return
            rows = {name: [row[name] for row in rows] for name in self.COLUMNS}
            rows["vector"] = np.stack(rows["vector"])
        if isinstance(rows, dict):
            missing = [name for name in self.COLUMNS if name not in rows]
            if missing:
                raise ValueError(f"rows lack the columns {missing}")
            vectors = np.asarray(rows["vector"])
            if len(vectors) and not np.all(np.isfinite(vectors)):
                raise ValueError("vectors contain NaN or infinity")
            arrays = [pa.array(rows[name], self.schema.field(name).type) for name in self.COLUMNS[:-1]]
            rows = pa.Table.from_arrays(arrays + [vectors_column(vectors, self.identity.dim)], schema=self.schema)
        elif not isinstance(rows, pa.Table):
            raise TypeError("rows must be a dict of columns, a list of row dicts or a pyarrow Table")
        if rows.num_rows == 0:
            return
        self._pending.append(rows.select(list(self.COLUMNS)).cast(self.schema))
        self._pending_rows += rows.num_rows
        if self._pending_rows >= self.store.commit_rows:
            self.commit()

    @property
    def pending(self) -> int:
        return self._pending_rows

    def commit(self) -> int:
        """Write the queued rows as one atomic version; returns how many rows went in."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self._pending:
            return 0
        self.store._check_writable()
        batch = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        paths = batch.column("path").to_pylist()
        if len(set(paths)) != len(paths):  # the same path queued twice: keep the last
            last = {p: i for i, p in enumerate(paths)}
            batch = batch.take(sorted(last.values()))
            paths = batch.column("path").to_pylist()
        if self._known is None:
            self._known = set(self.column("path").to_pylist())
        present = pa.array([p in self._known for p in paths])
        new, old = batch.filter(pc.invert(present)), batch.filter(present)
        with _quiet():
            if old.num_rows:
                (self.table.merge_insert("path").when_matched_update_all().when_not_matched_insert_all()
                 .execute(old))
            if new.num_rows:
                self.table.add(new)
        self._known.update(paths)
        self.store._touched.add(self.name)
        return batch.num_rows

    def delete(self, paths: Iterable[str], chunk: int = 1000) -> int:
        paths = list(paths)
        self.store._check_writable()
        for start in range(0, len(paths), chunk):
            self.table.delete(f"path IN ({sql_list(paths[start:start + chunk])})")
        if paths:
            self.store._touched.add(self.name)
        if self._known is not None:
            self._known.difference_update(paths)
        return len(paths)


# ----------------------------------------------------------------------------- the store
class Store:
    """An index folder (or object-store URI) holding the library's tables.

    ``Store.open(INDEX)`` opens an existing index for reading; ``Store.open(INDEX, library=ROOT,
    write=True)`` creates it if needed and takes the write lock (released by ``close``/``with``).
    """

    def __init__(self, location: str, db, write: bool, lock: IndexLock | None, commit_rows: int):
        self.location, self.db, self.write, self.lock = location, db, write, lock
        self.commit_rows = commit_rows
        self._meta = self._read_meta()
        self._tables: dict[str, ImageTable] = {}
        self._failures_pending: list[dict] = []
        self._touched: set[str] = set()  # tables written in this session: the ones finish() compacts

    # ---- opening
    @classmethod
    def open(cls, index: str | os.PathLike, library: str | os.PathLike | None = None, write: bool = False,
             wait_s: float = 0.0, commit_rows: int = COMMIT_ROWS) -> "Store":
        import lancedb

        location = str(index)
        local = not is_uri(location)
        path = Path(location)
        if local:
            if path.exists() and not path.is_dir():
                raise StoreError(f"{path} is a file, not an index folder")
            exists = (path / f"{META_TABLE}.lance").is_dir()
            old = (path / OLD_STORE_NAME).is_file()
            if not exists and not old:
                if not write:
                    raise FileNotFoundError(f"no index at {path}; build one with "
                                            f"`python -m chapter09.capstone index LIBRARY_DIR --index {path}`")
                if path.is_dir() and any(p for p in path.iterdir() if p.name not in FOREIGN_FILES and
                                         not p.name.startswith(".")):
                    raise StoreError(f"{path} is not empty and holds no index; use an empty or new folder for --index")
        lock = None
        if write or (local and (not (path / f"{META_TABLE}.lance").is_dir() or (path / OLD_STORE_NAME).is_file())):
            if local:
                lock = IndexLock(path, wait_s).acquire()
            else:
                log(f"{location} is an object-store URI: no lock file there, so run one `index` at a time")
        try:
            db = lancedb.connect(location)
            store = cls(location, db, write, lock, commit_rows)
            if store._meta is None or store._meta.get("migrating"):
                if local and (path / OLD_STORE_NAME).is_file():
                    store._migrate(path / OLD_STORE_NAME)
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

    # ---- tables
    def _open_table(self, name: str):
        try:
            return self.db.open_table(name)
        except ValueError:
            return None

    def _table(self, name: str, schema):
        table = self._open_table(name)
        if table is None:
            with _quiet():
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
        import pyarrow as pa

        table = self._table(META_TABLE, _meta_schema())
        rows = pa.table({"key": list(items), "value": [json.dumps(v, ensure_ascii=False) for v in items.values()]},
                        schema=_meta_schema())
        with _quiet():
            table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(rows)
        self._meta = {**(self._meta or {}), **items}
        self._touched.add(META_TABLE)

    def _create(self, library) -> None:
        if library is None:
            raise StoreError(f"creating index {self.location} needs the library folder it indexes")
        library = str(Path(library).resolve()) if not is_uri(str(library)) else str(library)
        self._table(FAILURES_TABLE, _failure_schema())
        self._table(CAPTIONS_TABLE, _caption_schema())
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
    def encoders(self) -> dict[str, dict]:
        """role -> identity (location, precision, dim, table) of the role's current vectors."""
        return {role: self.identity(role).to_json() for role in self.roles}

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
                    and data["precision"] == "migrated":
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
        table = self._table(FAILURES_TABLE, _failure_schema()) if self.write else self._open_table(FAILURES_TABLE)
        if table is None:
            return {}
        return {row["path"]: row for row in table.to_arrow().to_pylist()}

    def put_failures(self, rows: list[dict]) -> None:
        """Queue failures (path, size, mtime_ns, reason); written with the next ``commit``."""
        self._failures_pending.extend(rows)

    def drop_failures(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if paths:
            self._check_writable()
            table = self._table(FAILURES_TABLE, _failure_schema())
            for start in range(0, len(paths), 1000):
                table.delete(f"path IN ({sql_list(paths[start:start + 1000])})")
            self._touched.add(FAILURES_TABLE)

    # ---- captions
    def captions(self, paths: list[str] | None = None, with_sha1: bool = False) -> dict[str, dict]:
        """path -> {"en": ..., "zh": ...} (languages captioned so far) for ``paths``, or all if None.

        ``with_sha1`` adds the hash of the bytes each caption describes (key "sha1").
        """
        table = self._open_table(CAPTIONS_TABLE)
        if table is None or (paths is not None and not paths):
            return {}
        out = {}
        chunks = [None] if paths is None else [paths[i:i + 1000] for i in range(0, len(paths), 1000)]
        for chunk in chunks:
            query = table.search().limit(None).select(["path", "sha1", "caption_en", "caption_zh"])
            if chunk is not None:
                query = query.where(f"path IN ({sql_list(chunk)})")
            for row in query.to_arrow().to_pylist():
                caps = {lang: row[f"caption_{lang}"] for lang in ("en", "zh") if row[f"caption_{lang}"] is not None}
                if with_sha1:
                    caps["sha1"] = row["sha1"]
                out[row["path"]] = caps
        return out

    def drop_captions(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        table = self._open_table(CAPTIONS_TABLE)
        if paths and table is not None:
            self._check_writable()
            for start in range(0, len(paths), 1000):
                table.delete(f"path IN ({sql_list(paths[start:start + 1000])})")
            self._touched.add(CAPTIONS_TABLE)

    def put_captions(self, rows: list[dict]) -> None:
        """rows: {"path", "sha1", "en"?, "zh"?}; languages not given keep their stored caption."""
        import pyarrow as pa

        if not rows:
            return
        self._check_writable()
        table = self._table(CAPTIONS_TABLE, _caption_schema())
        old = self.captions([r["path"] for r in rows], with_sha1=True)
        data = {"path": [], "sha1": [], "caption_en": [], "caption_zh": []}
        for row in rows:
            kept = old.get(row["path"], {})
            if kept.get("sha1") != row["sha1"]:  # the file changed: its old captions describe other bytes
                kept = {}
            data["path"].append(row["path"])
            data["sha1"].append(row["sha1"])
            for lang in ("en", "zh"):
                data[f"caption_{lang}"].append(row.get(lang, kept.get(lang)))
        with _quiet():
            (table.merge_insert("path").when_matched_update_all().when_not_matched_insert_all()
             .execute(pa.table(data, schema=_caption_schema())))
        self._touched.add(CAPTIONS_TABLE)

    # ---- commits and the end of a run
    def commit(self) -> None:
        """Write every queued row (all images tables and failures)."""
        import pyarrow as pa

        for table in self._tables.values():
            table.commit()
        if self._failures_pending:
            self._check_writable()
            last = {row["path"]: row for row in self._failures_pending}
            self._failures_pending = []
            rows = pa.table({name: [row[name] for row in last.values()] for name in ("path", "size", "mtime_ns", "reason")},
                            schema=_failure_schema())
            with _quiet():
                (self._table(FAILURES_TABLE, _failure_schema()).merge_insert("path").when_matched_update_all()
                 .when_not_matched_insert_all().execute(rows))
            self._touched.add(FAILURES_TABLE)

    def finish(self) -> None:
        """Commit, then compact the tables written in this session and delete their old versions.

        We hold the lock: no other writer. Tables not written keep their version, so the cached ANN
        index of an images table stays valid when only captions changed.
        """
        self.commit()
        self._check_writable()
        for name in [META_TABLE, FAILURES_TABLE, CAPTIONS_TABLE, *self._meta.get("tables", {})]:
            if name not in self._touched:
                continue
            table = self._tables[name].table if name in self._tables else self._open_table(name)
            if table is None:
                continue
            with _quiet():
                if name == CAPTIONS_TABLE and table.count_rows() >= CAPTION_INDEX_ROWS and \
                        not list(table.list_indices()):  # hits look their captions up by path
                    table.create_scalar_index("path", replace=True)
                table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)
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
        if is_uri(self.location):
            digest = hashlib.sha1(self.location.encode()).hexdigest()[:16]
            return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chapter09" / "ann" / digest
        return Path(self.location) / ANN_DIR

    # ---- migration from store.npz
    def _migrate(self, old: Path) -> None:
        started = time.time()
        with np.load(old) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            vectors = {role: data[f"vectors__{role}"] for role in meta["encoders"]}
        records = meta["records"]
        for role, vec in vectors.items():
            if len(vec) != len(records):
                raise StoreError(f"{old}: {role} has {len(vec)} vectors for {len(records)} records; "
                                 "the old index is damaged, build a new one")
        if self._meta is None:
            self._create(meta["library"])
        was_writing, self.write = self.write, True
        self._write_meta(migrating=True)  # a migration cut short is redone on the next open (rows upserted)
        for role, spec in meta["encoders"].items():
            table = self.images(EncoderIdentity(role, spec["location"], "migrated", int(spec["dim"])))
            for start in range(0, len(records), 50_000):
                part = records[start:start + 50_000]
                table.put({"path": [r["path"] for r in part], "size": [r["size"] for r in part],
                           "mtime_ns": [r["mtime_ns"] for r in part], "sha1": [r["sha1"] for r in part],
                           "width": [r.get("width", 0) for r in part], "height": [r.get("height", 0) for r in part],
                           "vector": vectors[role][start:start + 50_000]})
        self.commit()
        self._write_meta(migrating=False)
        self.finish()
        self.write = was_writing
        os.replace(old, old.with_name(OLD_STORE_NAME + ".migrated"))
        log(f"migrated {old} ({len(records)} images; {', '.join(meta['encoders'])} vectors kept, nothing "
            f"re-encoded) to a LanceDB database in {old.parent} in {time.time() - started:.1f} s; "
            f"the old file is kept as {OLD_STORE_NAME}.migrated")
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
        held.add(store.identity(role).precision.split(":")[0])
    return held.pop() if len(held) == 1 and "migrated" not in held else None


# ----------------------------------------------------------------------------- a small index in memory
@dataclass
class Snapshot:
    """One role's table read whole: for small libraries (dedup, tests), not for a million images."""

    library: str
    records: list[dict]
    vectors: dict[str, np.ndarray]  # role -> float32 (rows, dim), rows in ``records`` order

    @property
    def paths(self) -> list[str]:
        return [r["path"] for r in self.records]

    def __len__(self) -> int:
        return len(self.records)


def snapshot(index: str | os.PathLike, role: str = "clip") -> Snapshot:
    """Records and float32 vectors of ``role``'s table (other roles' vectors in the same row order)."""
    store = Store.open(index)
    table = store.images(role)
    records = table.records()
    _, vectors = table.vectors()
    out = {role: vectors.astype(np.float32)}
    order = {r["path"]: i for i, r in enumerate(records)}
    for other in store.roles:
        if other != role:
            paths, vec = store.images(other).vectors()
            aligned = np.full((len(records), vec.shape[1]), np.nan, np.float32)
            for p, v in zip(paths, vec):
                if p in order:
                    aligned[order[p]] = v
            out[other] = aligned
    return Snapshot(store.library, records, out)


# ----------------------------------------------------------------------------- vector search
def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 64):
    """Top-k by inner product; queries in chunks so a (queries x rows) matrix never gets huge."""
    found = [top_k_scores(queries[start:start + chunk] @ vectors.T, k) for start in range(0, len(queries), chunk)]
    return np.concatenate([scores for scores, _ in found]), np.concatenate([ids for _, ids in found])


def recall_against(approx_ids, exact_ids) -> float:
    """Mean fraction of the exact top-k that the approximate search also returns."""
    return float(np.mean([len(set(map(int, a)) & set(map(int, e))) / max(len(e), 1)
                          for a, e in zip(approx_ids, exact_ids)]))


def ivf_cells(n: int) -> int:
    """About sqrt(n) cells: cell scans and centroid scans then cost about the same."""
    return int(min(max(16, round(np.sqrt(n))), max(1, n // IVF_TRAIN_PER_CELL)))


class VectorIndex:
    """Search over one images table: ``mode`` "exact" (FAISS flat on float16 codes) or "ann" (IVF-SQ8).

    ``paths[i]`` is the path of FAISS id ``i``; ``nprobe`` / ``recall_at_10`` are None for exact.
    """

    def __init__(self, index, paths, mode: str, rows: int, nprobe=None, recall_at_10=None, built: bool = False,
                 open_s: float = 0.0):
        self.index, self.paths, self.mode, self.rows = index, paths, mode, rows
        self.nprobe, self.recall_at_10, self.built, self.open_s = nprobe, recall_at_10, built, open_s

    def __len__(self) -> int:
        return self.rows

    def path(self, i: int) -> str:
        return self.paths[int(i)].as_py() if hasattr(self.paths, "type") else self.paths[int(i)]

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if self.rows == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        return self.index.search(queries, min(k, self.rows))


def _flat_fp16(dim: int):
    import faiss

    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


def open_exact(table: ImageTable) -> VectorIndex:
    """Every vector in a FAISS flat index of float16 codes (exact up to the stored float16)."""
    import pyarrow as pa

    started = time.perf_counter()
    index, paths = _flat_fp16(table.identity.dim), []
    for batch in table.scan(["path", "vector"]):
        paths.append(batch.column("path"))
        index.add(vectors_of(batch.column("vector")).astype(np.float32))
    paths = pa.concat_arrays(paths) if paths else pa.array([], pa.string())
    return VectorIndex(index, paths, "exact", index.ntotal, open_s=time.perf_counter() - started)


def _fingerprint(table: ImageTable) -> str:
    return f"{table.name}:{table.version}:{table.table.count_rows()}"


def build_ann(table: ImageTable, seed: int = 0, cells: int | None = None, target: float = IVF_TARGET_RECALL,
              margin: int = 2) -> VectorIndex:
    """IVF-SQ8 over the table in two streaming passes (sample, then add), nprobe tuned against exact search.

    Memory: the index (1 byte per dimension per row) plus one scanned batch; no full copy of the vectors.
    """
    import faiss
    import pyarrow as pa

    started = time.perf_counter()
    n, dim = table.table.count_rows(), table.identity.dim
    if n == 0:
        raise StoreError(f"table {table.name} is empty: nothing to build an ANN index over")
    cells = cells or ivf_cells(n)
    rng = np.random.default_rng(seed)
    train_ids = np.sort(rng.choice(n, min(n, IVF_TRAIN_PER_CELL * cells), replace=False))
    query_ids = np.sort(rng.choice(n, min(n, TUNING_QUERIES), replace=False))
    train, queries, query_paths, offset = [], [], [], 0
    for batch in table.scan(["path", "vector"]):  # pass 1: the k-means sample and the tuning queries
        vec = vectors_of(batch.column("vector"))
        lo, hi = np.searchsorted(train_ids, [offset, offset + len(vec)])
        train.append(vec[train_ids[lo:hi] - offset])
        lo, hi = np.searchsorted(query_ids, [offset, offset + len(vec)])
        queries.append(vec[query_ids[lo:hi] - offset])
        query_paths.extend(batch.column("path").take(query_ids[lo:hi] - offset).to_pylist())
        offset += len(vec)
    train, queries = np.concatenate(train).astype(np.float32), np.concatenate(queries).astype(np.float32)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, cells, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter, index.cp.spherical, index.cp.seed = IVF_KMEANS_ITERATIONS, True, seed
    index.train(train)
    del train
    # tuning queries are library rows, each left out of its own results: a query *near* library
    # content, as real ones are, without the free hit on itself that would inflate the recall
    k = min(10, n - 1)
    query_row = {p: j for j, p in enumerate(query_paths)}
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    paths, offset, self_id = [], 0, np.full(len(queries), -1, np.int64)
    for batch in table.scan(["path", "vector"]):  # pass 2: add, and exact top-k of the tuning queries
        vec = vectors_of(batch.column("vector")).astype(np.float32)
        index.add(vec)
        paths.append(batch.column("path"))
        scores = queries @ vec.T
        for i, p in enumerate(batch.column("path").to_pylist()):
            if p in query_row:
                scores[query_row[p], i] = -np.inf
                self_id[query_row[p]] = offset + i
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.arange(offset, offset + len(vec))[None].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
        offset += len(vec)
    if offset != n:
        raise StoreError(f"table {table.name} changed while its ANN index was built ({n} -> {offset} rows); retry")
    paths = pa.concat_arrays(paths)

    def recall_at(nprobe: int) -> float:
        index.nprobe = nprobe
        found = index.search(queries, k + 1)[1]
        return recall_against([[f for f in row if f != own][:k] for row, own in zip(found, self_id)], best_i)

    nprobe = 1
    while recall_at(nprobe) < target and nprobe < cells:
        nprobe = min(2 * nprobe, cells)
    nprobe = min(margin * nprobe, cells)
    recall = recall_at(nprobe)
    return VectorIndex(index, paths, "ann", n, nprobe, round(recall, 4), built=True,
                       open_s=time.perf_counter() - started)


def save_ann(table: ImageTable, ann: VectorIndex, folder: Path) -> None:
    """index (.faiss), paths (.paths, arrow IPC) and facts (.json, written last: it validates the other two)."""
    import faiss
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / table.name
    tmp_index, tmp_paths = stem.with_suffix(".faiss.tmp"), stem.with_suffix(".paths.tmp")
    faiss.write_index(ann.index, str(tmp_index))
    with pa.OSFile(str(tmp_paths), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("path", pa.string())])) as out:
        out.write_table(pa.table({"path": ann.paths}))
    os.replace(tmp_index, stem.with_suffix(".faiss"))
    os.replace(tmp_paths, stem.with_suffix(".paths"))
    facts = {"fingerprint": _fingerprint(table), "rows": ann.rows, "nprobe": ann.nprobe,
             "recall_at_10": ann.recall_at_10, "cells": ann.index.nlist, "kind": "IVF-SQ8",
             "target_recall": IVF_TARGET_RECALL, "built": time.time()}
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(facts))
    os.replace(tmp, stem.with_suffix(".json"))


def load_ann(table: ImageTable, folder: Path) -> VectorIndex | None:
    """The cached ANN index if it was built from this very table version, else None."""
    import faiss
    import pyarrow as pa

    started = time.perf_counter()
    stem = folder / table.name
    try:
        facts = json.loads(stem.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    if facts.get("fingerprint") != _fingerprint(table):
        return None
    try:
        index = faiss.read_index(str(stem.with_suffix(".faiss")))
        paths = pa.ipc.open_file(pa.memory_map(str(stem.with_suffix(".paths")))).read_all().column("path")
    except (OSError, RuntimeError, pa.ArrowInvalid):
        return None
    paths = paths.combine_chunks() if paths.num_chunks != 1 else paths.chunk(0)
    if index.ntotal != facts["rows"] or len(paths) != facts["rows"]:
        return None
    index.nprobe = facts["nprobe"]
    return VectorIndex(index, paths, "ann", facts["rows"], facts["nprobe"], facts["recall_at_10"],
                       open_s=time.perf_counter() - started)


def ann_for(store: Store, table: ImageTable, build: bool = True) -> VectorIndex | None:
    """Cached ANN index of ``table``, or (``build``) a freshly built one, cached when the folder is writable."""
    folder = store.ann_dir()
    ann = load_ann(table, folder)
    if ann is not None or not build:
        return ann
    if table.table.count_rows() >= ANN_THRESHOLD:
        log(f"building the ANN index of {table.name} ({table.table.count_rows()} rows); `index` builds it ahead")
    ann = build_ann(table)
    try:
        save_ann(table, ann, folder)
    except OSError as error:  # a read-only index: search works, the index is rebuilt next time
        log(f"could not cache the ANN index in {folder} ({error}); it will be rebuilt next time")
    return ann


def open_vectors(store: Store, role: str, mode: str = "auto", threshold: int = ANN_THRESHOLD) -> VectorIndex:
    """Exact below ``threshold`` rows, the cached (or built) IVF-SQ8 index above; ``mode`` forces one."""
    if mode not in ("auto", "exact", "ann"):
        raise ValueError("mode must be auto, exact or ann")
    table = store.images(role)
    rows = table.table.count_rows()
    if mode == "auto":
        mode = "ann" if rows >= threshold else "exact"
    if mode == "exact" or rows == 0:
        return open_exact(table)
    return ann_for(store, table)
