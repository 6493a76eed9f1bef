"""`index --engine ray` on a multi-node Ray cluster (one machine) gives the index the local engine gives.

The cluster is Ray's own ``ray.cluster_utils.Cluster``: a head that runs nothing (0 CPUs) and two worker
nodes of 2 CPUs each, every port picked free (xdist workers each start their own); decoding and encoding
must both run on the two nodes, and the rows, failures, vectors and top results equal the local engine's.
"""
import json

import numpy as np
import pytest

from chapter09.models import Settings

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from chapter09.toyworld import write_dataset

    root = tmp_path_factory.mktemp("ray_library")
    write_dataset(root, n=36, seed=4242, split="heldout")
    data = (root / "images/heldout_4242_00001.png").read_bytes()
    (root / "images/truncated.png").write_bytes(data[: len(data) // 3])
    (root / "images/notes.jpg").write_text("a text file with an image name")
    return root


@pytest.fixture(scope="module")
def cluster():
    from chapter09.capstone.bench.engines import local_cluster

    head, workers = local_cluster(nodes=2, cpus=2)
    yield head, workers
    head.shutdown()


def _table(index):
    from chapter09.capstone.store.database import Store

    store = Store.open(index)
    paths, vectors = store.images("clip").vectors()
    return dict(zip(paths, vectors.astype(np.float32))), store.failures()


def test_encoding_pool_uses_the_clusters_cpus_or_one_actor_per_gpus_per_actor():
    from chapter09.capstone.index.engines import encoding_pool
    from chapter09.errors import SetupError, UsageError

    assert encoding_pool({"CPU": 2}, None, 0, 1) == (1, 1)  # one node of 2 CPUs: one actor, one CPU decodes
    assert encoding_pool({"CPU": 40}, None, 0, 1) == (30, 30)  # ten 4-CPU nodes: 3/4 of the CPUs encode
    assert encoding_pool({"CPU": 40}, None, 0, 4) == (7, 7)
    assert encoding_pool({"CPU": 40}, 12, 0, 1) == (12, 12)
    assert encoding_pool({"CPU": 64, "GPU": 8}, None, 1, 1) == (8, 8)
    assert encoding_pool({"CPU": 64, "GPU": 8}, None, 0.5, 1) == (16, 16)
    with pytest.raises(UsageError, match="--actors 3 or fewer"):
        encoding_pool({"CPU": 4}, 4, 0, 1)
    with pytest.raises(SetupError, match="add nodes"):
        encoding_pool({"CPU": 1}, None, 0, 1)
    with pytest.raises(SetupError, match="drop --gpus-per-actor"):
        encoding_pool({"CPU": 8}, None, 1, 1)


def test_ray_engine_on_a_two_node_cluster_matches_local_engine(library, cluster, tmp_path, capsys):
    from chapter09.capstone.__main__ import main as capstone
    from chapter09.capstone.index.build import IndexSummary, build_index
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import load_scenes

    head, _ = cluster
    settings = Settings("toy", precision="fp32")
    encoders = {"clip": clip_encoder("clip", settings)}
    local = build_index(library, tmp_path / "local", encoders, batch_size=8, workers=0, progress=False)
    # a run interrupted after 16 images (one Ray run costs ~30 s here: every worker process imports torch,
    # so the interrupted one is local), then resumed on Ray through the command line, on both worker nodes
    with pytest.raises(KeyboardInterrupt):
        build_index(library, tmp_path / "ray", encoders, batch_size=8, workers=0, progress=False, stop_after=16)
    partial, _ = _table(tmp_path / "ray")
    assert 16 <= len(partial) < 36
    capsys.readouterr()
    assert capstone(["index", str(library), "--index", str(tmp_path / "ray"), "--engine", "ray", "--models", "toy",
                     "--precision", "fp32", "--no-progress", "--batch-size", "8", "--json",
                     "--ray-address", head.address, "--actors", "2"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    for key in ("total", "added", "updated", "unchanged", "removed", "failed", "skipped", "startup_s"):
        assert key in resumed
    assert resumed["engine"] == "ray" and resumed["total"] == 36
    assert resumed["unchanged"] == len(partial) and resumed["added"] == 36 - len(partial)
    placed = resumed["ray"]
    assert (placed["nodes"], placed["cpus"], placed["pool"], placed["actors"]) == (3, 4, [2, 2], 2), placed
    text = IndexSummary("lib", "idx", "ray", ray=placed).text()
    assert "ray: 3 nodes (4 CPUs, 0 GPUs)" in text and "2 encoding actors (1 CPUs each) on 2 nodes" in text
    assert placed["actor_nodes"] == 2 and placed["decode_nodes"] == 2, placed  # both worker nodes did both (the head has no CPUs)
    assert placed["decoded_inside_actors"] == 0, placed  # decoding was not fused into the actors

    local_rows, local_failures = _table(tmp_path / "local")
    ray_rows, ray_failures = _table(tmp_path / "ray")
    assert sorted(ray_rows) == sorted(local_rows) and len(ray_rows) == 36
    assert {p: f["reason"] for p, f in ray_failures.items()} == {p: f["reason"] for p, f in local_failures.items()}
    assert set(local_failures) == {"images/truncated.png", "images/notes.jpg"}
    assert {f["path"] for f in local.failed} == set(local_failures)
    skipped = {s["path"] for s in local.skipped}
    assert skipped == {s["path"] for s in resumed["skipped"]} == {"captions.jsonl", "qa.jsonl", "scenes.jsonl"}
    # vectors equal within tolerance (different batches, other processes), stored as float16
    a = np.stack([local_rows[p] for p in sorted(local_rows)])
    b = np.stack([ray_rows[p] for p in sorted(local_rows)])
    assert np.abs(a - b).max() <= 0.03, np.abs(a - b).max()
    assert (a * b).sum(axis=1).min() >= 0.995

    # incremental: nothing new, and the known bad files are reported without being retried
    again = build_index(library, tmp_path / "ray", encoders, batch_size=8, progress=False, engine="ray",
                        ray_address=head.address)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 36) and not ray.is_initialized()
    assert {f["path"]: f["retried"] for f in again.failed} == {p: False for p in local_failures}

    # the same top results from both indexes
    scenes = load_scenes(library)
    searchers = [LibrarySearch(tmp_path / name, Settings("toy")) for name in ("local", "ray")]
    for name in sorted(scenes)[:8]:
        query = scenes[name].captions("en")[0]
        hits = [[h["path"] for h in s.by_text(query, 5)["hits"]] for s in searchers]
        assert hits[0][0] == hits[1][0] and len(set(hits[0]) & set(hits[1])) >= 4, (query, hits)


def test_caption_pool_gives_every_cpu_to_captioners_or_a_share_to_translators():
    from chapter09.capstone.caption.ray_engine import caption_pool
    from chapter09.errors import SetupError, UsageError

    assert caption_pool({"CPU": 4}, None, False) == (4, 0)  # no decode stage: every CPU captions
    assert caption_pool({"CPU": 4}, None, True) == (3, 1)  # English-only captioner: a quarter translates
    assert caption_pool({"CPU": 2}, None, True) == (1, 1)
    assert caption_pool({"CPU": 40}, 10, True) == (10, 30)
    assert caption_pool({"CPU": 16, "GPU": 4}, None, True, gpus_per_actor=1) == (4, 4)
    with pytest.raises(UsageError, match="--actors 1 or fewer"):
        caption_pool({"CPU": 2}, 2, True)
    with pytest.raises(SetupError, match="add nodes"):
        caption_pool({"CPU": 1}, None, True)


def test_caption_index_on_ray_cluster_gives_the_local_captions(cluster, tmp_path):
    """caption --index --engine ray on the two worker nodes: resumes a partly captioned index, captions what is
    left on both nodes, and every caption (and the failure of a file changed since indexing) equals the local run's."""
    import shutil

    from chapter09.capstone.caption.run import caption_index
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.store.database import Store
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    head, _ = cluster
    settings = Settings("toy", precision="fp32")
    write_dataset(tmp_path / "lib", n=10, seed=77, split="heldout")
    build_index(tmp_path / "lib", tmp_path / "local", {"clip": clip_encoder("clip", settings)}, batch_size=8,
                workers=0, progress=False)
    changed = sorted((tmp_path / "lib/images").iterdir())[3]
    changed.write_bytes(changed.read_bytes() + b"\0")  # changed since it was indexed: both engines refuse it
    shutil.copytree(tmp_path / "local", tmp_path / "ray")
    common = {"settings": Settings("toy"), "precision": "fp32", "batch_size": 4, "progress": False, "workers": 0}
    local = caption_index(tmp_path / "local", **common)
    with pytest.raises(KeyboardInterrupt):  # an interrupted run: the Ray one must go on from its commit
        caption_index(tmp_path / "ray", stop_after=2, **{**common, "batch_size": 2})
    on_ray = caption_index(tmp_path / "ray", engine="ray", ray_address=head.address, actors=2, **common)
    assert 2 <= on_ray.already <= 3 and on_ray.captioned == 9 - on_ray.already, on_ray.to_json()
    assert on_ray.engine == "ray" and on_ray.total == 10
    assert on_ray.ray["captioners"] == 2 and on_ray.ray["caption_nodes"] == 2, on_ray.ray  # both worker nodes
    assert [f["path"] for f in on_ray.failed] == [f["path"] for f in local.failed] == [f"images/{changed.name}"]
    assert on_ray.failed[0]["reason"] == local.failed[0]["reason"]
    a, b = (Store.open(tmp_path / name).captions(with_sha1=True) for name in ("local", "ray"))
    assert len(a) == 9 and a == b  # the same captions, in both languages, for the same bytes
    assert not ray.is_initialized()  # it joined the cluster for the run only
