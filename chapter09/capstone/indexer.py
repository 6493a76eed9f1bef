"""Bring an index up to date with a library: incremental, resumable, honest about failures, local or on Ray.

The index is a LanceDB database (``store.py``). A run compares the library on disk with the
index: files whose size and modification time match their row are ``unchanged``; changed files
are re-encoded (``updated``), new ones encoded (``added``), vanished ones dropped (``removed``).
A file that failed to decode is recorded with the reason and not retried until it changes;
non-image files are ``skipped``. Rows are committed every ``commit_rows`` rows or
``checkpoint_s`` seconds, so a run killed at any moment (even ``kill -9``) keeps everything up
to the last commit and the next run continues from there, never duplicating a row.

This module is the run's order of steps; each step is a module of ``index/``: the walk and excludes
(``walk``), the plan and the reuse of moved files (``plan``), the writer (``writer``), decoding (``decode``),
the engines (``engines``: ``local`` or ``ray``, one encode step), the summary (``summary``). The options are
``options.IndexOptions`` (and ``EngineOptions``), checked where they are made.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from .index.decode import decode_one
from .index.engines import encoder_identity, run_local, run_ray
from .index.plan import apply_reuse, fill_metadata, plan_run
from .index.summary import IndexSummary
from .index.walk import is_excluded
from .index.writer import RowWriter, write_sample_rows
from .ocr_index import carry_moved, ocr_table, run_ocr
from .options import IndexOptions
from .store import Store, ann_for, is_uri
from .vectors import ANN_THRESHOLD

__all__ = ["build_index", "decode_one", "IndexOptions", "IndexSummary"]  # decode_one: the per-file step, timed by tests


def build_index(library: str | Path, index_dir: str | Path, encoders: dict, options: IndexOptions | None = None,
                *, log=None, precomputed: dict | None = None, ocr_reader=None, **option_values) -> IndexSummary:
    """Bring ``index_dir`` up to date with ``library``; ``encoders``: role -> ClipEncoder.

    ``options`` (``IndexOptions``), or the same as keywords (``batch_size=8, workers=0, engine="ray"``).
    ``precomputed``: rows already encoded by these encoders (the precision check's sample, ``write_sample_rows``),
    written as they are. Indexed rows the exclude patterns now match are removed. Files whose bytes the index
    holds (moved, renamed, copied, touched) take the held vectors and captions instead of being encoded
    (``index.plan.recognise``). ``options.ocr``: then the text in the photos is read (``ocr_index.run_ocr``) by
    ``ocr_reader`` (default: this process's RapidOCR reader).
    """
    if options is None:
        options = IndexOptions.of(**option_values)
    elif option_values:
        raise TypeError("give build_index options or keywords, not both")
    if not encoders:
        raise ValueError("no encoders: pass at least {'clip': ClipEncoder}")
    log = log or (lambda message: print(f"[index] {message}", file=sys.stderr))
    started = time.time()
    root = Path(library).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"library {root} is not a folder")
    summary = IndexSummary(str(root), str(index_dir), options.engine.engine, excludes=list(options.patterns))
    with Store.open(index_dir, library=root, write=True, wait_s=options.wait_s,
                    commit_rows=options.commit_rows) as store:
        tables = _open_tables(store, encoders, summary, log)
        failures = store.failures()
        plan = plan_run(root, tables, failures, summary, None if is_uri(index_dir) else Path(index_dir),
                        options.patterns)
        apply_reuse(root, store, tables, plan, failures, summary)  # before the deletes: a moved row is never lost
        carry_moved(store, plan.reuse)  # the text read in a moved photo moves with it
        for role, paths in plan.removed.items():
            tables[role].delete(paths)
        store.drop_captions(set().union(*plan.removed.values()))
        ocr_table(store).delete(set().union(*plan.removed.values()))  # an ocr pass re-points moved files' rows
        gone = [p for p in failures if not (root / p).is_file() or is_excluded(p, options.patterns)]
        store.drop_failures(gone)
        if options.fill_metadata:
            fill_metadata(root, store, tables, plan, summary)
        writer = RowWriter(store, tables, plan, summary, options.checkpoint_s, options.stop_after, failures)
        reused = write_sample_rows(root, plan, precomputed, encoders, writer) if precomputed else 0
        if reused:
            summary.notes.append(f"{reused} images' vectors kept from the precision check (not encoded again)")
        encode_s = _encode(root, plan, encoders, writer, options)
        writer.commit()
        if options.ocr:
            summary.ocr = _read_text(root, store, ocr_reader, options)
        if plan.todo or reused or any(plan.removed.values()) or gone or plan.reuse or summary.metadata_filled \
                or store.written:
            store.finish()  # compaction + old versions deleted: the index stays the size of a fresh one
        if options.build_ann:
            _build_ann(store, tables, summary, log)
        summary.total = len(tables[next(iter(tables))])
    summary.seconds = round(time.time() - started, 2)
    summary.images_per_s = round((writer.encoded - reused) / max(encode_s, 1e-9), 1) if plan.todo else 0.0
    return summary


def _open_tables(store: Store, encoders: dict, summary: IndexSummary, log) -> dict:
    """role -> the images table of that encoder's identity (another model or precision: its own table, said)."""
    identities = {role: encoder_identity(role, enc) for role, enc in encoders.items()}
    for identity in identities.values():
        note = store.switch_note(identity)
        if note:
            log(note)
            summary.notes.append(note)
    return {role: store.images(identity) for role, identity in identities.items()}


def _encode(root: Path, plan, encoders: dict, writer: RowWriter, options: IndexOptions) -> float:
    """Decode and encode ``plan.todo`` on the engine asked for, the rows written as they come; the seconds it took."""
    from tqdm import tqdm

    engine = options.engine
    bar = tqdm(total=len(plan.todo), unit="img", disable=not options.progress or not plan.todo, file=sys.stderr,
               desc=f"indexing ({engine.engine})")
    started = time.time()
    try:
        if plan.todo and engine.engine == "local":
            run_local(root, plan, encoders, writer, options.batch_size, options.workers, bar)
        elif plan.todo:
            run_ray(root, plan, encoders, writer, options.batch_size, bar, engine)
    finally:
        bar.close()
    return time.time() - started


def _read_text(root: Path, store: Store, reader, options: IndexOptions) -> dict:
    """``--ocr``: the text of the photos that lack it, read on the engine that indexed them (``reader`` None:
    RapidOCR, here or in each Ray actor)."""
    return run_ocr(store, root, reader, commit_s=options.checkpoint_s, progress=options.progress,
                   engine=options.engine).to_json()


def _build_ann(store: Store, tables: dict, summary: IndexSummary, log) -> None:
    """The IVF index of every table large enough for ``search`` to use one, unless one is cached for it."""
    for role, table in tables.items():
        if len(table) >= ANN_THRESHOLD and ann_for(store, table, build=False) is None:
            log(f"{role}: building the ANN index over {len(table)} rows")
            t = time.time()
            ann = ann_for(store, table)
            summary.ann[role] = {"nprobe": ann.nprobe, "recall_at_10": ann.recall_at_10,
                                 "build_s": round(time.time() - t, 1)}
