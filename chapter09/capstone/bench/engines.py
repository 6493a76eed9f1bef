"""The indexer's engines side by side: ``index --engine local`` and ``--engine ray`` on the same photos and checkpoint,
and Ray on a cluster of 1, 2 and 3 worker nodes (``ray.cluster_utils.Cluster``) with the one writer's own rate.

Run alone: ``python -m chapter09.capstone.bench.engines --photos 576 --precision fp32`` (``bench`` runs it after the
encoding part, on its own photos). Starting a Ray of its own took 11.7 s here: 11 % of a 576-photo run, 21 % of a 192-photo one.
The cluster's nodes are processes on this machine: they share its cores, so more nodes measure Ray's overhead
and contention here, not the scaling of a real cluster, where each node brings its own CPUs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import numpy as np

from ... import cpu
from ..index.build import build_index
from ..index.plan import Plan
from ..index.summary import IndexSummary
from ..index.writer import RowWriter
from ..store.database import Store
from ..store.tables import EncoderIdentity
from .synthetic import load_encoder, make_photos, vit_b32_folder

CLUSTER_NODES = (1, 2, 3)  # worker nodes per cluster row; the head runs nothing (0 CPUs), as in the tests
CPUS_PER_NODE = 2  # the CPUs each worker node declares to Ray (one encoding actor per 1.33 of them, the rest decode)


def _row(summary, wall: float) -> dict:
    row = {"img_s": summary.images_per_s, "wall_s": round(wall, 2), "wall_img_s": round(summary.added / wall, 2),
           "startup_s": summary.startup_s}
    if summary.ray:
        r = summary.ray
        row.update(actors=r["actors"], actor_nodes=r["actor_nodes"], decode_nodes=r["decode_nodes"],
                   write_s=r["write_s"], wait_s=r["wait_s"],
                   # the one writer's own limit: rows per second of its own time (rows, commits), waits apart
                   writer_rows_s=round(summary.added / max(r["write_s"], 1e-9), 1))
    return row


START_TIMED_OUT = "timed out during startup"  # Ray's words when a new node missed its 30 s to register


def _descendants() -> set[int]:
    """This process's descendants (Linux /proc; empty elsewhere)."""
    parents = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        parents[int(status.parent.name)] = int(ppid.split()[1])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def local_cluster(nodes: int = 2, cpus: int = 2, attempts: int = 2, log=print):
    """A multi-node Ray cluster on this machine, as Ray tests itself (``ray.cluster_utils.Cluster``): a head that
    runs nothing (0 CPUs) and ``nodes`` worker nodes of ``cpus`` CPUs, every port picked free; returns
    (cluster, [worker nodes]) once all are registered, and the caller shuts it down.

    Ray gives each new node a fixed 30 s to register with the head (``ray/_private/node.py``); on a small machine
    busy with other work that is sometimes too short, so a start that timed out is retried from scratch (up to
    ``attempts`` in all); any other error, or the last time-out, is raised as it is.
    """
    from ray.cluster_utils import Cluster  # heavy: ray

    for attempt in range(1, attempts + 1):
        cluster, before = Cluster(), _descendants()
        try:
            cluster.add_node(num_cpus=0, include_dashboard=False)  # the first node added is the head
            workers = [cluster.add_node(num_cpus=cpus) for _ in range(nodes)]
            cluster.wait_for_nodes()
            return cluster, workers
        except Exception as error:
            cluster.shutdown()
            # a node that timed out is not in the cluster, so shutdown() leaves its processes (GCS, raylet,
            # agents) running, loading the machine for the next attempt: they go here
            for pid in _descendants() - before:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if START_TIMED_OUT not in str(error) or attempt == attempts:
                raise
            log(f"  a Ray node timed out during start-up (attempt {attempt} of {attempts}); starting the cluster again")
    raise AssertionError("unreachable")


def _on_cluster(library, index, encoder, batch_size: int, nodes: int, cpus_per_node: int, log=print) -> dict:
    t = time.perf_counter()
    head, _ = local_cluster(nodes, cpus_per_node, log=log)
    try:
        cluster_s = time.perf_counter() - t
        t = time.perf_counter()
        summary = build_index(library, index, {"clip": encoder}, batch_size=batch_size, progress=False,
                              engine="ray", ray_address=head.address, build_ann=False)
        wall = time.perf_counter() - t
    finally:
        head.shutdown()
    return {"nodes": nodes, "cpus_per_node": cpus_per_node, "cluster_start_s": round(cluster_s, 1),
            **_row(summary, wall)}


