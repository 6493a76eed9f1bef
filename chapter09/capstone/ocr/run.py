"""``index --ocr``: the text in every indexed photo, read once per file content, kept in the ``ocr`` table.

The pass runs after the images are indexed (same run, same write lock), so it sees the library as the index
now holds it:

1. **plan** (``plan_ocr``): indexed files whose bytes (sha1) the ``ocr`` table has not read with this reader;
   rows of paths the index no longer holds are dropped;
2. **reuse**: a planned file whose bytes were read under another path (moved, renamed, copied) takes that row's
   text and boxes, read again never;
3. **read** the rest one image at a time (RapidOCR runs its own threads; ``ocr.OcrReader``), rows committed at
   least every ``commit_s`` seconds, so a killed run loses at most that and the next run goes on from there
   (resumable, like ``caption --index``);
4. **index**: LanceDB full-text indexes over the text (``ocr_text``), built or updated before the lock is freed.

A row: ``path``, ``sha1``, ``reader`` (``rapidocr``, or a test's reader: another reader's rows are read again),
``text`` (the lines as read, one a line: what a hit shows), ``text_en`` and ``text_zh`` (the same as the English and
the Chinese full-text indexes read it, ``searchable``) and ``lines`` (JSON: text, box, score per line).
Engines: local (this process, one image at a time) or ``ray`` (OCR actors on the cluster, ``ocr_ray``).
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tqdm import tqdm

from ...chinese import to_simplified
from ...errors import ChapterError
from ..caption.text_search import CONFIG
from ..index.video import row_image
from ..store.tables import PathTable, quiet_lance
from .ray_engine import ray_readings
from .reader import ocr_reader

OCR_TABLE = "ocr"
OCR_COLUMNS = ("path", "sha1", "reader", "text", "text_en", "text_zh", "lines")
_LETTERS_DIGITS = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def searchable(text: str) -> str:
    """``text`` as the full-text indexes and the queries read it: Traditional Chinese in Simplified, and letters
    apart from digits (the recogniser often joins a receipt's item to its price: "Water69.29" is "water" "69.29")."""
    return _LETTERS_DIGITS.sub(" ", to_simplified(text or ""))


def ocr_schema():
    import pyarrow as pa  # heavy: pyarrow

    return pa.schema([(name, pa.string()) for name in OCR_COLUMNS])


def ocr_table(store) -> PathTable:
    return PathTable(store, OCR_TABLE, ocr_schema())


# ----------------------------------------------------------------------------- its full-text indexes (ocr_text searches)
COLUMNS = {"en": "text_en", "zh": "text_zh"}
INDEX_NAMES = {"en": "ocr_text_en", "zh": "ocr_text_zh"}
_DETAIL_NAMES = {"ngram_min_length": "min_ngram_length", "ngram_max_length": "max_ngram_length"}


def open_ocr_table(store):
    """The ocr LanceDB table, or None before any text was read in this index."""
    return store._open_table(OCR_TABLE)


def index_ok(table) -> bool:
    """Whether both full-text indexes exist over the right columns with our settings."""
    found = {i.name: i for i in table.list_indices()}
    for lang, name in INDEX_NAMES.items():
        index = found.get(name)
        details = (index.index_details or {}) if index is not None else {}
        if index is None or list(index.columns) != [COLUMNS[lang]] or \
                any(details.get(_DETAIL_NAMES.get(k, k)) != v for k, v in CONFIG[lang].items()):
            return False
    return True


def refresh_index(store) -> None:
    """Create the missing full-text indexes, fold new rows into them, compact (``store`` holds the write lock)."""
    table = open_ocr_table(store)
    if table is None or table.count_rows() == 0:
        return
    with store.writing("indexing the text read in photos"), quiet_lance():
        if not index_ok(table):
            for lang, column in COLUMNS.items():
                table.create_fts_index(column, replace=True, name=INDEX_NAMES[lang], **CONFIG[lang])
        table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)


@dataclass
class OcrSummary:
    reader: str = ""
    total: int = 0  # indexed images
    read: int = 0  # images read now
    reused: int = 0  # moved or copied files: an earlier reading of the same bytes kept
    already: int = 0  # read before, unchanged
    with_text: int = 0  # of the images read now: those where text was found
    removed: int = 0  # rows of paths no longer indexed
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0  # images read / seconds reading (model loading left out)
    commits: int = 0

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def text(self) -> str:
        line = (f"  ocr ({self.reader}): {self.read} images read now ({self.with_text} with text; "
                f"{self.images_per_s:.2f} images/s), {self.reused} reused from moved or copied files, "
                f"{self.already} already read, {len(self.failed)} failed, of {self.total} ({self.seconds:.1f} s)")
        return "\n".join([line] + [f"  OCR FAILED {f['path']}: {f['reason']}" for f in self.failed])


