"""Search filters: folder, capture date, camera, file type, pixel size, place, evaluated to a mask over a table's rows.

A ``Filters`` is what the user asked for (checked and normalised once, by ``Filters.parse``); a
``Metadata`` is the columns of one images table at one version, read once and cached by the searcher
per fingerprint. ``Metadata.mask`` gives a boolean array aligned with the table order, which is the
order of the vector index's ids, so the vector search can be restricted to the matching rows (a FAISS
selector) instead of post-filtering its top-k.

Columns (``tables.image_schema``): ``path``, ``mtime_ns``, ``width``, ``height`` are always there;
``taken_s``, ``taken_from``, ``camera_make``, ``camera_model``, ``format`` come with the metadata the
indexer stores. A table without them (an index built before) is still filtered: the date falls back to
the file's modification time, the type to the path's suffix (also per row, where a re-index has not
filled the column yet); camera filters need those columns and say so, as do the place filters (``--place``,
``--near``: ``lat``, ``lon``, ``place``, ``place_zh``, ``admin``, ``country``, see ``places``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ...errors import UsageError
from ...images import FORMAT_SUFFIXES, VIDEO_SUFFIXES
from ..store.tables import METADATA_COLUMNS, PLACE_COLUMNS, POSITION_COLUMNS
from .places import PlaceNames, near_mask, parse_near, parse_place

# format name -> its suffixes: owned by images (what the index walks), named here too; a video's frames are "video"
SUFFIXES = {**FORMAT_SUFFIXES, "video": VIDEO_SUFFIXES}
FORMATS = tuple(SUFFIXES)
ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "heic": "heif", "hif": "heif", "tif": "tiff",
           **{suffix.lstrip("."): "video" for suffix in VIDEO_SUFFIXES}}
BASE_COLUMNS = ("path", "mtime_ns", "width", "height")
FILTERED_METADATA = tuple(c for c in METADATA_COLUMNS if c != "taken_from")  # the metadata a filter reads


def _epoch(value: str, flag: str) -> int:
    """An ISO date (2024-05-01) or date-time (2024-05-01T18:30) -> seconds since the epoch, read as UTC
    wall-clock (as the indexer stores EXIF times, which carry no zone)."""
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise UsageError(f"{flag} {value!r}: give an ISO date such as 2024-05-01 (or 2024-05-01T18:30)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _iso(seconds: int | None) -> str | None:
    return None if seconds is None else dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M")


def normalise_folder(folder: str | None, library: str | None = None) -> str | None:
    """A folder prefix relative to the library, without leading ./ or trailing /; an absolute folder inside
    the library is made relative; '' or '.' means the whole library (None)."""
    if folder is None or not str(folder).strip():
        return None
    text = str(folder).strip().replace("\\", "/")
    if text.startswith("/"):
        if not library:
            raise UsageError(f"--folder {folder}: an absolute folder needs the library it is in; give it relative "
                             "to the library (e.g. 2024/trip)")
        try:
            text = Path(text).resolve().relative_to(Path(library).resolve()).as_posix()
        except ValueError:
            raise UsageError(f"--folder {folder}: not inside the library {library}; give a folder inside it, "
                             "absolute or relative to it (e.g. 2024/trip)") from None
    parts = [p for p in PurePosixPath(text).parts if p not in (".", "/")]
    if ".." in parts:
        raise UsageError(f"--folder {folder}: '..' leaves the library; give a folder inside it (e.g. 2024/trip)")
    return "/".join(parts) or None


def parse_types(types) -> tuple[str, ...]:
    """'jpeg,png' or ['jpg', 'HEIC'] -> ('jpeg', 'heif', ...) in Pillow's names; an unknown one is refused."""
    if types is None:
        return ()
    items = types.split(",") if isinstance(types, str) else list(types)
    out = []
    for item in items:
        name = str(item).strip().lower().lstrip(".")
        if not name:
            continue
        name = ALIASES.get(name, name)
        if name not in SUFFIXES:
            raise UsageError(f"--type {item!r}: not a file type the index holds; use a comma list of "
                             f"{', '.join(FORMATS)} (jpg, heic and tif are read as jpeg, heif and tiff; mp4, mov, "
                            "webm and mkv as video)")
        if name not in out:
            out.append(name)
    return tuple(out)


def _pixels(value, flag: str) -> int | None:
    if value in (None, "", 0):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 1 or number != int(number) or number > 1_000_000:
        raise UsageError(f"{flag} {value!r}: give a whole number of pixels (e.g. 1024)")
    return int(number)


