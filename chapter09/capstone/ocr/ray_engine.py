"""``index --ocr --engine ray``: the text in the photos read by OCR actors on a Ray cluster, written here.

An engine of ``ocr_index.run_ocr``: it takes the records still to read and yields ``(record, lines, reason)`` as
the local reading does, so the plan, the reuse of moved files, the commits and ``stop_after`` stay in ``run_ocr``
(a Ray run is resumable and incremental exactly as a local one). Each actor holds its own reader (RapidOCR with
as many threads as Ray gave it CPUs; or the reader handed over, when it can be pickled: a test's ``FixedReader``),
reads each photo from the library (shared storage: every node must see it at the same path) and sends back only
the lines as JSON. Actors: ``--actors``, else one per CPU pair of the cluster (RapidOCR runs 2 threads well).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import ChapterError
from ..engines.ray_cluster import actor_count, ray_batches, start_ray, whole_pools_first
from ..index.video import row_image
from .reader import OcrLine, OcrReader

CPUS_PER_ACTOR = 2


class _OcrActor:
    def __init__(self, root: str, reader=None):
        import ray  # heavy: ray

        cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))
        self.root, self.reader = Path(root), reader if reader is not None else OcrReader(threads=cpus)

    def __call__(self, batch: dict) -> dict:
        lines, reasons = [], []
        for path in batch["path"]:
            try:
                found = self.reader.read(row_image(self.root, str(path)))
                lines.append(json.dumps([line.to_json() for line in found], ensure_ascii=False))
                reasons.append("")
            except (ChapterError, OSError) as error:  # said, as the local engine says it
                lines.append("[]")
                reasons.append(str(error))
        return {"path": batch["path"], "sha1": batch["sha1"], "lines": np.array(lines, dtype=object),
                "reason": np.array(reasons, dtype=object)}


def ray_readings(root: Path, records: list[dict], reader, engine):
    """(record, [OcrLine], reason) per record as the actors send them back; ``reader``: one to pickle to every
    actor (None: each builds RapidOCR's). ``engine``: ``options.EngineOptions``."""
    ray, started = start_ray(engine.ray_address)
    try:
        import ray.data  # heavy: ray

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        whole_pools_first(context)
        cpus = max(engine.cpus_per_actor, CPUS_PER_ACTOR if reader is None else 1)
        actors = actor_count(ray.cluster_resources(), engine.actors, 0.0, cpus, actor="OCR", work="read text",
                             reserved_cpus=0, reserved_for="", share=1.0)
        ds = ray.data.from_items([{"path": r["path"], "sha1": r["sha1"]} for r in records],
                                 override_num_blocks=max(1, min(len(records), 4 * actors)))
        ds = ds.map_batches(_OcrActor, batch_size=4, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
                            fn_constructor_kwargs={"root": str(root), "reader": reader}, num_cpus=cpus)
        for batch in ray_batches(ds, f"{actors} OCR actors"):
            for path, sha1, lines, reason in zip(batch["path"], batch["sha1"], batch["lines"], batch["reason"]):
                yield ({"path": str(path), "sha1": str(sha1)}, [OcrLine.from_json(x) for x in json.loads(lines)],
                       str(reason))
    finally:
        if started:
            ray.shutdown()
