"""The capstone's LanceDB store: commits, kill -9, the write lock, migration, compaction, model changes, ANN."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from store_faults import writer_script

from chapter09.capstone.errors import IndexLockedError, StoreError
from chapter09.capstone.store import vectors as vectors_module
from chapter09.capstone.store.database import EncoderIdentity, Store, open_vectors

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DIM = 16
CLIP = EncoderIdentity("clip", "/models/clip-toy", "bf16", DIM)


def unit_vectors(n, seed=0, dim=DIM):
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def rows(start, n, size=100, seed=None):
    return {"path": [f"img/{i:05d}.jpg" for i in range(start, start + n)], "size": [size] * n,
            "mtime_ns": [7] * n, "sha1": [f"{i:040x}" for i in range(start, start + n)], "width": [32] * n,
            "height": [24] * n, "vector": unit_vectors(n, start if seed is None else seed)}


def paths_of(index, role="clip"):
    return Store.open(index).images(role).column("path").to_pylist()


@pytest.mark.unit
def test_rows_commit_in_batches_and_a_re_put_path_replaces_its_row(tmp_path):
    with Store.open(tmp_path / "idx", library=tmp_path, write=True, commit_rows=50) as store:
        table = store.images(CLIP)
        for start in range(0, 120, 10):
            table.put(rows(start, 10))
        assert len(table) == 100 and table.pending == 20  # two commits of 50; 20 still queued
        table.put(rows(0, 5, size=999, seed=42))  # five paths again, changed
    store = Store.open(tmp_path / "idx")
    table = store.images("clip")
    paths = table.column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 120
    state = table.state()
    assert state["img/00000.jpg"] == (999, 7) and state["img/00010.jpg"] == (100, 7)
    got = dict(zip(*table.vectors()))
    assert np.allclose(got["img/00003.jpg"], unit_vectors(5, 42)[3], atol=1e-3)  # float16 storage


_WRITER = writer_script(commit_rows=40, pace_s=0.002)  # an encoder's pace, so that a kill lands mid-run


@pytest.mark.unit
def test_kill_9_mid_run_keeps_committed_rows_and_the_next_run_finishes(tmp_path):
    index, total = tmp_path / "idx", 600
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    seen = []
    for kill_after in (2, 5, 3):  # killed at different moments, each run resuming the last
        child = subprocess.Popen([sys.executable, str(script), str(index), str(total), str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        commits = 0
        for line in child.stdout:
            if line.startswith("committed"):
                commits += 1
                if commits == kill_after:
                    time.sleep(0.01 * kill_after)  # somewhere inside the following puts or commit
                    child.send_signal(signal.SIGKILL)
                    break
        child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        paths = paths_of(index)
        assert len(paths) == len(set(paths)), "a killed run duplicated rows"
        assert len(paths) % 40 == 0, "rows of an unfinished commit are visible"
        seen.append(len(paths))
    assert seen == sorted(seen) and seen[-1] < total
    done = subprocess.run([sys.executable, str(script), str(index), str(total), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-2000:]
    paths = paths_of(index)
    assert sorted(paths) == [f"img/{i:05d}.jpg" for i in range(total)]
    # the lock died with the killed runs: a writer gets it at once
    with Store.open(index, write=True):
        pass


_COMPACTER = textwrap.dedent("""
    import sys, numpy as np
    from chapter09.capstone.store.database import EncoderIdentity, Store
    identity = EncoderIdentity("clip", "/models/clip-toy", "bf16", 16)
    with Store.open(sys.argv[1], library=sys.argv[2], write=True, commit_rows=4) as store:
        table = store.images(identity)
        start = len(table)
        for i in range(start, start + 200):  # 50 commits: 50 versions and fragments for the compaction to fold
            v = np.random.default_rng(i).standard_normal((1, 16)).astype(np.float32)
            table.put({"path": [f"img/{i:05d}.jpg"], "size": [i], "mtime_ns": [i], "sha1": ["x"], "width": [1],
                       "height": [1], "vector": v / np.linalg.norm(v)})
        table.commit()
        print("compacting", len(table), flush=True)
        store.finish()
        print("compacted", flush=True)
