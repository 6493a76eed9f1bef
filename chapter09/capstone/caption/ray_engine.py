"""``caption --index --engine ray``: captioner (and translator) actors on a Ray cluster, one writer here.

Captioning costs far more per image than encoding it (a generate loop per language against one forward
pass), so this is where a cluster pays most. ``caption_batches`` is an engine of ``caption_index`` (it takes
``local_engine``'s arguments and yields the same ``CaptionBatch`` objects): the plan, the precision, the commits
and ``stop_after`` stay in ``caption_index``, so a Ray run is resumable and incremental exactly as a local one.
The records still to caption are split into blocks of whole batches; a captioner actor (the driver's captioner:
the same checkpoint, name and precision) reads each photo from the library (shared storage: every node must see
it at the same path), checks it against its indexed bytes, preprocesses and captions it with the local engine's
own functions, and sends back only the captions. On the ``caption+translate`` route (an English captioner) the
English captions go on to translator actors for Chinese, so the two models scale apart. The captions stream
back to the ``caption`` process, which alone writes them into the index, holding its lock.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...captioning import CAPTION_PRECISIONS, Captioner
from ...errors import SetupError, UsageError
from ...models import resolve
from ...translation import Translator
from ..engines.ray_cluster import (
    actor_count,
    ray_batches,
    start_ray,
    threads_from_ray,
    whole_pools_first,
    worker_location,
)
from ..options import CaptionOptions
from .batch import CaptionBatch, CaptionDecoded, caption_decoded

TRANSLATE_SHARE = 0.25  # caption+translate route: the translators' share of the cluster's CPUs (captioning is dearer)


def caption_pool(resources: dict, actors: int | None, translating: bool, gpus_per_actor: float = 0.0,
                 cpus_per_actor: float = 1.0) -> tuple[int, int]:
    """(captioner actors, translator actors) for a cluster with ``resources`` (``ray.cluster_resources()``).

    There is no separate decode stage (an actor reads its own photos: a decode is a few ms against a
    caption's hundreds), so the actors may take every CPU. On GPUs: one captioner per ``gpus_per_actor``;
    the translators then run on CPUs. ``actors`` fixes the captioners; translators get the rest.
    """
    cpus = resources.get("CPU", 0)
    captioners = actor_count(resources, actors, gpus_per_actor, cpus_per_actor, actor="captioner", work="caption",
                             reserved_cpus=cpus_per_actor if translating and not gpus_per_actor else 0,
                             reserved_for="a translator", share=1 - TRANSLATE_SHARE if translating else 1.0)
    if not translating:
        return captioners, 0
    if gpus_per_actor:  # the captioners hold the GPUs; the translators run on a share of the CPUs
        return captioners, max(1, int(cpus * TRANSLATE_SHARE // cpus_per_actor))
    return captioners, max(1, int((cpus - captioners * cpus_per_actor) // cpus_per_actor))


def _captioner_spec(model) -> dict:
    """What an actor needs to build the driver's captioner: settings, checkpoint, name, precision."""
    if model.resolved is None:
        raise UsageError("caption --engine ray builds its captioner on every node from a checkpoint: a captioner "
                         "built in memory (parts=...) cannot be sent there; use --engine local")
    return {"settings": model.settings, "resolved": model.resolved, "name": model.name,
            "precision": model.precision if model.precision in CAPTION_PRECISIONS else None}


class _CaptionActor:
    """Ray actor: one captioner; a batch of records (path, sha1) in, captions out (English alone when a
    translator pool makes the Chinese)."""

    def __init__(self, spec: dict, identity: str, bilingual: bool, root: str, langs: list[str], generation: dict):
        threads_from_ray()
        self.model = Captioner(spec["settings"], resolved=spec["resolved"], name=spec["name"],
                               precision=spec["precision"])
        if self.model.identity != identity or self.model.bilingual != bilingual:  # never mix two models' captions
            raise SetupError(f"the Ray worker's captioner is {self.model.identity} (bilingual {self.model.bilingual}), "
                             f"the driver's {identity} (bilingual {bilingual}): every node needs the same model files")
        self.settings, self.root, self.generation = spec["settings"], root, generation
        self.langs = langs if bilingual else ["en"]  # an English captioner writes English; translators the rest

    def __call__(self, batch: dict) -> dict:
        records = [{"path": str(p), "sha1": str(h)} for p, h in zip(batch["path"], batch["sha1"])]
        decoded = CaptionDecoded(Path(self.root), records, self.model.image_processor, self.model.image_side)
        result = caption_decoded([decoded[i] for i in range(len(records))], self.model, self.langs, self.settings,
                                 self.generation)
        n, reasons = len(records), {f["path"]: f["reason"] for f in result.failed}
        captions = {record["path"]: caps for record, caps in result.done}
        out = {"path": batch["path"], "sha1": batch["sha1"],
               "reason": np.array([reasons.get(r["path"], "") for r in records], dtype=object),
               "generate_s": np.full(n, result.generate_s / n), "translate_s": np.zeros(n)}
        for lang in ("en", "zh"):
            out[f"caption_{lang}"] = np.array([captions.get(r["path"], {}).get(lang, "") for r in records],
                                              dtype=object)
        out["caption_node"], out["caption_worker"] = worker_location(n)
        return out


class _TranslateActor:
    """Ray actor: one en->zh translator; fills ``caption_zh`` from ``caption_en`` for the rows captioned."""

    def __init__(self, settings, resolved):
        threads_from_ray()
        self.model = Translator("en_zh", settings, resolved=resolved)

    def __call__(self, batch: dict) -> dict:
        ok = [j for j, reason in enumerate(batch["reason"]) if not reason]
        zh = np.array([""] * len(batch["path"]), dtype=object)
        started = time.perf_counter()
        if ok:  # one call per batch, as the local engine translates
            zh[ok] = self.model.translate([str(batch["caption_en"][j]) for j in ok], batch_size=len(ok))
        spent = time.perf_counter() - started
        return {**batch, "caption_zh": zh, "translate_s": np.full(len(zh), spent / max(1, len(zh)))}


def caption_batches(root, records: list[dict], captioner, settings, options: CaptionOptions,
                    where: dict | None = None):
    """The Ray engine of ``caption_index``: ``CaptionBatch`` objects as batches come back from the actors.

    ``options.workers`` is the local engine's (decode processes) and unused here: the actors read their own
    photos. ``where``, when given, is filled with the cluster and where captioning ran (``caption --json``'s
    ``ray``).
    """
    langs, batch_size, engine = list(options.langs), options.batch_size, options.engine
    actors, gpus_per_actor, cpus_per_actor = engine.actors, engine.gpus_per_actor, engine.cpus_per_actor
    where = {} if where is None else where
    t = time.time()
    ray, started = start_ray(engine.ray_address)
    where["startup_s"] = round(time.time() - t, 2)
    try:
        import ray.data  # heavy: ray

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        whole_pools_first(context)
        translating = not captioner.bilingual and "zh" in langs
        resources = ray.cluster_resources()
        captioners, translators = caption_pool(resources, actors, translating, gpus_per_actor, cpus_per_actor)
        # blocks of whole batches (the local engine's batches, so the same images share a generate call), enough
        # of them to keep every actor busy
        per_block = batch_size * max(1, min(8, len(records) // (batch_size * 4 * captioners)))
        ds = ray.data.from_items([{"path": r["path"], "sha1": r["sha1"]} for r in records],
                                 override_num_blocks=max(1, -(-len(records) // per_block)))
        ds = ds.map_batches(_CaptionActor, batch_size=batch_size, batch_format="numpy",
                            # one block at a time per actor: a block costs seconds of generate, and a second one
                            # queued on one actor would wait while another is free
                            compute=ray.data.ActorPoolStrategy(size=captioners, max_tasks_in_flight_per_actor=1),
                            fn_constructor_kwargs={"spec": _captioner_spec(captioner), "identity": captioner.identity,
                                                   "bilingual": captioner.bilingual, "root": str(root),
                                                   "langs": langs, "generation": dict(options.generation or {})},
                            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
        if translating:
            ds = ds.map_batches(_TranslateActor, batch_size=batch_size, batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(size=translators),
                                fn_constructor_kwargs={"settings": settings,
                                                       "resolved": resolve("translator_en_zh", settings)},
                                num_cpus=cpus_per_actor)
        nodes, workers_seen = set(), set()
        where.update({"nodes": sum(1 for node in ray.nodes() if node["Alive"]), "cpus": resources.get("CPU", 0),
                      "gpus": resources.get("GPU", 0), "captioners": captioners, "translators": translators})
        pools = f"{captioners} captioner" + (f" and {translators} translator" if translating else "") + " actors"
        for batch in ray_batches(ds, pools):
            out = CaptionBatch([], [], float(batch["generate_s"].sum()), float(batch["translate_s"].sum()))
            for j in range(len(batch["path"])):
                path, reason = str(batch["path"][j]), str(batch["reason"][j])
                if reason:
                    out.failed.append({"path": path, "reason": reason})
                else:
                    out.done.append(({"path": path, "sha1": str(batch["sha1"][j])},
                                     {lang: str(batch[f"caption_{lang}"][j]) for lang in langs}))
            nodes.update(str(v) for v in batch["caption_node"])
            workers_seen.update(str(v) for v in batch["caption_worker"])
            where.update({"captioner_actors_seen": len(workers_seen), "caption_nodes": len(nodes)})
            yield out
    finally:
        if started:
            ray.shutdown()
