"""The Ray engine's cluster side, shared by indexing and captioning: joining or starting Ray, sizing an actor pool
by the rules every pool here follows, starting every actor before the first batch, streaming batches back, and
naming the node and worker that ran a batch."""
from __future__ import annotations

import os

import numpy as np

from ...errors import SetupError, UsageError

ACTOR_START_S = 600  # how long a pool's actors may take to start (an autoscaler adding nodes) before
# the run stops with what to do


def start_ray(address: str | None = None, num_cpus: int | None = None):
    """Join ``address`` (or $RAY_ADDRESS), else start a local Ray; returns (ray, started_here)."""
    try:
        import ray  # heavy: ray
    except ImportError as error:
        raise SetupError("--engine ray needs Ray: pip install -r requirements-scale.txt") from error
    if ray.is_initialized():
        return ray, False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:  # "local": a Ray of its own, never one that `ray start` or a test cluster left on this machine
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, **kwargs)
    return ray, True


def whole_pools_first(context) -> None:
    """Every actor of a (fixed) pool is up before the first batch goes out: otherwise the first actor to load its
    model takes every batch of a short run while the others still start (seen: 1 encoding actor of 2 taking all 3
    batches of a 20-image run); once all are up, a batch goes to the actor on the node that decoded it."""
    context.wait_for_min_actors_s = ACTOR_START_S


def ray_batches(ds, pool: str):
    """``ds``'s batches as its blocks come back (numpy); a pool that could not start in time says what to do."""
    import ray  # heavy: ray

    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.GetTimeoutError as error:
        raise SetupError(f"the Ray cluster did not start {pool} in {ACTOR_START_S} s: pass fewer --actors, add "
                         f"nodes, or see what the cluster lacks with `ray status`") from error


def actor_count(resources: dict, actors: int | None, gpus_per_actor: float, cpus_per_actor: float, *,
                actor: str, work: str, reserved_cpus: float, reserved_for: str, share: float) -> int:
    """How many ``actor`` actors (e.g. "encoding") a Ray cluster with ``resources`` runs, by the rules every
    pool here shares: on GPUs one per ``gpus_per_actor`` (or ``actors``); on CPUs ``actors``, else ``share`` of
    the CPUs, never touching the ``reserved_cpus`` kept for ``reserved_for`` (decoding, a translator); a
    cluster too small, or ``actors`` too many, is refused with what to do. ``work``: the verb, for messages."""
    if gpus_per_actor:
        gpus = resources.get("GPU", 0)
        if gpus < gpus_per_actor:
            raise SetupError(f"--gpus-per-actor {gpus_per_actor:g}, but the Ray cluster has {gpus:g} GPUs: "
                             f"add GPU nodes, or drop --gpus-per-actor to {work} on CPUs")
        return actors or max(1, int(gpus // gpus_per_actor))
    cpus = resources.get("CPU", 0)
    most = int((cpus - reserved_cpus) // cpus_per_actor)
    article = "an" if actor[0] in "aeiou" else "a"
    if most < 1:
        raise SetupError(f"the Ray cluster has {cpus:g} CPUs: {article} {actor} actor needs {cpus_per_actor:g}"
                         + (f" and {reserved_for} one more" if reserved_cpus else "")
                         + "; add nodes, join another cluster with --ray-address, or use --engine local")
    if actors and actors > most:
        raise UsageError(f"--actors {actors}: the Ray cluster's {cpus:g} CPUs hold at most {most} {actor} actors "
                         f"of {cpus_per_actor:g} CPUs" + (f" beside {reserved_for}" if reserved_cpus else "")
                         + f"; pass --actors {most} or fewer, or add nodes")
    return actors or max(1, min(most, int(cpus * share // cpus_per_actor)))


def worker_location(n: int) -> tuple:
    """Columns naming the Ray node and worker process that ran this batch (the summaries count them)."""
    import ray  # heavy: ray

    context = ray.get_runtime_context()
    return np.array([context.get_node_id()] * n, dtype=object), np.array([context.get_worker_id()] * n, dtype=object)


def actor_threads(assigned_cpus: float, node_cpus: float, actors_on_node: int | None) -> int:
    """torch threads for one actor: its share of its node's CPUs when the pool's size per node is known (an actor
    reserves one CPU so decode tasks can be scheduled beside it, but on a small node those tasks and the encoder
    then share the cores, as the local engine's decode workers and encoder do), else the CPUs Ray assigned it."""
    if not actors_on_node:
        return max(1, int(assigned_cpus))
    return max(1, int(assigned_cpus), int(node_cpus // actors_on_node))


def threads_from_ray(actors_on_node: int | None = None) -> int:
    """Set this actor's torch threads (``actor_threads``) and return the count."""
    import ray  # heavy: ray, torch
    import torch

    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    node_cpus = next((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["NodeID"] == node_id), 0)
    threads = actor_threads(context.get_assigned_resources().get("CPU", 1), node_cpus, actors_on_node)
    torch.set_num_threads(threads)
    return threads