""")


@pytest.mark.unit
def test_kill_9_during_compaction_keeps_every_committed_row(tmp_path):
    index = tmp_path / "idx"
    script = tmp_path / "compacter.py"
    script.write_text(_COMPACTER)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    trials = []
    for delay in (0.005, 0.05):  # after the last commit returned, inside the compaction that follows
        child = subprocess.Popen([sys.executable, str(script), str(index), str(tmp_path)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        committed = int(child.stdout.readline().split()[1])
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        store = Store.open(index)  # the index opens after every kill
        paths = store.images("clip").column("path").to_pylist()
        trials.append({"delay_s": delay, "committed": committed, "rows": len(paths), "unique": len(set(paths)),
                       "versions_left": len(store.images("clip").table.list_versions())})
        assert child.returncode == -signal.SIGKILL and len(paths) == len(set(paths)) == committed, trials
    # the kills landed before the compaction had finished: old versions were left (a count that is not
    # 50 per run + 1 means the kill landed inside optimize, between its commit and its clean-up)
    assert any(t["versions_left"] > 1 for t in trials), trials
    with Store.open(index, library=tmp_path, write=True) as store:  # the next run compacts what the kills left
        store.finish()
        assert len(store.images("clip").table.list_versions()) == 1
    assert sorted(paths_of(index)) == [f"img/{i:05d}.jpg" for i in range(400)]
    print("kill -9 during compaction:", trials)


_HOLDER = textwrap.dedent("""
    import sys
    from chapter09.capstone.store.database import Store
    with Store.open(sys.argv[1], library=sys.argv[2], write=True):
        print("locked", flush=True)
        sys.stdin.readline()
