"""The index's tables, one shape each: images (one table per encoder identity) and the small ones keyed by path.

``ImageTable`` holds one encoder identity's rows and is the ``vectors.VectorSource`` that search reads;
``PathTable`` holds failures and captions. Both write only through ``upsert`` and ``delete_paths``.
A table reaches its ``Store`` (the folder that holds it) only for what the whole index shares: whether
it was opened for writing, the commit size, and which tables this session wrote (``finish`` compacts those).
"""
from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .vectors import vectors_of

SCAN_ROWS = 8_192  # rows per batch when reading vectors (8 MB of float16 at 512-d)
DELETE_CHUNK = 1000  # paths per ``path IN (...)`` filter


@contextlib.contextmanager
def quiet_lance():
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
    chosen: bool = field(default=False, compare=False)  # the checkpoint came from --clip-model: search reads with it

    @property
    def key(self) -> str:
        return f"{self.role}\n{self.location}\n{self.precision}\n{self.dim}"

    @property
    def table(self) -> str:
        """A stable table name: the same identity always maps to the same table."""
        return self.table_name or f"images_{self.role}_{hashlib.sha1(self.key.encode()).hexdigest()[:12]}"

    @property
    def base_precision(self) -> str:
        """fp32 | bf16 | int8 without the method an int8 identity names (``precision.precision_identity``)."""
        return self.precision.split(":")[0]

    def describe(self) -> str:
        return f"{self.location} at {self.precision}, {self.dim}-d"

    def to_json(self) -> dict:
        chosen = {"chosen": True} if self.chosen else {}  # absent by default: older indexes' meta stays as it was
        return {"role": self.role, "location": self.location, "precision": self.precision, "dim": self.dim,
                "table": self.table, **chosen}

    @staticmethod
    def from_json(data: dict) -> "EncoderIdentity":
        return EncoderIdentity(data["role"], data["location"], data["precision"], int(data["dim"]),
                               data.get("table", ""), bool(data.get("chosen", False)))


# ----------------------------------------------------------------------------- schemas
# Read from the file at index time (``indexer.photo_metadata``); tables made before them get them as nulls
# when opened for writing, filled the next time ``index`` runs (a header read, no encode).
POSITION_COLUMNS = ("lat", "lon")  # the EXIF GPS position
PLACE_COLUMNS = ("place", "place_zh", "admin", "country")  # its name, looked up once per run (``index.places``)
METADATA_COLUMNS = ("taken_s", "taken_from", "camera_make", "camera_model", "format", *POSITION_COLUMNS,
                    *PLACE_COLUMNS)


def metadata_fields():
    """taken_s: capture time (EXIF DateTimeOriginal read as UTC wall-clock, else the file's mtime), seconds since
    the epoch; taken_from: 'exif' | 'file'; camera make/model (null when unknown); Pillow's format, lower-cased;
    lat/lon: the EXIF GPS position in degrees (NaN: the file has none; null: not read for one yet); place (the
    city, English; '' when nothing is named near the position), place_zh (its Chinese name), admin (the region),
    country (ISO code): named from lat/lon once per run (``index.places``), null until then."""
    import pyarrow as pa  # heavy: pyarrow

    return [pa.field("taken_s", pa.int64()), pa.field("taken_from", pa.string()), pa.field("camera_make", pa.string()),
            pa.field("camera_model", pa.string()), pa.field("format", pa.string()),
            pa.field("lat", pa.float64()), pa.field("lon", pa.float64()), pa.field("place", pa.string()),
            pa.field("place_zh", pa.string()), pa.field("admin", pa.string()), pa.field("country", pa.string())]


def image_schema(dim: int):
    import pyarrow as pa  # heavy: pyarrow

    return pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("sha1", pa.string()),
                      ("width", pa.int32()), ("height", pa.int32()), *metadata_fields(),
                      ("vector", pa.list_(pa.float16(), dim))])