WRITER_ROWS = 20_000  # rows the writer-limit measurement commits (enough for several of the store's own commits)
WRITER_BATCH = 32  # rows per write, as a Ray batch arrives


def writer_limit(folder, rows: int = WRITER_ROWS, dim: int = 512, batch: int = WRITER_BATCH, seed: int = 0) -> dict:
    """The one writer's own ceiling: rows/s that ``index``'s writer (``index.writer.RowWriter``, the same code both
    engines hand their batches to) turns into committed LanceDB rows, metadata and the final commit and
    compaction included, fed batches of ``batch`` ready rows (random unit vectors) as fast as it takes them.
    A Ray run's ``write_s`` counts only its own batches' writes; this is the rate a whole cluster's
    throughput cannot pass with one writer."""
    import lancedb  # noqa: F401  (imported before the clock starts: a run has it loaded already)

    rng = np.random.default_rng(seed)
    paths = [f"album-{i // 1000:04d}/photo-{i:07d}.jpg" for i in range(rows)]
    plan = Plan(todo=paths, needs={p: ["clip"] for p in paths}, updated=set(), removed={})
    folder = Path(folder)
    t = time.perf_counter()
    with Store.open(folder / "writer-index", library=folder, write=True) as store:
        table = store.images(EncoderIdentity("clip", "bench/writer-limit", "fp32", dim))
        summary = IndexSummary(str(folder), str(folder / "writer-index"))
        writer = RowWriter(store, {"clip": table}, plan, summary, checkpoint_s=20.0, stop_after=None, known_failures={})
        for start in range(0, rows, batch):
            chunk = paths[start:start + batch]
            vectors = rng.standard_normal((len(chunk), dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            items = [{"path": p, "ok": True, "reason": "", "width": 1600, "height": 1200, "size": 400_000 + i,
                      "mtime_ns": 1_700_000_000_000_000_000 + i, "sha1": f"{start + i:040x}", "taken_s": 0,
                      "taken_from": "", "camera_make": "", "camera_model": "", "format": "JPEG"}
                     for i, p in enumerate(chunk)]
            writer.write(items, {"clip": vectors})
        writer.commit()
        store.finish()
        written = len(table)
    seconds = time.perf_counter() - t
    return {"rows": written, "dim": dim, "batch": batch, "seconds": round(seconds, 2),
            "rows_s": round(written / max(seconds, 1e-9))}


def format_engines(out: dict) -> str:
    local = out["local"]["img_s"]
    lines = [f"  {'engine':<28} {'nodes x CPUs':>12} {'actors':>6} {'img/s':>7} {'x local':>7} {'run s':>6} "
             f"{'join s':>6} | writer {'write s':>7} {'wait s':>6} {'rows/s':>8}",
             f"  {'--engine local':<28} {'-':>12} {'-':>6} {local:7.2f} {1:7.2f} {out['local']['wall_s']:6.1f} "
             f"{'-':>6} |        {'-':>7} {'-':>6} {'-':>8}"]
    rows = [("--engine ray, its own Ray", f"1 x {out['cpu_count']}", out["ray"])]
    rows += [(f"--engine ray, {r['nodes']}-node Cluster", f"{r['nodes']} x {r['cpus_per_node']}", r)
             for r in out.get("cluster", [])]
    for name, shape, r in rows:
        lines.append(f"  {name:<28} {shape:>12} {r['actors']:>6} {r['img_s']:7.2f} {r['img_s'] / max(local, 1e-9):7.2f} "
                     f"{r['wall_s']:6.1f} {r['startup_s']:6.1f} |        {r['write_s']:7.2f} {r['wait_s']:6.1f} "
                     f"{r['writer_rows_s']:8.0f}")
    lines.append(f"  ({out['images']} photos, {out['precision']}, batch {out['batch_size']}; img/s from the first decode "
                 f"to the last row, a Ray run's joining included; 'run s' the whole build_index call; the Cluster's "
                 f"nodes share this machine's {out['cpu_count']} cores, so its rows measure overhead, not scaling; "
                 f"writer rows/s: rows over the writer's own time in that run)")
    if out.get("writer"):
        w = out["writer"]
        lines.append(f"  the one writer's ceiling: {w['rows_s']:,} rows/s ({w['rows']:,} rows of {w['dim']} floats in "
                     f"writes of {w['batch']}, commits and compaction included, {w['seconds']} s): a cluster's "
                     f"throughput passes through this one process")
    return "\n".join(lines)


def engines_report(library, model_folder, precision: str = "bf16", work=None, batch_size: int = 32, log=print,
                   cluster_nodes=CLUSTER_NODES, cpus_per_node: int = CPUS_PER_NODE,
                   writer_rows: int = WRITER_ROWS) -> dict:
    """Images/s of ``index --engine local`` and ``--engine ray`` on the same photos and checkpoint.

    Each engine indexes the photos into a fresh index; ``img_s`` counts from the first decode to
    the last row (for Ray: starting a local Ray on this machine's cores, or joining the cluster, the actors
    loading their model, then decode tasks + the encoding actors); ``wall_s`` is the whole ``build_index`` call.
    Then, for each of ``cluster_nodes``, the same on a ``ray.cluster_utils.Cluster`` of that many worker nodes
    of ``cpus_per_node`` CPUs (its start-up timed apart, as ``cluster_start_s``). Ray rows carry the writer's
    time writing (``write_s``) and waiting for the next batch (``wait_s``); ``writer`` is the writer's own
    ceiling on ``writer_rows`` ready rows (``writer_limit``; 0 skips it).
    """
    work = Path(work or tempfile.mkdtemp(prefix="ch09-bench-engines-"))
    encoder = load_encoder(Path(model_folder), precision)
    out = {"precision": precision, "batch_size": batch_size, "cpu_count": os.cpu_count()}
    for engine in ("local", "ray"):
        t = time.perf_counter()
        summary = build_index(library, work / f"index-{engine}", {"clip": encoder}, batch_size=batch_size,
                              progress=False, engine=engine, build_ann=False)
        wall = time.perf_counter() - t
        out["images"] = summary.added
        out[engine] = _row(summary, wall)
        log(f"  --engine {engine:<5} {summary.images_per_s:7.2f} img/s ({summary.added} photos, whole run "
            f"{wall:.1f} s" + (f", of which starting Ray {summary.startup_s} s" if engine == "ray" else "") + ")")
    out["ray_over_local"] = round(out["ray"]["img_s"] / max(out["local"]["img_s"], 1e-9), 3)
    out["cluster"] = []
    for nodes in cluster_nodes:
        row = _on_cluster(library, work / f"index-cluster-{nodes}", encoder, batch_size, nodes, cpus_per_node, log)
        row["over_local"] = round(row["img_s"] / max(out["local"]["img_s"], 1e-9), 3)
        out["cluster"].append(row)
        log(f"  --engine ray on a {nodes}-node Cluster ({cpus_per_node} CPUs each, {row['actors']} actors) "
            f"{row['img_s']:7.2f} img/s (whole run {row['wall_s']} s; cluster started in {row['cluster_start_s']} s)")
    if writer_rows:
        out["writer"] = writer_limit(work, writer_rows)
        log(f"  the writer alone: {out['writer']['rows_s']:,} rows/s committed ({writer_rows:,} rows)")
    log(format_engines(out))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.capstone.bench.engines", description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=96, help="photo-sized JPEGs to index (default 96)")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "int8"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--nodes", default=",".join(map(str, CLUSTER_NODES)),
                        help="comma list of Cluster sizes in worker nodes ('' for none)")
    parser.add_argument("--cpus-per-node", type=int, default=CPUS_PER_NODE)
    parser.add_argument("--writer-rows", type=int, default=WRITER_ROWS,
                        help=f"rows for the writer's own ceiling (default {WRITER_ROWS:,}; 0 skips it)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    print(f"bench.engines on {cpu.describe()}; load average {[round(x, 2) for x in os.getloadavg()]}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="ch09-bench-engines-"))
    try:
        make_photos(tmp / "photos", args.photos)
        folder, _ = vit_b32_folder(tmp / "vit-b-32")
        out = engines_report(tmp / "photos", folder, args.precision, tmp / "work", args.batch_size,
                             log=lambda m="": print(m, flush=True),
                             cluster_nodes=tuple(int(n) for n in args.nodes.split(",") if n),
                             cpus_per_node=args.cpus_per_node, writer_rows=args.writer_rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.update(cpu=cpu.describe(), load_after=[round(x, 2) for x in os.getloadavg()])
    print(f"load average after {out['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
