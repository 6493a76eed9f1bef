"""A worker node lost, or the driver killed, in the middle of `index --engine ray`: no row lost, none duplicated
(slower tier).

Ray's own ``ray.cluster_utils.Cluster`` on this machine: a head that runs nothing and two 2-CPU worker
nodes; one worker is removed (its raylet and every worker process on it killed) once the first rows
are back. Ray retries the lost decode tasks and restarts a lost encoding actor on the node that is
left, so the run completes; if it stops instead, the next run must finish the rest. Either way the
index ends equal to the local engine's, each image once. The driver (the process holding the index's lock and
writing) is SIGKILLed after its first commits; the next run resumes from them. Run alone with
``python -m pytest -m slow tests/test_capstone_ray_cluster.py``.
"""
import threading

import numpy as np
import pytest

from chapter09.models import Settings

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _rows(index):
    from chapter09.capstone.store.database import Store

    paths, vectors = Store.open(index).images("clip").vectors()
    return list(paths), vectors.astype(np.float32)


def test_a_worker_node_lost_mid_run_loses_and_duplicates_no_row(tmp_path, monkeypatch):
    import chapter09.capstone.index.build as indexer
    from chapter09.capstone.bench.engines import local_cluster
    from chapter09.capstone.index.writer import RowWriter
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    write_dataset(tmp_path / "lib", n=64, seed=99, split="heldout")
    encoders = {"clip": clip_encoder("clip", Settings("toy", precision="fp32"))}
    indexer.build_index(tmp_path / "lib", tmp_path / "local", encoders, batch_size=8, workers=0, progress=False)

    head, (doomed, _) = local_cluster(nodes=2, cpus=2)
    try:
        write, removal, after = RowWriter.write, [], []

        def write_then_lose_a_node(self, items, vectors):
            write(self, items, vectors)
            if removal and not removal[0].is_alive():
                after.append(len(items))  # rows that came back once the node was gone
            if not removal:  # after the first rows are back, in the middle of the run
                removal.append(threading.Thread(target=head.remove_node, args=(doomed,)))
                removal[0].start()

        monkeypatch.setattr(RowWriter, "write", write_then_lose_a_node)
        outcome = "completed"
        try:
            summary = indexer.build_index(tmp_path / "lib", tmp_path / "ray", encoders, batch_size=4, progress=False,
                                          engine="ray", ray_address=head.address, actors=1, checkpoint_s=0.5)
        except Exception as error:  # the other allowed outcome: a clear stop, then a rerun
            outcome = f"stopped: {type(error).__name__}: {error}"
        removal[0].join()
        assert outcome != "completed" or sum(after) > 0, "the node went only after the run had ended"
        assert not ray.is_initialized()  # it joined the cluster for the run only
        monkeypatch.setattr(RowWriter, "write", write)
        if outcome != "completed":
            summary = indexer.build_index(tmp_path / "lib", tmp_path / "ray", encoders, batch_size=4, progress=False,
                                          engine="ray", ray_address=head.address, actors=1)
        print(outcome, summary.added, summary.unchanged)
    finally:
        head.shutdown()

    local_paths, local_vectors = _rows(tmp_path / "local")
    ray_paths, ray_vectors = _rows(tmp_path / "ray")
    assert len(ray_paths) == len(set(ray_paths)) == 64, outcome  # each image once
    assert sorted(ray_paths) == sorted(local_paths), outcome
    order = {p: j for j, p in enumerate(ray_paths)}
    b = ray_vectors[[order[p] for p in local_paths]]
    assert np.abs(local_vectors - b).max() <= 0.03


# The `index --engine ray` driver in a process of its own: the CLI, with every written batch committed at once and
# announced ("committed N"), and a pause after it, so that a SIGKILL lands in the middle of the run.
DRIVER = """
import sys, time
from chapter09.capstone.index.writer import RowWriter
from chapter09.capstone.__main__ import main

write = RowWriter.write

def write_commit_announce(self, items, vectors):
    write(self, items, vectors)
    self.commit()
    print("committed", self.encoded, file=sys.__stdout__, flush=True)  # the CLI sends its own prints to stderr
    time.sleep(0.5)

RowWriter.write = write_commit_announce
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_ray_driver_resumes_from_its_last_commit(tmp_path):
    """SIGKILL to the process holding the index's lock and writing, on a two-node cluster, after its first
    commits: the lock goes with it (a kernel ``flock``), the next run finishes the rest, each image once, and the
    index equals the local engine's."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from chapter09.capstone.bench.engines import local_cluster
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.store.database import Store
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    write_dataset(tmp_path / "lib", n=64, seed=98, split="heldout")
    encoders = {"clip": clip_encoder("clip", Settings("toy", precision="fp32"))}
    build_index(tmp_path / "lib", tmp_path / "local", encoders, batch_size=8, workers=0, progress=False)

    head, _ = local_cluster(nodes=2, cpus=2)
    try:
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        driver = subprocess.Popen(
            [sys.executable, "-c", DRIVER, "index", str(tmp_path / "lib"), "--index", str(tmp_path / "ray"),
             "--engine", "ray", "--ray-address", head.address, "--actors", "2", "--models", "toy",
             "--precision", "fp32", "--batch-size", "4", "--no-progress", "--json"],
            stdout=subprocess.PIPE, stderr=(tmp_path / "driver.err").open("w"), text=True, env=env)
        committed = 0
        deadline = time.time() + 600
        for line in driver.stdout:  # the kill comes after the third batch's commit, 12 of 64 images
            if line.startswith("committed"):
                committed = int(line.split()[1])
                if committed >= 12:
                    driver.send_signal(signal.SIGKILL)
                    break
            assert time.time() < deadline, "the driver wrote nothing in 10 minutes"
        code = driver.wait(60)
        assert code == -signal.SIGKILL, (code, (tmp_path / "driver.err").read_text()[-3000:])
        partial = Store.open(tmp_path / "ray").images("clip").vectors()[0]
        assert committed <= len(partial) < 64, (committed, len(partial))  # killed mid-run, commits kept

        summary = build_index(tmp_path / "lib", tmp_path / "ray", encoders, batch_size=4, progress=False,
                              engine="ray", ray_address=head.address, actors=2)
        print("killed after", committed, "committed;", len(partial), "on disk; rerun added", summary.added)
    finally:
        head.shutdown()
    assert (summary.unchanged, summary.added, summary.total) == (len(partial), 64 - len(partial), 64)
    assert not ray.is_initialized()
    local_paths, local_vectors = _rows(tmp_path / "local")
    ray_paths, ray_vectors = _rows(tmp_path / "ray")
    assert len(ray_paths) == len(set(ray_paths)) == 64  # each image once
    assert sorted(ray_paths) == sorted(local_paths)
    order = {p: j for j, p in enumerate(ray_paths)}
    assert np.abs(local_vectors - ray_vectors[[order[p] for p in local_paths]]).max() <= 0.03
    assert Store.open(tmp_path / "ray").failures() == Store.open(tmp_path / "local").failures() == {}
