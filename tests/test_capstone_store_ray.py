"""`index --engine ray` on a local Ray (2 CPUs) gives the index the local engine gives: rows, failures, vectors, hits."""
import json
import shutil

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
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _table(index):
    from chapter09.capstone.store import Store

    store = Store.open(index)
    paths, vectors = store.images("clip").vectors()
    return dict(zip(paths, vectors.astype(np.float32))), store.failures()


def test_ray_engine_matches_local_engine(library, local_ray, tmp_path):
    from chapter09.capstone.indexer import build_index
    from chapter09.capstone.search import LibrarySearch
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import load_scenes

    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    local = build_index(library, tmp_path / "local", encoders, batch_size=8, workers=0, progress=False)
    # the Ray run is interrupted after 16 images, then resumed: resumable exactly like the local engine
    with pytest.raises(KeyboardInterrupt):
        build_index(library, tmp_path / "ray", encoders, batch_size=8, progress=False, engine="ray", stop_after=16)
    partial, _ = _table(tmp_path / "ray")
    assert 16 <= len(partial) < 36
    resumed = build_index(library, tmp_path / "ray", encoders, batch_size=8, progress=False, engine="ray")
    assert resumed.unchanged == len(partial) and resumed.added == 36 - len(partial) and resumed.engine == "ray"

    local_rows, local_failures = _table(tmp_path / "local")
    ray_rows, ray_failures = _table(tmp_path / "ray")
    assert sorted(ray_rows) == sorted(local_rows) and len(ray_rows) == 36
    assert {p: f["reason"] for p, f in ray_failures.items()} == {p: f["reason"] for p, f in local_failures.items()}
    assert set(local_failures) == {"images/truncated.png", "images/notes.jpg"}
    assert {f["path"] for f in local.failed} == set(local_failures)
    skipped = {s["path"] for s in local.skipped}
    assert skipped == {s["path"] for s in resumed.skipped} == {"captions.jsonl", "qa.jsonl", "scenes.jsonl"}
    # vectors equal within bf16 tolerance (different batches on a bf16 model), stored as float16
    a = np.stack([local_rows[p] for p in sorted(local_rows)])
    b = np.stack([ray_rows[p] for p in sorted(local_rows)])
    assert np.abs(a - b).max() <= 0.03, np.abs(a - b).max()
    assert (a * b).sum(axis=1).min() >= 0.995

    # incremental: nothing new, and the known bad files are reported without being retried
    again = build_index(library, tmp_path / "ray", encoders, batch_size=8, progress=False, engine="ray")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 36)
    assert {f["path"]: f["retried"] for f in again.failed} == {p: False for p in local_failures}

    # the same top results from both indexes
    scenes = load_scenes(library)
    searchers = [LibrarySearch(tmp_path / name, Settings("toy")) for name in ("local", "ray")]
    for name in sorted(scenes)[:8]:
        query = scenes[name].captions("en")[0]
        hits = [[h["path"] for h in s.by_text(query, 5)["hits"]] for s in searchers]
        assert hits[0][0] == hits[1][0] and len(set(hits[0]) & set(hits[1])) >= 4, (query, hits)


def test_cli_index_engine_ray_reports_the_same_json_keys(library, local_ray, tmp_path, capsys):
    from chapter09.capstone.__main__ import main as capstone

    small = tmp_path / "small"
    shutil.copytree(library / "images", small, ignore=lambda d, names: sorted(names)[10:])
    assert capstone(["index", str(small), "--index", str(tmp_path / "idx"), "--engine", "ray", "--models", "toy",
                     "--precision", "fp32", "--no-progress", "--batch-size", "4", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("total", "added", "updated", "unchanged", "removed", "failed", "skipped"):
        assert key in summary
    assert summary["engine"] == "ray" and summary["added"] == summary["total"] == 10