def failure_schema():
    import pyarrow as pa  # heavy: pyarrow

    return pa.schema([("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("reason", pa.string())])


def caption_schema():
    import pyarrow as pa  # heavy: pyarrow

    return pa.schema([("path", pa.string()), ("sha1", pa.string()), ("caption_en", pa.string()),
                      ("caption_zh", pa.string())])


def meta_schema():
    import pyarrow as pa  # heavy: pyarrow

    return pa.schema([("key", pa.string()), ("value", pa.string())])


def vectors_column(vectors: np.ndarray, dim: int):
    import pyarrow as pa  # heavy: pyarrow

    vectors = np.ascontiguousarray(vectors, dtype=np.float16)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"vectors must be (rows, {dim}); got {vectors.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float16()), dim)


def sql_list(values: Iterable[str]) -> str:
    """'a','b' with SQL quoting (a quote inside a path is doubled)."""
    return ",".join("'" + str(v).replace("'", "''") + "'" for v in values)


# ----------------------------------------------------------------------------- the two writes every table uses
def upsert(table, rows, key: str = "path") -> None:
    """Insert ``rows`` (an arrow table), replacing the rows whose ``key`` they carry."""
    with quiet_lance():
        table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(rows)


def delete_paths(table, paths: list[str]) -> None:
    """Delete the rows of ``paths``, in chunks (a filter of a million paths would be one huge SQL string)."""
    for start in range(0, len(paths), DELETE_CHUNK):
        table.delete(f"path IN ({sql_list(paths[start:start + DELETE_CHUNK])})")


# ----------------------------------------------------------------------------- one images table
class ImageTable:
    """The rows of one encoder identity. ``put`` buffers; ``commit`` writes one LanceDB version.

    It is also the ``vectors.VectorSource`` that exact and ANN search read.
    """

    COLUMNS = ("path", "size", "mtime_ns", "sha1", "width", "height", *METADATA_COLUMNS, "vector")
    REQUIRED = ("path", "size", "mtime_ns", "sha1", "width", "height", "vector")  # metadata may be left out: null

    def __init__(self, store, identity: EncoderIdentity, table):
        self.store, self.identity, self.table = store, identity, table
        self.name = identity.table
        self.schema = image_schema(identity.dim)
        self._pending: list = []
        self._pending_rows = 0
        self._known: set[str] | None = None  # paths present in the table, loaded on the first commit
        if store.write:
            self._add_metadata_columns()

    def _add_metadata_columns(self) -> None:
        """A table from before the metadata columns gets them, all null (a metadata-only LanceDB commit: no data
        file is rewritten); ``index`` fills them when it next runs."""
        import pyarrow as pa  # heavy: pyarrow

        have = set(self.table.schema.names)
        missing = [f for f in metadata_fields() if f.name not in have]
        if missing:
            with quiet_lance(), self.store.writing(f"adding the columns {', '.join(f.name for f in missing)} "
                                                   f"to {self.name}"):
                self.table.add_columns(pa.schema(missing))
            self.store.mark_written(self.name)

    @property
    def has_metadata(self) -> bool:
        """Whether the table has the metadata columns (an old index opened read-only does not)."""
        return set(METADATA_COLUMNS) <= set(self.table.schema.names)

    def __len__(self) -> int:
        return self.table.count_rows()

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def version(self) -> int:
        return self.table.version

    def fingerprint(self) -> str:
        """Table, version and rows: a cached ANN index is valid for exactly this."""
        return f"{self.name}:{self.version}:{self.table.count_rows()}"

    def scan(self, columns: list[str], batch_rows: int = SCAN_ROWS) -> Iterator:
        """The table's rows as arrow record batches of ``columns``, in table order.

        Read by offset ranges (``take_offsets``) rather than with a streaming scan: LanceDB's scan
        reads ahead into its own buffers (the capstone README has how much), which a search process
        that must stay small cannot afford.
        """
        n = self.table.count_rows()
        for start in range(0, n, batch_rows):
            part = self.table.take_offsets(list(range(start, min(n, start + batch_rows)))).select(list(columns))
            table = part.to_arrow().combine_chunks()
            yield from table.to_batches(max_chunksize=table.num_rows or None)

    def vector_batches(self, batch_rows: int = SCAN_ROWS) -> Iterator[tuple]:
        """(paths arrow array, (rows, dim) float16 vectors) per batch, in table order."""
        for batch in self.scan(["path", "vector"], batch_rows):
            yield batch.column("path"), vectors_of(batch.column("vector"))

    def rows_at(self, offsets: list[int], columns: tuple[str, ...], rows: int | None = None) -> list[dict]:
        """The rows at table ``offsets`` (a vector index's ids), in that order; an offset past the end gives None.
        ``rows``: the table's rows when the caller knows them (a vector index opened at this version), which
        saves a count."""
        n = self.table.count_rows() if rows is None else rows
        inside = sorted({int(i) for i in offsets if 0 <= int(i) < n})  # LanceDB answers in offset order
        rows = self.table.take_offsets(inside).select(list(columns)).to_arrow().to_pylist() if inside else []
        by_offset = dict(zip(inside, rows))
        return [by_offset.get(int(i)) for i in offsets]

    def column(self, name: str):
        import pyarrow as pa  # heavy: pyarrow

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

    def catalog(self) -> dict[str, tuple]:
        """path -> (size, mtime_ns, sha1, has_metadata) of every row: the indexer's view of what the table holds
        (sha1 recognises moved and copied files; has_metadata False: a row from before the metadata columns, or
        read before the GPS position was: lat null)."""
        import pyarrow.compute as pc  # heavy: pyarrow

        columns = ["path", "size", "mtime_ns", "sha1"] + (["taken_s", "lat"] if self.has_metadata else [])
        out = {}
        for batch in self.scan(columns):
            filled = pc.and_(batch.column("taken_s").is_valid(), batch.column("lat").is_valid()).to_pylist() \
                if self.has_metadata else [False] * batch.num_rows
            out.update(zip(batch.column("path").to_pylist(),
                           zip(batch.column("size").to_pylist(), batch.column("mtime_ns").to_pylist(),
                               batch.column("sha1").to_pylist(), filled)))
        return out

    def rows_of(self, paths: list[str]):
        """The whole rows (vectors included) of ``paths`` as an arrow table in this table's schema, looked up in
        chunks (the filter is a SQL string); paths not in the table are absent."""
        import pyarrow as pa  # heavy: pyarrow

        parts = []
        for start in range(0, len(paths), DELETE_CHUNK):
            chunk = paths[start:start + DELETE_CHUNK]
            query = self.table.search().where(f"path IN ({sql_list(chunk)})").limit(None)
            parts.append(query.select(list(self.table.schema.names)).to_arrow())
        if not parts:
            return self.schema.empty_table()
        table = pa.concat_tables(parts)
        for name in self.schema.names:  # an old table opened read-only: its missing metadata as nulls
            if name not in table.column_names:
                table = table.append_column(self.schema.field(name), pa.nulls(table.num_rows, self.schema.field(name).type))
        return table.select(self.schema.names).cast(self.schema)

    def records(self, columns=("path", "size", "mtime_ns", "sha1", "width", "height")) -> list[dict]:
        rows = []
        for batch in self.scan(list(columns)):
            rows.extend(batch.to_pylist())
        return rows

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(paths, float16 vectors) of the whole table, in one consistent order."""
        paths, chunks = [], []
        for batch_paths, vectors in self.vector_batches():
            paths.extend(batch_paths.to_pylist())
            chunks.append(vectors)
        return paths, (np.concatenate(chunks) if chunks else np.zeros((0, self.identity.dim), np.float16))

    def put(self, rows) -> None:
        """Queue rows (a dict of columns, a list of row dicts, or an arrow table); commits every COMMIT_ROWS.

        ``vector`` may be float32 or float16 ``(rows, dim)``; a path already in the table is replaced.
        """
        import pyarrow as pa  # heavy: pyarrow

        if isinstance(rows, list):
            if not rows:
                return
            rows = {name: [row.get(name) for row in rows] for name in self.COLUMNS}
            rows["vector"] = np.stack(rows["vector"])
        if isinstance(rows, dict):
            missing = [name for name in self.REQUIRED if name not in rows]
            if missing:
                raise ValueError(f"rows lack the columns {missing}")
            vectors = np.asarray(rows["vector"])
            if len(vectors) and not np.all(np.isfinite(vectors)):
                raise ValueError("vectors contain NaN or infinity")
            n = len(rows["path"])
            arrays = [pa.array(rows[name] if name in rows else [None] * n, self.schema.field(name).type)
                      for name in self.COLUMNS[:-1]]
            rows = pa.Table.from_arrays(arrays + [vectors_column(vectors, self.identity.dim)], schema=self.schema)
        elif not isinstance(rows, pa.Table):
            raise TypeError("rows must be a dict of columns, a list of row dicts or a pyarrow Table")
        else:  # an arrow table without the metadata columns: nulls
            for name in METADATA_COLUMNS:
                if name not in rows.column_names:
                    field_ = self.schema.field(name)
                    rows = rows.append_column(field_, pa.nulls(rows.num_rows, field_.type))
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
        import pyarrow as pa  # heavy: pyarrow
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
        batch = batch.select(self.table.schema.names)  # an evolved table's column order (metadata after vector)
        present = pa.array([p in self._known for p in paths])
        new, old = batch.filter(pc.invert(present)), batch.filter(present)
        with self.store.writing(f"committing {batch.num_rows:,} rows to {self.name}", needed=batch.nbytes):
            if old.num_rows:
                upsert(self.table, old)
            if new.num_rows:  # new paths: add, whose cost does not grow with the table
                with quiet_lance():
                    self.table.add(new)
        self._known.update(paths)
        self.store.mark_written(self.name)
        return batch.num_rows

    def delete(self, paths: Iterable[str]) -> int:
        paths = list(paths)
        self.store._check_writable()
        with self.store.writing(f"deleting {len(paths):,} rows from {self.name}"):
            delete_paths(self.table, paths)
        if paths:
            self.store.mark_written(self.name)
        if self._known is not None:
            self._known.difference_update(paths)
        return len(paths)


# ----------------------------------------------------------------------------- the small tables keyed by path
class PathTable:
    """A small table keyed by ``path`` (failures, captions): read some or all rows, upsert, delete by paths."""

    def __init__(self, store, name: str, schema):
        self.store, self.name, self.schema = store, name, schema

    def _open(self, create: bool = False):
        return self.store._table(self.name, self.schema) if create else self.store._open_table(self.name)

    def rows(self, paths: list[str] | None = None) -> list[dict]:
        """Every row, or the rows of ``paths`` (looked up in chunks: the filter is a SQL string)."""
        table = self._open(create=self.store.write)
        if table is None or (paths is not None and not paths):
            return []
        out = []
        chunks = [None] if paths is None else [paths[i:i + DELETE_CHUNK] for i in range(0, len(paths), DELETE_CHUNK)]
        for chunk in chunks:
            query = table.search().limit(None).select(self.schema.names)
            if chunk is not None:
                query = query.where(f"path IN ({sql_list(chunk)})")
            out.extend(query.to_arrow().to_pylist())
        return out

    def upsert(self, rows: list[dict]) -> None:
        """Write ``rows`` (dicts with every column), replacing the stored rows of their paths; the last row of a
        path given twice wins."""
        import pyarrow as pa  # heavy: pyarrow

        if not rows:
            return
        self.store._check_writable()
        last = {row["path"]: row for row in rows}
        data = pa.table({name: [row[name] for row in last.values()] for name in self.schema.names}, schema=self.schema)
        table = self._open(create=True)
        with self.store.writing(f"writing {len(last):,} rows to {self.name}", needed=data.nbytes):
            upsert(table, data)
        self.store.mark_written(self.name)

    def delete(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        table = self._open()
        if paths and table is not None:
            self.store._check_writable()
            with self.store.writing(f"deleting {len(paths):,} rows from {self.name}"):
                delete_paths(table, paths)
            self.store.mark_written(self.name)
