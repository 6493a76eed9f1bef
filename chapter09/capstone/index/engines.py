"""The index's two engines, one pipeline: decode (``decode.decode_one``), encode (``encode_needed``, the one encode
step both engines run), write (``writer.RowWriter``, always in this process).

* ``run_local``: decoding and preprocessing in DataLoader worker processes (``engines.local``), encoding here.
* ``run_ray``: the file list is split into blocks; decoding and preprocessing run as Ray tasks, encoding in an
  actor pool (one model per actor, ``gpus_per_actor`` for CUDA clusters), and the rows stream back to this
  process, which writes them as the local engine would (one writer, holding the index's lock).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ...clip import ClipEncoder
from ...errors import SetupError
from ..engines.ray_cluster import (
    actor_count,
    ray_batches,
    start_ray,
    threads_from_ray,
    whole_pools_first,
    worker_location,
)
from ..options import EngineOptions
from ..store.database import EncoderIdentity
from .decode import (
    decode_file,
    decode_loader,
    items_as_columns,
    items_from_columns,
    normalisation_of,
    normalised,
    preprocessors_of,
)
from .plan import Plan
from .video import VideoSampling, unit_of
from .writer import RowWriter

RAY_BLOCK_FILES = 256  # files per Ray block: one decode task reads a block
ENCODE_CPU_SHARE = 0.75  # CPU-only Ray cluster: the encoding pool's share of its CPUs (the rest decodes)
DECODE_MEMORY = 512 << 20  # bytes a Ray decode task reserves beside its batch's pixels: the worker itself
# (Python, the image processors; Ray measured 370 MiB per decode worker on toy images) and one large photo


def encoder_identity(role: str, encoder) -> EncoderIdentity:
    """The identity under which ``encoder``'s vectors are stored: checkpoint location + precision (and whether
    ``--clip-model`` chose the checkpoint, so ``search`` reads queries with it: ``index_model``)."""
    chosen = role == "clip" and bool(getattr(encoder.settings, "clip_model", None))
    return EncoderIdentity(role, str(encoder.resolved.location), encoder.precision_id, int(encoder.dim),
                           chosen=chosen)


def encode_needed(encoders: dict, ok, roles, pixels_of) -> dict[str, np.ndarray]:
    """One batch's vectors, role -> (items, dim): each role's encoder runs once over the items that decoded
    (``ok[j]``) and whose table needs that role (``role in roles[j]``); the other rows stay zero (the writer
    skips them). ``pixels_of(role, chosen)``: those items' pixels as one float32 array."""
    import torch  # heavy: torch

    vectors = {}
    for role, encoder in encoders.items():
        chosen = [j for j in range(len(ok)) if ok[j] and role in roles[j]]
        out = np.zeros((len(ok), encoder.dim), np.float32)
        if chosen:
            out[chosen] = encoder.encode_pixels(torch.from_numpy(np.ascontiguousarray(pixels_of(role, chosen))))
        vectors[role] = out
    return vectors


# ----------------------------------------------------------------------------- local
def run_local(root: Path, plan: Plan, encoders: dict, writer: RowWriter, batch_size: int, workers: int | None,
              bar, sampling: VideoSampling | None = None) -> None:
    for items in decode_loader(root, plan.todo, encoders, batch_size, workers, sampling):
        vectors = encode_needed(encoders, [item["ok"] for item in items],
                                [plan.needs[unit_of(item["path"])] for item in items],
                                lambda role, chosen: np.stack([np.asarray(items[j]["pixels"][role]) for j in chosen]))
        writer.write(items, vectors)
        bar.update(len({unit_of(item["path"]) for item in items}))  # files, a video's frames counted once


# ----------------------------------------------------------------------------- ray
def encoder_specs(encoders: dict) -> dict:
    """What an actor needs to build the same encoders: role -> (Settings, a local checkpoint folder). The
    Settings decide the numeric format (``precision.numeric_format``) on the actor as they did here."""
    return {role: (enc.settings, enc.resolved.location if enc.resolved.source == "local-dir" else None)
            for role, enc in encoders.items()}


def decode_block(batch: dict, root: str, preprocessors: dict, min_side: int,
                 sampling: VideoSampling | None = None) -> dict:
    """Ray task: decode one block of files (a video: a row per sampled frame, its file's roles on each); pixel
    arrays are zeros for failures (columns must be rectangular)."""
    items, roles = [], []
    for path, needed in zip(batch["path"], batch["roles"]):
        decoded = decode_file(Path(root), str(path), preprocessors, min_side, uint8=True, sampling=sampling)
        items.extend(decoded)
        roles.extend([needed] * len(decoded))
    out = items_as_columns(items)
    out["roles"] = np.array(roles, dtype=object)
    out["decode_node"], out["decode_worker"] = worker_location(len(items))
    for role in preprocessors:
        first = next((np.asarray(item["pixels"][role]) for item in items if item["ok"]), np.zeros(0, np.uint8))
        stack = np.zeros((len(items), *first.shape), first.dtype)  # uint8: a quarter of float32's bytes
        for j, item in enumerate(items):
            if item["ok"]:
                stack[j] = item["pixels"][role]
        out[f"pixels_{role}"] = stack
    return out


