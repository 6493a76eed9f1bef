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

The precision the images are encoded at is decided here for every caller (``decide_precision``: measured, kept or
as asked, by ``library_precision``) and recorded in the index's sidecar: ``index`` decides before it builds (or
watches); ``build_index`` from Python decides when given ``settings`` and a ``precision`` instead of encoders, and
records the precision of the encoders it is given otherwise.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ...clip import clip_encoder
from ...models import Settings, resolve
from ..engines.local import MIN_BATCHES_FOR_WORKERS, prestart_decode_workers
from ..errors import file_system_error
from ..ocr.run import carry_moved, ocr_table, run_ocr
from ..options import IndexOptions
from ..precision.library import index_precision, read_sidecar, write_sidecar
from ..store.database import Store, ann_for, is_uri
from ..store.vectors import ANN_THRESHOLD
from .decode import DecodedFiles, decode_one
from .engines import encoder_identity, run_local, run_ray
from .places import fill_places
from .plan import apply_reuse, fill_metadata, plan_run
from .summary import IndexSummary
from .walk import is_excluded, more_files_than
from .writer import RowWriter, write_sample_rows

__all__ = ["build_index", "decide_precision", "decode_one", "IndexOptions", "IndexSummary"]  # decode_one: timed


@dataclass(frozen=True)
class PrecisionDecision:
    """What ``decide_precision`` decided: the ``encoders`` (role -> ClipEncoder) at that precision, the JSON-ready
    ``report`` (the precision, why, and the fidelity when measured: what ``index`` prints), and ``sample_rows``,
    the sample's vectors the measurement already encoded (``build_index(precomputed=...)``), or None."""

    encoders: dict
    report: dict
    sample_rows: dict | None = None


def prestart_decode_workers_for(library, index_dir, settings: Settings, roles, options: IndexOptions) -> bool:
    """Start the local engine's decode workers (their fork server) before the models load and the precision check
    runs, when this run will need them: a new index (everything in the library is to be encoded) of a library
    larger than the pool's threshold (``engines.local.default_workers``), or ``--workers`` asked for. Their
    start-up then overlaps the check instead of following it. True when started."""
    if options.engine.engine != "local" or options.workers == 0 or is_uri(str(index_dir)) or Path(index_dir).exists():
        return False
    if options.workers is None and not more_files_than(Path(library), MIN_BATCHES_FOR_WORKERS * options.batch_size):
        return False
    from transformers import AutoImageProcessor  # heavy: transformers (the models' load imports it anyway)

    try:
        preprocessors = {role: AutoImageProcessor.from_pretrained(resolve(role, settings).location) for role in roles}
    except Exception:  # noqa: BLE001 -- only a head start: the models' own load right after reports any problem
        return False
    return prestart_decode_workers(preprocessors, DecodedFiles.__module__)


def decide_precision(library, index_dir, settings: Settings | None = None, roles=("clip",),
                     precision: str | None = None, log=None) -> PrecisionDecision:
    """The precision ``index_dir``'s images are encoded at, decided and recorded in its sidecar
    (``library_precision.index_precision``: ``precision`` auto, fp32, bf16 or int8; None: auto, or the
    ``settings``' dtype when it names one), and the encoders built at it."""
    roles = list(roles)
    try:  # it records the precision in the index folder: a full or read-only disk shows here first
        settings, report = index_precision(precision, settings or Settings(), library, index_dir, roles, log=log)
    except OSError as error:
        raise file_system_error(index_dir, error, "recording the precision") from None
    sample_rows = report.pop("sample_rows", None)
    encoders = {role: clip_encoder(role, settings) for role in roles}
    report.update(precision=encoders[roles[0]].precision, identity=encoders[roles[0]].precision_id)
    return PrecisionDecision(encoders, report, sample_rows)