@dataclass(frozen=True)
class Filters:
    """What a search is restricted to; every field None (or empty) means no restriction.

    ``taken_after`` is inclusive, ``taken_before`` exclusive (seconds since the epoch, UTC wall-clock);
    ``min_size`` is the shorter side in pixels; ``camera`` a case-insensitive substring of make or model;
    ``place`` a city, region or country name (English or Chinese, ``places.place_mask``); ``near`` (lat, lon, km).
    """

    folder: str | None = None
    taken_after: int | None = None
    taken_before: int | None = None
    camera: str | None = None
    types: tuple[str, ...] = ()
    min_size: int | None = None
    min_width: int | None = None
    min_height: int | None = None
    place: str | None = None
    near: tuple[float, float, float] | None = None

    @classmethod
    def parse(cls, folder=None, taken_after=None, taken_before=None, camera=None, types=None, min_size=None,
              min_width=None, min_height=None, place=None, near=None, library=None) -> "Filters":
        """From what a user typed (CLI flags, the web UI's fields, the API's arguments); refuses bad values with
        a message naming the flag."""
        after = _epoch(taken_after, "--taken-after") if taken_after not in (None, "") else None
        before = _epoch(taken_before, "--taken-before") if taken_before not in (None, "") else None
        if after is not None and before is not None and after >= before:
            raise UsageError(f"--taken-after {taken_after} is not before --taken-before {taken_before}: "
                             "nothing can match")
        camera = str(camera).strip() if camera is not None and str(camera).strip() else None
        if camera is not None and len(camera) > 200:
            raise UsageError("--camera: give a short part of the camera's make or model (e.g. canon, iphone 12)")
        return cls(normalise_folder(folder, library), after, before, camera, parse_types(types),
                   _pixels(min_size, "--min-size"), _pixels(min_width, "--min-width"),
                   _pixels(min_height, "--min-height"), parse_place(place), parse_near(near))

    @property
    def active(self) -> bool:
        return any(value not in (None, ()) for value in asdict(self).values())

    def to_json(self) -> dict:
        """The active filters, dates as text: what a result says it was restricted to."""
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v not in (None, ())}
        for key in ("taken_after", "taken_before"):
            if key in out:
                out[key] = _iso(out[key])
        if self.near:  # as the flag takes it: LAT,LON,KM
            out["near"] = ",".join(f"{v:g}" for v in self.near)
        return out

    def describe(self) -> str:
        parts = []
        if self.folder:
            parts.append(f"folder {self.folder}/")
        if self.taken_after is not None or self.taken_before is not None:
            parts.append(f"taken {_iso(self.taken_after) or '…'} to {_iso(self.taken_before) or '…'}")
        if self.camera:
            parts.append(f"camera ~ {self.camera!r}")
        if self.types:
            parts.append("type " + ",".join(self.types))
        for label, value in (("shorter side", self.min_size), ("width", self.min_width), ("height", self.min_height)):
            if value:
                parts.append(f"{label} >= {value} px")
        if self.place:
            parts.append(f"place {self.place}")
        if self.near:
            parts.append(f"within {self.near[2]:g} km of {self.near[0]:g},{self.near[1]:g}")
        return "; ".join(parts) or "no filter"