class EncodeActor:
    """Ray actor: one copy of each encoder; pixel batches in, unit vectors out; torch threads = the CPUs Ray gave it."""

    def __init__(self, specs: dict, identities: dict, normalisations: dict, actors_per_node: int):
        self.threads = threads_from_ray(actors_per_node)
        self.normalisations = normalisations
        self.encoders = {}
        for role, (settings, local_dir) in specs.items():
            self.encoders[role] = ClipEncoder(role, settings, local_dir=local_dir)
            mine = encoder_identity(role, self.encoders[role])
            if mine != identities[role]:  # e.g. another checkpoint on this node: never mix vectors
                raise SetupError(f"the Ray worker's {role} model differs from the driver's: "
                                 f"{mine.describe()} vs {identities[role].describe()}")

    def __call__(self, batch: dict) -> dict:
        out = {key: value for key, value in batch.items() if not key.startswith("pixels_")}
        vectors = encode_needed(self.encoders, batch["ok"], [str(roles).split(",") for roles in batch["roles"]],
                                lambda role, chosen: normalised(batch[f"pixels_{role}"][chosen],
                                                                self.normalisations[role]))
        out.update({f"vector_{role}": values for role, values in vectors.items()})
        out["encode_node"], out["encode_worker"] = worker_location(len(batch["path"]))
        out["encode_threads"] = np.full(len(batch["path"]), self.threads)
        return out


def encoding_pool(resources: dict, actors: int | None, gpus_per_actor: float, cpus_per_actor: float) -> tuple:
    """(min, max) actors of the encoding pool on a cluster with ``resources`` (``ray.cluster_resources()``).

    With ``gpus_per_actor``: one actor per ``gpus_per_actor`` GPUs (or ``actors``). On CPUs: ``actors``, else
    as many as ``ENCODE_CPU_SHARE`` of the cluster's CPUs hold; either way at least one CPU is left to the
    decode tasks. A fixed pool: every actor loads its model at the start, in parallel.
    """
    size = actor_count(resources, actors, gpus_per_actor, cpus_per_actor, actor="encoding", work="encode",
                       reserved_cpus=0 if gpus_per_actor else 1, reserved_for="decoding", share=ENCODE_CPU_SHARE)
    return size, size


def run_ray(root: Path, plan: Plan, encoders: dict, writer: RowWriter, batch_size: int, bar,
            engine: EngineOptions, sampling: VideoSampling | None = None) -> None:
    actors, gpus_per_actor, cpus_per_actor = engine.actors, engine.gpus_per_actor, engine.cpus_per_actor
    t = time.time()
    ray, started = start_ray(engine.ray_address)
    writer.summary.startup_s = round(time.time() - t, 2)
    try:
        import ray.data  # heavy: ray

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        whole_pools_first(context)
        preprocessors, min_side = preprocessors_of(encoders)
        per_block = min(RAY_BLOCK_FILES, max(batch_size, len(plan.todo) // 16))  # >= 16 blocks to pipeline
        blocks = max(1, -(-len(plan.todo) // per_block))
        resources = ray.cluster_resources()
        smallest, largest = encoding_pool(resources, actors, gpus_per_actor, cpus_per_actor)
        nodes = sum(1 for node in ray.nodes() if node["Alive"])
        ds = ray.data.from_items([{"path": p, "roles": ",".join(plan.needs[p])} for p in plan.todo],
                                 override_num_blocks=blocks)
        # Decoding stays an operator of its own, never fused into the encoding actors (where it would no
        # longer overlap with encoding): Ray Data fuses a task map into an actor map only when their remote
        # args agree, and each decode task reserves the memory it holds (its worker and decoded batch).
        pixels = batch_size * sum(3 * enc.image_side ** 2 for enc in encoders.values())  # uint8 (decode_block)
        ds = ds.map_batches(decode_block, batch_size=batch_size, batch_format="numpy", num_cpus=1,
                            memory=pixels + DECODE_MEMORY,
                            fn_kwargs={"root": str(root), "preprocessors": preprocessors, "min_side": min_side,
                                       "sampling": sampling})
        ds = ds.map_batches(EncodeActor, batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(min_size=smallest, max_size=largest),
                            fn_constructor_kwargs={"specs": encoder_specs(encoders),
                                                   "identities": {r: encoder_identity(r, e) for r, e in encoders.items()},
                                                   "normalisations": {r: normalisation_of(pre)
                                                                      for r, pre in preprocessors.items()},
                                                   "actors_per_node": -(-largest // max(1, nodes))},
                            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None)
        seen = {"decode_node": set(), "decode_worker": set(), "encode_node": set(), "encode_worker": set()}
        gpus = f", {gpus_per_actor:g} GPUs" if gpus_per_actor else ""
        batches = ray_batches(ds, f"{smallest} encoding actors ({cpus_per_actor:g} CPUs{gpus} each)")
        write_s = wait_s = 0.0
        threads = 0
        while True:
            t = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            wait_s += time.perf_counter() - t
            t = time.perf_counter()
            items = items_from_columns(batch)
            writer.write(items, {role: batch[f"vector_{role}"] for role in encoders})
            write_s += time.perf_counter() - t  # the one writer's own time (rows, commits), apart from waiting
            for key, values in seen.items():
                values.update(str(v) for v in batch[key])
            threads = max(threads, int(np.max(batch["encode_threads"], initial=0)))
            writer.summary.ray = {
                "nodes": nodes, "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0),
                "pool": [smallest, largest], "cpus_per_actor": cpus_per_actor, "gpus_per_actor": gpus_per_actor,
                "actors_per_node": -(-largest // max(1, nodes)), "threads_per_actor": threads, "pixels": "uint8",
                "actors": len(seen["encode_worker"]), "actor_nodes": len(seen["encode_node"]),
                "decode_workers": len(seen["decode_worker"]), "decode_nodes": len(seen["decode_node"]),
                "decoded_inside_actors": len(seen["decode_worker"] & seen["encode_worker"]),
                "write_s": round(write_s, 3), "wait_s": round(wait_s, 3)}
            bar.update(len({unit_of(item["path"]) for item in items}))
    finally:
        if started:
            ray.shutdown()