""")


@pytest.mark.unit
def test_a_second_writer_is_refused_or_waits_with_a_message(tmp_path, capsys):
    index = tmp_path / "idx"
    with Store.open(index, library=tmp_path, write=True) as store:
        store.images(CLIP).put(rows(0, 10))
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(index), str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match=rf"being updated by another run \(pid {holder.pid}"):
            Store.open(index, write=True)
        assert len(Store.open(index).images("clip")) == 10  # readers are never blocked
        threading.Timer(1.0, lambda: (holder.stdin.write("\n"), holder.stdin.flush())).start()
        started = time.monotonic()
        with Store.open(index, write=True, wait_s=60) as store:
            waited = time.monotonic() - started
            store.images("clip").put(rows(10, 5))
        assert waited >= 0.5
        assert "waiting up to 60 s" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert len(paths_of(index)) == 15


def _old_store(index, library, records, vectors):
    """An index as the previous version wrote it (chapter09.capstone.library.Store.save)."""
    index.mkdir(parents=True)
    meta = {"version": 1, "library": str(library), "encoders": {"clip": {"location": CLIP.location, "dim": DIM}},
            "records": records, "ann_recall": {}}
    with open(index / "store.npz", "wb") as out:
        np.savez(out, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), vectors__clip=vectors)


@pytest.mark.unit
def test_a_store_npz_index_is_migrated_on_first_open_with_vectors_kept(tmp_path, capsys):
    index = tmp_path / "idx"
    records = [{"path": f"a/{i}.png", "size": 10 + i, "mtime_ns": 5, "sha1": f"{i:040x}", "width": 8, "height": 8}
               for i in range(30)]
    vectors = unit_vectors(30, 3)
    _old_store(index, tmp_path, records, vectors)
    store = Store.open(index)
    err = capsys.readouterr().err
    assert "migrated" in err and "nothing re-encoded" in err
    assert not (index / "store.npz").exists() and (index / "store.npz.migrated").exists()
    got = dict(zip(*store.images("clip").vectors()))
    assert set(got) == {r["path"] for r in records}
    assert np.allclose(np.stack([got[r["path"]] for r in records]), vectors, atol=1e-3)
    assert store.library == str(tmp_path.resolve()) and store.images("clip").state()["a/3.png"] == (13, 5)
    # the next run with the same checkpoint adopts the migrated table: no re-encoding, no new table
    with Store.open(index, library=tmp_path, write=True) as writer:
        assert writer.switch_note(CLIP) is None
        assert len(writer.images(CLIP)) == 30
    assert Store.open(index).identity("clip").precision == CLIP.precision


@pytest.mark.unit
def test_a_changed_model_gets_its_own_table_and_the_old_one_is_kept(tmp_path):
    index = tmp_path / "idx"
    with Store.open(index, library=tmp_path, write=True) as store:
        store.images(CLIP).put(rows(0, 20))
    fp32 = EncoderIdentity("clip", CLIP.location, "fp32", DIM)
    other = EncoderIdentity("clip", "/models/another-clip", "bf16", DIM)
    assert len({fp32.table, CLIP.table, other.table}) == 3
    assert EncoderIdentity("clip", "/models/clip-toy", "bf16", DIM).table == CLIP.table  # stable: same model, same table
    with Store.open(index, library=tmp_path, write=True) as store:
        note = store.switch_note(fp32)
        assert "precision bf16 -> fp32" in note and "re-encoded" in note and "(20 rows) is kept" in note
        assert len(store.images(fp32)) == 0
        store.images(fp32).put(rows(0, 3))
    store = Store.open(index)
    assert store.identity("clip") == fp32 and len(store.images("clip")) == 3
    with Store.open(index, library=tmp_path, write=True) as store:
        assert "checkpoint /models/clip-toy -> /models/another-clip" in store.switch_note(other)
        back = store.switch_note(CLIP)
        assert "earlier run: 20 rows" in back
        assert len(store.images(CLIP)) == 20  # switching back reuses the kept table


@pytest.mark.unit
def test_an_index_updated_20_times_stays_near_the_size_of_a_fresh_one(tmp_path):
    index = tmp_path / "idx"
    for run in range(20):
        with Store.open(index, library=tmp_path, write=True, commit_rows=64) as store:
            table = store.images(CLIP)
            table.put(rows(run * 100, 100))  # new images
            if run:
                table.put(rows((run - 1) * 100, 30, size=run, seed=1000 + run))  # changed images
                table.delete([f"img/{(run - 1) * 100 + 99:05d}.jpg"])  # a deleted image
            store.finish()
    updated = Store.open(index)
    table = updated.images("clip")
    assert len(table.table.list_versions()) == 1
    final = table.records()
    paths, vectors = table.vectors()
    assert len(final) == len(set(paths)) == 20 * 100 - 19
    fresh_dir = tmp_path / "fresh"
    with Store.open(fresh_dir, library=tmp_path, write=True) as fresh:
        order = {r["path"]: r for r in final}
        fresh.images(CLIP).put({**{k: [order[p][k] for p in paths] for k in ("path", "size", "mtime_ns", "sha1",
                                                                               "width", "height")},
                                "vector": vectors})
        fresh.finish()
    ratio = updated.size_bytes() / Store.open(fresh_dir).size_bytes()
    assert ratio <= 1.5, f"20 updates left the index {ratio:.2f}x a fresh one"


@pytest.mark.unit
def test_failures_and_captions_round_trip(tmp_path):
    index = tmp_path / "idx"
    with Store.open(index, library=tmp_path, write=True) as store:
        store.images(CLIP).put(rows(0, 3))
        store.put_failures([{"path": "bad.jpg", "size": 4, "mtime_ns": 9, "reason": "truncated"}])
        store.commit()
        store.put_captions([{"path": "img/00000.jpg", "sha1": f"{0:040x}", "en": "a cat"}])
        store.put_captions([{"path": "img/00000.jpg", "sha1": f"{0:040x}", "zh": "一只猫"}])  # en kept
        store.put_captions([{"path": "img/00001.jpg", "sha1": "old", "en": "a dog"}])
        store.put_captions([{"path": "img/00001.jpg", "sha1": "new", "zh": "一只鸟"}])  # other bytes: en dropped
    store = Store.open(index)
    assert store.failures()["bad.jpg"]["reason"] == "truncated"
    assert store.captions(["img/00000.jpg", "img/00001.jpg", "img/00002.jpg"]) == {
        "img/00000.jpg": {"en": "a cat", "zh": "一只猫"}, "img/00001.jpg": {"zh": "一只鸟"}}
    with Store.open(index, library=tmp_path, write=True) as store:
        store.drop_failures(["bad.jpg"])
        store.drop_captions(["img/00000.jpg"])
    assert Store.open(index).failures() == {} and list(Store.open(index).captions()) == ["img/00001.jpg"]


@pytest.mark.unit
def test_bad_input_gets_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no index at"):
        Store.open(tmp_path / "nothing")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"x")
    with pytest.raises(StoreError, match="not empty and holds no index"):
        Store.open(tmp_path / "photos", library=tmp_path, write=True)
    with Store.open(tmp_path / "idx", library=tmp_path / "photos", write=True) as store:
        table = store.images(CLIP)
        with pytest.raises(ValueError, match=r"vectors must be \(rows, 16\)"):
            table.put({**rows(0, 2), "vector": np.zeros((2, 8), np.float32)})
        with pytest.raises(ValueError, match="NaN"):
            table.put({**rows(0, 2), "vector": np.full((2, DIM), np.nan, np.float32)})
        with pytest.raises(ValueError, match="lack the columns"):
            table.put({"path": ["a"]})
    with pytest.raises(StoreError, match="belongs to library"):
        Store.open(tmp_path / "idx", library=tmp_path, write=True)
    with pytest.raises(StoreError, match="read-only"):
        Store.open(tmp_path / "idx").images(CLIP)
    with pytest.raises(StoreError, match="no chinese_clip vectors.*--chinese-clip"):
        Store.open(tmp_path / "idx").images("chinese_clip")


@pytest.mark.unit
def test_ann_index_reaches_the_recall_target_is_cached_and_rebuilt_when_rows_change(tmp_path, monkeypatch):
    from chapter09.capstone.bench import ClusteredVectors

    mixture = ClusteredVectors(DIM, clusters=40, seed=1)
    vectors = mixture.sample(4000)
    index = tmp_path / "idx"
    with Store.open(index, library=tmp_path, write=True) as store:
        store.images(CLIP).put({**rows(0, 4000), "vector": vectors})
    store = Store.open(index)
    exact, ann = open_vectors(store, "clip", "exact"), open_vectors(store, "clip", "ann")
    assert ann.built and ann.recall_at_10 >= vectors_module.IVF_TARGET_RECALL and ann.nprobe <= ann.index.nlist
    queries = mixture.sample(50)
    found_exact, found_ann = exact.search(queries, 10)[1], ann.search(queries, 10)[1]
    as_paths = [[exact.path(i) for i in row] for row in found_exact], [[ann.path(i) for i in row] for row in found_ann]
    held_out = np.mean([len(set(a) & set(e)) / 10 for e, a in zip(*as_paths)])
    assert held_out >= vectors_module.IVF_TARGET_RECALL - 0.05, held_out

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached ANN index should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(vectors_module, "build_ann", no_rebuild)
        again = open_vectors(Store.open(index), "clip", "ann")
        assert not again.built and (again.nprobe, again.recall_at_10) == (ann.nprobe, ann.recall_at_10)
        assert open_vectors(Store.open(index), "clip", "auto").mode == "exact"  # 4000 rows: under the threshold
    with Store.open(index, library=tmp_path, write=True) as store:
        store.images(CLIP).put(rows(4000, 10))
    assert open_vectors(Store.open(index), "clip", "ann").built  # the table changed: rebuilt


@pytest.mark.e2e
@pytest.mark.slow  # the store bench end to end (~40 s); the store's own behaviour is tested above and below
def test_bench_store_reports_appends_and_search_from_disk(tmp_path):
    """Tiny sizes, no timing asserts: every row is measured and the derived figures follow from them."""
    from chapter09.capstone.bench import store_search as bench_store

    report = bench_store.run(tmp_path, append_rows=3000, sizes=(2000, 3000), queries=10, dim=32, log=lambda *a: None)
    store = report["store"]
    assert store["rows"] == 3000 and store["rows_per_s_first_50k"] > 0 and store["peak_rss_mb"] > 0
    assert store["flatness"] == pytest.approx(store["rows_per_s_last_50k"] / store["rows_per_s_first_50k"], rel=0.01)
    assert 0 <= report["fp16_storage_recall_at_10"] <= 1
    assert [row["vectors"] for row in report["store_search"]] == [2000, 3000]
    for row in report["store_search"]:
        exact, ann = row["exact"], row["ann"]
        assert exact["mode"] == "exact" and ann["mode"] == "ann" and not ann["built_here"]  # `index` built it
        assert 0 < exact["p50_ms"] <= exact["p95_ms"] and 0 < ann["p50_ms"] <= ann["p95_ms"]
        assert 0 <= ann["recall_at_10"] <= 1
        assert ann["tuning_recall_at_10"] >= vectors_module.IVF_TARGET_RECALL or ann["nprobe"] == ann["cells"]
        assert row["search_auto_uses"] == "exact"