def build_index(library: str | Path, index_dir: str | Path, encoders: dict | None = None,
                options: IndexOptions | None = None, *, settings: Settings | None = None, roles=("clip",),
                precision: str | None = None, log=None, precomputed: dict | None = None, ocr_reader=None,
                **option_values) -> IndexSummary:
    """Bring ``index_dir`` up to date with ``library``; ``encoders``: role -> ClipEncoder, or None with
    ``settings``, ``roles`` and ``precision`` (auto, fp32, bf16, int8): decided here (``decide_precision``: the
    summary's ``precision`` says what and why). Either way the precision is recorded in the index's sidecar.

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
    if encoders is not None and (settings is not None or precision is not None):
        raise TypeError("give build_index encoders, or settings and a precision to build them at, not both")
    if encoders is None and precomputed is not None:
        raise TypeError("precomputed rows are the given encoders' vectors: give the encoders too")
    told = log  # the precision check's lines carry their own "[index]"
    log = log or (lambda message: print(f"[index] {message}", file=sys.stderr))
    root = Path(library).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"library {root} is not a folder")
    decision = None
    if encoders is None:
        decision = decide_precision(root, index_dir, settings, roles, precision, log=told)
        encoders, precomputed = decision.encoders, decision.sample_rows
    if not encoders:
        raise ValueError("no encoders: pass at least {'clip': ClipEncoder}")
    summary = _build(root, index_dir, encoders, options, log, precomputed, ocr_reader)
    summary.precision = decision.report if decision is not None else None
    return summary


def _build(root: Path, index_dir, encoders: dict, options: IndexOptions, log, precomputed,
           ocr_reader=None) -> IndexSummary:
    started = time.time()
    summary = IndexSummary(str(root), str(index_dir), options.engine.engine, excludes=list(options.patterns))
    with Store.open(index_dir, library=root, write=True, wait_s=options.wait_s,
                    commit_rows=options.commit_rows) as store:
        _record_precision(index_dir, encoders)  # under the writer's lock
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
        fill_places(store, tables, summary)  # after every row is written: one lookup for the whole run
        if options.ocr:
            summary.ocr = _read_text(root, store, ocr_reader, options)
        if plan.todo or reused or any(plan.removed.values()) or gone or plan.reuse or summary.metadata_filled \
                or summary.placed or store.written:
            store.finish()  # compaction + old versions deleted: the index stays the size of a fresh one
        if options.build_ann:
            _build_ann(store, tables, summary, log)
        summary.total = len(tables[next(iter(tables))])
    summary.seconds = round(time.time() - started, 2)
    summary.images_per_s = round((writer.encoded - reused) / max(encode_s, 1e-9), 1) if plan.todo else 0.0
    return summary


def _record_precision(index_dir, encoders: dict) -> None:
    """Record the precision of the ``encoders`` given in the index's sidecar, unless it records that precision for
    these models already (``decide_precision`` recorded it, with its measurements: kept)."""
    first = next(iter(encoders.values()))
    locations = {role: encoder.resolved.location for role, encoder in encoders.items()}
    recorded = read_sidecar(index_dir)
    if recorded.get("precision") == first.precision and recorded.get("locations") == locations:
        return
    try:
        write_sidecar(index_dir, {"precision": first.precision, "locations": locations, "runtime": first.runtime,
                                  "measured": False, "reason": f"{first.precision}: the precision of the encoders "
                                                               "build_index was given (nothing measured)"})
    except OSError as error:
        raise file_system_error(index_dir, error, "recording the precision") from None


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
    engine = options.engine
    bar = tqdm(total=len(plan.todo), unit="img", disable=not options.progress or not plan.todo, file=sys.stderr,
               desc=f"indexing ({engine.engine})")
    started = time.time()
    try:
        if plan.todo and engine.engine == "local":
            run_local(root, plan, encoders, writer, options.batch_size, options.workers, bar, options.video)
        elif plan.todo:
            run_ray(root, plan, encoders, writer, options.batch_size, bar, engine, options.video)
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