def ocr_rows(store, paths: list[str] | None = None) -> dict[str, dict]:
    """path -> the stored OCR row (every column) for ``paths``, or all rows."""
    return {row["path"]: row for row in ocr_table(store).rows(paths)}


def carry_moved(store, reuse: dict) -> int:
    """``index``'s moved, renamed, copied and touched files (``plan.reuse``: path -> (source, kind, sha1, ...)) take
    their source's reading of the same bytes, with or without ``--ocr`` (before the source's row is deleted);
    returns how many rows were carried."""
    moved = {path: (source, sha1) for path, (source, _, sha1, *_) in reuse.items() if source != path}
    if not moved or store._open_table(OCR_TABLE) is None:  # no text read in this index yet: nothing to carry
        return 0
    held = ocr_rows(store, sorted({source for source, _ in moved.values()}))
    carry = [{**held[source], "path": path} for path, (source, sha1) in moved.items()
             if source in held and held[source]["sha1"] == sha1]
    ocr_table(store).upsert(carry)
    if carry:
        refresh_index(store)  # folded in and compacted now, as after an OCR pass
    return len(carry)


def plan_ocr(records: list[dict], stored: dict[str, dict], reader_name: str) -> tuple[list[dict], list[str]]:
    """(records to read or reuse: their bytes lack a reading by ``reader_name``, stored paths no longer indexed)."""
    indexed = {r["path"] for r in records}
    todo = [r for r in records if (row := stored.get(r["path"])) is None or row["sha1"] != r["sha1"]
            or row["reader"] != reader_name]
    return todo, [path for path in stored if path not in indexed]


def row_of(record: dict, reader_name: str, lines) -> dict:
    text = "\n".join(line.text for line in lines)
    return {"path": record["path"], "sha1": record["sha1"], "reader": reader_name, "text": text,
            "text_en": searchable(text), "text_zh": searchable(text), "lines": json.dumps([line.to_json() for line in lines],
                                                                        ensure_ascii=False)}


def local_readings(root: Path, records: list[dict], reader):
    """(record, lines, reason) per record, read here one after another (reason: why it could not be read)."""
    for record in records:
        try:
            yield record, reader.read(row_image(root, record["path"])), ""
        except (ChapterError, OSError) as error:  # a file changed or broke since it was indexed: said, kept
            yield record, [], str(error)


def run_ocr(store, root: Path, reader, *, commit_s: float = 20.0, progress: bool = False,
            stop_after: int | None = None, engine=None) -> OcrSummary:
    """Read the text of every indexed image that lacks it (``store`` open for writing; ``root`` its library).
    ``engine`` (``options.EngineOptions``): ``ray`` reads on a Ray cluster (``reader`` None: RapidOCR there)."""
    started = time.time()
    summary = OcrSummary(reader=reader.name if reader is not None else "rapidocr")
    records = store.images(store.roles[0]).records(("path", "sha1"))
    table = ocr_table(store)
    stored = ocr_rows(store)
    todo, gone = plan_ocr(records, stored, summary.reader)
    summary.total, summary.already, summary.removed = len(records), len(records) - len(todo), len(gone)
    table.delete(gone)
    by_sha1 = {row["sha1"]: row for row in stored.values() if row["reader"] == summary.reader}
    pending = []
    for record in todo:  # moved, renamed, copied: the bytes were read already
        if record["sha1"] in by_sha1:
            pending.append({**by_sha1[record["sha1"]], "path": record["path"]})
    summary.reused = len(pending)
    table.upsert(pending)
    todo = [r for r in todo if r["sha1"] not in by_sha1]
    pending, last_commit = [], time.time()
    bar = tqdm(total=len(todo), unit="img", disable=not progress or not todo, file=sys.stderr, desc="reading text")
    if engine is not None and engine.engine == "ray" and todo:
        readings = ray_readings(root, todo, reader, engine)
    else:
        if reader is None:
            reader = ocr_reader()
        readings = local_readings(root, todo, reader)
    reading_from = time.perf_counter()  # images/s: from the first read on (model loading in the first one)
    try:
        for record, lines, reason in readings:
            bar.update(1)
            if reason:
                summary.failed.append({"path": record["path"], "reason": reason})
                continue
            pending.append(row_of(record, summary.reader, lines))
            summary.read += 1
            summary.with_text += bool(lines)
            stopping = stop_after is not None and summary.read >= stop_after
            if time.time() - last_commit > commit_s or stopping:
                table.upsert(pending)
                pending, last_commit, summary.commits = [], time.time(), summary.commits + 1
            if stopping:
                raise KeyboardInterrupt(f"stopped after reading {summary.read} images (stop_after)")
    finally:
        bar.close()
        if pending:
            table.upsert(pending)
            summary.commits += 1
    if summary.read or summary.reused or gone:
        refresh_index(store)
    reading = time.perf_counter() - reading_from
    summary.images_per_s = round(summary.read / max(reading, 1e-9), 3) if summary.read else 0.0
    summary.seconds = round(time.time() - started, 2)
    return summary
