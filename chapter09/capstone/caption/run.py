"""``caption --index``: caption every indexed image that lacks a caption, resumably, as fast as the CPU allows.

Moved out of ``indexer.py`` so captioning (its own models, precisions and engines) can grow apart from
the image index's encoding; a caption row is tied to the indexed file's sha1.

A run is four steps, so a second engine can supply the middle two:

1. **plan** (``plan_captions``): the indexed images lacking a caption in one of the languages asked;
2. **decode** and 3. **generate** (an *engine*): ``local_engine`` decodes and preprocesses in DataLoader worker
   processes (the same fork-server workers as ``index``), overlapping the captioner's batched ``generate`` and the
   translator's batched ``translate`` in this process; it yields ``CaptionBatch`` objects. Another engine (a Ray
   one, ``caption_ray.caption_batches``) takes the same arguments and yields the same batches;
4. **write**: rows go into the store, committed before the next batch could push the time since the last commit
   past ``commit_s`` (20 s), so ``kill -9`` loses at most that much work and the next run goes on from there.

``precision="auto"`` first captions a few library images (``AUTO_SAMPLE``) at fp32 and at each precision the CPU
runs fast, keeps the fastest whose greedy captions pass ``caption_fidelity.CAPTION_BAR``, and stores the sample's
captions at the precision picked (they are library images: none is captioned twice). The verdict is kept beside a
local index (``captions-precision.json``) for the same captioner, precision set and CPU, and not measured again.
The decision is ``library_precision.pick_caption_precision``'s: one module decides the precision of images and
of captions.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ...errors import UsageError
from ..engines import ENGINES
from ..engines.local import default_workers, worker_batches
from ..options import CaptionOptions
from ..precision.library import pick_caption_precision
from ..store.database import Store
from .batch import CaptionBatch, CaptionDecoded, caption_decoded
from .ray_engine import caption_batches

AUTO_SAMPLE = 8  # images captioned at fp32 and each candidate precision by --precision auto


@dataclass
class CaptionSummary:
    index: str
    langs: list[str]
    route: str = ""
    total: int = 0
    captioned: int = 0
    already: int = 0
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    captioner: str = ""
    precision: str = ""
    precision_reason: str = ""
    engine: str = "local"
    images_per_s: float = 0.0  # captioned images over the seconds from the first batch on (model loading left out)
    generate_s: float = 0.0  # seconds in the captioner's generate
    translate_s: float = 0.0  # seconds in the translator
    commits: int = 0
    max_commit_gap_s: float = 0.0
    ray: dict = field(default_factory=dict)  # engine ray: the cluster and where captioning ran (caption_ray.py)

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def text(self) -> str:
        lines = [f"captions ({', '.join(self.langs)}; route {self.route}; captioner {self.captioner} at "
                 f"{self.precision or '-'}) in {self.index}: {self.captioned} images captioned now, {self.already} "
                 f"already had them, {len(self.failed)} failed, of {self.total} ({self.seconds:.1f} s"
                 + (f", {self.images_per_s:.2f} images/s" if self.captioned else "") + ")"]
        if self.precision_reason:
            lines.append(f"  precision: {self.precision_reason}")
        if self.ray.get("captioners"):
            r = self.ray
            lines.append(f"  ray: {r['nodes']} nodes ({r['cpus']:g} CPUs, {r['gpus']:g} GPUs), started in "
                         f"{r['startup_s']:.1f} s; {r['captioners']} captioner actors (on {r.get('caption_nodes', 0)} "
                         f"nodes), {r['translators']} translator actors")
        lines += [f"  FAILED {f['path']}: {f['reason']}" for f in self.failed]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- 1. plan
def plan_captions(store: Store, langs: list[str]) -> tuple[list[dict], int]:
    """(records lacking a caption in one of ``langs`` or captioned from other bytes, total indexed)."""
    records = store.images(store.roles[0]).records(("path", "sha1"))
    have = store.captions(with_sha1=True)
    todo = [r for r in records if have.get(r["path"], {}).get("sha1") != r["sha1"]
            or any(lang not in have.get(r["path"], {}) for lang in langs)]
    return todo, len(records)


# ----------------------------------------------------------------------------- 2 + 3. the local engine
def decoded_batches(root: Path, records: list[dict], captioner, batch_size: int, workers: int | None):
    """Batches of decoded items, as ``index`` decodes, in ``workers`` processes (None: ``decode_workers_for``)."""
    dataset = CaptionDecoded(root, records, captioner.image_processor, captioner.image_side)
    workers = decode_workers_for(len(records), batch_size) if workers is None else workers
    return worker_batches(dataset, batch_size, workers, {"captioner": captioner.image_processor})


def decode_workers_for(images: int, batch_size: int) -> int:
    """The decode workers ``caption --index`` starts for ``images``: only on the cores the captioner's threads leave,
    and only for a run long enough (``engines.local.default_workers``); 0: decoded here between batches."""
    import torch  # heavy: torch (the captioner has it loaded)

    return default_workers(images, batch_size, model_threads=torch.get_num_threads())


def local_engine(root: Path, records: list[dict], captioner, settings, options: CaptionOptions,
                 where: dict | None = None) -> Iterator[CaptionBatch]:
    """Decode in workers, caption and translate here in batches; one ``CaptionBatch`` per batch. (``where``:
    the Ray engine's report of where it ran; nothing to say here.)"""
    for items in decoded_batches(root, records, captioner, options.batch_size, options.workers):
        yield caption_decoded(items, captioner, list(options.langs), settings, options.generation or {})


def engine_for(name: str) -> Callable[..., Iterator[CaptionBatch]]:
    """The engine function for ``--engine``; every engine takes ``local_engine``'s arguments. (``--engine`` itself is
    checked by ``EngineOptions``.)"""
    if name == "local":
        return local_engine
    if name == "ray":  # a missing Ray is reported by start_ray, with the install command
        return caption_batches
    raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {name!r}")  # unreachable via EngineOptions


# ----------------------------------------------------------------------------- the run
def caption_index(index_dir, langs=None, settings=None, options: CaptionOptions | None = None, *, model=None,
                  **option_values) -> CaptionSummary:
    """Caption every indexed image that lacks a caption in one of ``langs`` (resumable: done ones are skipped).

    ``options`` (``CaptionOptions``), or ``langs`` and the same as keywords (``batch_size=4, engine="ray"``).
    A caption is tied to the bytes it describes (sha1): re-indexing a changed file drops its old captions, and
    the next ``caption --index`` writes new ones. ``model``: a ready ``Captioner`` (the bench's random-weight
    architectures) instead of ``options.captioner``/``options.precision``.
    """
    if options is None:
        options = CaptionOptions.of(**({} if langs is None else {"langs": langs}), **option_values)
    elif langs is not None or option_values:
        raise TypeError("give caption_index options, or langs and keywords, not both")
    started = time.time()
    langs, progress = list(options.langs), options.progress
    engine_for(options.engine.engine)  # a missing engine module is said before the index is opened
    summary = CaptionSummary(str(index_dir), langs, engine=options.engine.engine)
    log = (lambda message: print(message, file=sys.stderr, flush=True)) if progress else None
    with Store.open(index_dir, write=True, wait_s=options.wait_s) as store:
        if not store.roles:
            raise FileNotFoundError(f"index {index_dir} holds no images yet; run `index` first")
        todo, summary.total = plan_captions(store, langs)
        summary.already = summary.total - len(todo)
        if not todo:
            summary.route = "none needed"
            summary.seconds = round(time.time() - started, 2)
            return summary
        kept = []
        if model is None:
            sample = todo[:: max(1, len(todo) // AUTO_SAMPLE)][:AUTO_SAMPLE] if len(todo) > AUTO_SAMPLE else todo
            model, summary.precision_reason, kept = pick_caption_precision(
                index_dir, store, sample, langs, settings, options.captioner, options.precision, log)
        summary.captioner, summary.precision = model.name, model.precision
        summary.route = "direct" if model.bilingual else "caption+translate"
        if kept:
            store.put_captions(kept)
            done_paths = {row["path"] for row in kept}
            todo = [r for r in todo if r["path"] not in done_paths]
            summary.captioned += len(kept)
        first_batch = time.time()
        _caption_and_write(store, todo, model, settings, options, summary)
        summary.images_per_s = round(len(todo) / max(time.time() - first_batch, 1e-9), 3) if todo else 0.0
        store.finish()
    summary.generate_s, summary.translate_s = round(summary.generate_s, 2), round(summary.translate_s, 2)
    summary.seconds = round(time.time() - started, 2)
    return summary


def _caption_and_write(store: Store, todo: list[dict], model, settings, options: CaptionOptions,
                       summary: CaptionSummary) -> None:
    """``todo`` captioned on the engine asked for, the captions written as batches come back: committed before
    waiting for one more batch could take the time since the last commit past ``options.commit_s``, so a killed
    run loses at most that much; ``options.stop_after`` stops (as an interrupted run) once that many are done."""
    # the bar starts once the models are loaded, and tqdm's average over the whole bar (smoothing=0) gives the
    # time left: an honest estimate for batches that all cost about the same
    bar = tqdm(total=len(todo), unit="img", disable=not options.progress or not todo, file=sys.stderr,
               desc="captioning", smoothing=0)
    pending, last_commit, slowest_batch = [], time.time(), 0.0

    def commit():
        nonlocal pending, last_commit
        store.put_captions(pending)
        summary.commits += 1
        summary.max_commit_gap_s = round(max(summary.max_commit_gap_s, time.time() - last_commit), 2)
        pending, last_commit = [], time.time()

    try:
        batch_started = time.time()
        # the Ray engine (caption_ray.py) says where it ran
        for batch in engine_for(options.engine.engine)(Path(store.library), todo, model, settings, options,
                                                       summary.ray):
            pending += [{"path": record["path"], "sha1": record["sha1"], **caps} for record, caps in batch.done]
            summary.failed += batch.failed
            summary.captioned += len(batch.done)
            summary.generate_s += batch.generate_s
            summary.translate_s += batch.translate_s
            bar.update(len(batch.done) + len(batch.failed))
            now = time.time()
            slowest_batch, batch_started = max(slowest_batch, now - batch_started), now
            stopping = options.stop_after is not None and summary.captioned >= options.stop_after
            # commit now if waiting for one more batch could take the gap past commit_s
            if pending and (now - last_commit + slowest_batch > options.commit_s or stopping):
                commit()
            if stopping:
                raise KeyboardInterrupt(f"stopped after {summary.captioned} images (stop_after)")
    finally:
        bar.close()
        if pending:
            commit()
