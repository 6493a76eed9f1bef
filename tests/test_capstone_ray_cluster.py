"""A worker node lost in the middle of `index --engine ray`: no row lost, none duplicated (slower tier).

Ray's own ``ray.cluster_utils.Cluster`` on this machine: a head that runs nothing and two 2-CPU worker
nodes; one worker is removed (its raylet and every worker process on it killed) once the first rows
are back. Ray retries the lost decode tasks and restarts a lost encoding actor on the node that is
left, so the run completes; if it stops instead, the next run must finish the rest. Either way the
index ends equal to the local engine's, each image once. Run alone with
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
    from chapter09.capstone.store import Store

    paths, vectors = Store.open(index).images("clip").vectors()
    return list(paths), vectors.astype(np.float32)


def test_a_worker_node_lost_mid_run_loses_and_duplicates_no_row(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    import chapter09.capstone.indexer as indexer
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    write_dataset(tmp_path / "lib", n=64, seed=99, split="heldout")
    encoders = {"clip": clip_encoder("clip", Settings("toy", precision="fp32"))}
    indexer.build_index(tmp_path / "lib", tmp_path / "local", encoders, batch_size=8, workers=0, progress=False)

    head = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        doomed = head.add_node(num_cpus=2)
        head.add_node(num_cpus=2)
        head.wait_for_nodes()
        write, removal, after = indexer._Writer.write, [], []

        def write_then_lose_a_node(self, items, vectors):
            write(self, items, vectors)
            if removal and not removal[0].is_alive():
                after.append(len(items))  # rows that came back once the node was gone
            if not removal:  # after the first rows are back, in the middle of the run
                removal.append(threading.Thread(target=head.remove_node, args=(doomed,)))
                removal[0].start()

        monkeypatch.setattr(indexer._Writer, "write", write_then_lose_a_node)
        outcome = "completed"
        try:
            summary = indexer.build_index(tmp_path / "lib", tmp_path / "ray", encoders, batch_size=4, progress=False,
                                          engine="ray", ray_address=head.address, actors=1, checkpoint_s=0.5)
        except Exception as error:  # the other allowed outcome: a clear stop, then a rerun
            outcome = f"stopped: {type(error).__name__}: {error}"
        removal[0].join()
        assert outcome != "completed" or sum(after) > 0, "the node went only after the run had ended"
        assert not ray.is_initialized()  # it joined the cluster for the run only
        monkeypatch.setattr(indexer._Writer, "write", write)
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