class Metadata:
    """The filterable columns of one images table at one version, in table order (= vector index ids)."""

    def __init__(self, table):
        import pyarrow as pa  # heavy: pyarrow

        self.table = table if isinstance(table, pa.Table) else pa.table(table)
        self.columns = set(self.table.column_names)
        self._ids: dict[str, int] | None = None
        self._place_names: PlaceNames | None = None

    @classmethod
    def read(cls, image_table) -> "Metadata":
        """The columns of ``image_table`` (a ``tables.ImageTable``) this table has, read by offset ranges."""
        import pyarrow as pa  # heavy: pyarrow

        present = set(image_table.table.schema.names)
        names = [c for c in (*BASE_COLUMNS, *FILTERED_METADATA) if c in present]
        batches = list(image_table.scan(names))
        if not batches:
            return cls(pa.table({n: pa.array([], image_table.table.schema.field(n).type) for n in names}))
        return cls(pa.Table.from_batches(batches).combine_chunks())

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str):
        column = self.table.column(name)
        return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)

    def has(self, name: str) -> bool:
        """The column exists and at least one row has it filled."""
        return name in self.columns and self.table.column(name).null_count < self.table.num_rows

    def ids(self) -> dict[str, int]:
        """path -> row (vector index id); built once, only for what needs it (caption hits, indexed terms)."""
        if self._ids is None:
            self._ids = {p: i for i, p in enumerate(self.column("path").to_pylist())}
        return self._ids

    def notes(self, filters: Filters) -> list[str]:
        """What the user should know about how ``filters`` were evaluated on this table."""
        notes = []
        if (filters.taken_after is not None or filters.taken_before is not None) and not self.has("taken_s"):
            notes.append("this index stores no capture dates yet: the date filter reads the files' modification "
                         "times (re-run `index` to store EXIF dates)")
        if filters.types and not self.has("format"):
            notes.append("this index stores no file formats yet: the type filter reads the file names' suffixes")
        if (filters.place or filters.near) and "lat" in self.columns and not np.isfinite(
                self.column("lat").to_numpy(zero_copy_only=False).astype(float)).any():
            notes.append("no photo in this index has a GPS position (EXIF): the place filters match none")
        elif filters.place and "place" in self.columns:
            unknown = self.place_names().unknown_note(filters.place)
            notes += [unknown] if unknown else []
        return notes

    def mask(self, filters: Filters) -> np.ndarray:
        """Boolean array, True for the rows ``filters`` keep, aligned with the table order."""
        import pyarrow as pa  # heavy: pyarrow
        import pyarrow.compute as pc

        n = self.table.num_rows
        keep = pa.array(np.ones(n, bool))
        path = self.column("path")
        if filters.folder:
            keep = pc.and_(keep, pc.starts_with(path, filters.folder + "/"))
        if filters.taken_after is not None or filters.taken_before is not None:
            taken = pc.divide(self.column("mtime_ns"), 1_000_000_000)  # integer division: whole seconds
            if "taken_s" in self.columns:
                taken = pc.coalesce(self.column("taken_s"), taken)
            if filters.taken_after is not None:
                keep = pc.and_(keep, pc.greater_equal(taken, filters.taken_after))
            if filters.taken_before is not None:
                keep = pc.and_(keep, pc.less(taken, filters.taken_before))
        if filters.camera:
            if not (self.has("camera_make") or self.has("camera_model")):
                raise UsageError("--camera needs the camera make and model, which this index does not store: "
                                 "re-run `index` on the library (it reads them from EXIF), then search again")
            found = pa.array(np.zeros(n, bool))
            for name in ("camera_make", "camera_model"):
                if name in self.columns:
                    found = pc.or_(found, pc.fill_null(pc.match_substring(self.column(name), filters.camera,
                                                                          ignore_case=True), False))
            keep = pc.and_(keep, found)
        if filters.types:
            suffixes = [s for t in filters.types for s in SUFFIXES[t]]
            by_suffix = pc.fill_null(pc.is_in(pc.utf8_lower(_suffix(path)), value_set=pa.array(suffixes)), False)
            if "format" in self.columns:
                fmt = pc.utf8_lower(self.column("format"))
                by_format = pc.is_in(fmt, value_set=pa.array(list(filters.types)))
                by_suffix = pc.if_else(pc.is_null(fmt), by_suffix, by_format)
            keep = pc.and_(keep, by_suffix)
        if filters.place or filters.near:
            keep = pc.and_(keep, pa.array(self._place_mask(filters)))
        width, height = self.column("width"), self.column("height")
        for column, bound in ((width, filters.min_width), (height, filters.min_height),
                              (width, filters.min_size), (height, filters.min_size)):
            if bound:
                keep = pc.and_(keep, pc.fill_null(pc.greater_equal(column, bound), False))
        return np.asarray(pc.fill_null(keep, False).to_numpy(zero_copy_only=False), dtype=bool)

    def place_names(self) -> PlaceNames:
        """The stored place names, encoded once for this table version (``places.PlaceNames``)."""
        if self._place_names is None:
            self._place_names = PlaceNames(*(self.column(n) for n in PLACE_COLUMNS))
        return self._place_names

    def _place_mask(self, filters: Filters) -> np.ndarray:
        """``--place`` and ``--near`` over the stored positions and place names (``places``)."""
        needed = (*POSITION_COLUMNS, *PLACE_COLUMNS)
        if any(name not in self.columns for name in needed):
            flag = "--place" if filters.place else "--near"
            raise UsageError(f"{flag} needs the photos' GPS positions, which this index does not store: re-run "
                             "`index` on the library (it reads them from EXIF), then search again")
        keep = np.ones(self.table.num_rows, bool)
        if filters.place:
            keep &= self.place_names().mask(filters.place)
        if filters.near:
            keep &= near_mask(self.column("lat"), self.column("lon"), filters.near)
        return keep


def _suffix(path):
    """'.jpg' of 'a/b.JPG' per row ('' when there is none; a video frame's key: its video's), as an arrow string
    array."""
    import pyarrow.compute as pc  # heavy: pyarrow

    return pc.struct_field(pc.extract_regex(path, r"(?P<suffix>\.[^./#]*)(?:#t=[0-9.]+)?$"), "suffix")


def keep_paths(metadata: Metadata, mask: np.ndarray | None, paths: list[str]) -> list[str]:
    """``paths`` (in their order) that are rows of ``metadata`` the ``mask`` keeps (None: every indexed one)."""
    ids = metadata.ids()
    return [p for p in paths if p in ids and (mask is None or mask[ids[p]])]
