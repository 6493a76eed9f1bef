"""An index on an object store (``s3://bucket/prefix``), against a real local S3 server: moto's server mode
on a free loopback port, reached the way a user reaches S3 (the standard AWS variables). index, search and
serve; the writer lock (a conditional put): a second writer refused, kill -9 and resume, a stale lock left
on another machine taken over, a lease lost; the side files kept in a local cache."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from store_faults import writer_script

from chapter09.models import Settings

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
BUCKET = "photos"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 (a port of its own) with one bucket, and the AWS variables pointing at it."""
    moto_server = pytest.importorskip("moto.server", reason="pip install -r requirements-test.txt (moto[server])")
    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log: one line per S3 call
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_REGION": "us-east-1", "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield {"endpoint": endpoint, "client": client, "env": env}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


def keys(s3, prefix):
    listed = s3["client"].list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_index_search_and_serve_an_s3_index_equal_to_a_local_one(s3, tmp_path, monkeypatch):
    from gradio_client import Client

    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.precision.library import read_sidecar, sidecar_folder, write_sidecar
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.capstone.store.database import Store
    from chapter09.capstone.web.serve import serve
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import load_scenes, write_dataset

    monkeypatch.chdir(tmp_path)  # nothing may land in a local folder named after the URI ("s3:/photos/...")
    library = write_dataset(tmp_path / "library", n=40, seed=31, split="heldout")
    uri, local = f"s3://{BUCKET}/libraries/idx", tmp_path / "local_idx"
    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    with pytest.raises(KeyboardInterrupt):  # an interrupted run (one batch committed), then one resuming it
        build_index(library, uri, encoders, batch_size=16, workers=0, progress=False, stop_after=16)
    with Store.open(uri) as partial:
        assert len(partial.images("clip")) == 16
    summary = build_index(library, uri, encoders, batch_size=16, workers=0, progress=False)
    build_index(library, local, encoders, batch_size=16, workers=0, progress=False)
    assert (summary.added, summary.total) == (24, 40)
    assert not keys(s3, "libraries/idx/.lock"), "the lock object outlives its run"
    assert any(k.startswith("libraries/idx/images_clip_") for k in keys(s3, "libraries/idx/"))
    assert not (tmp_path / "s3:").exists()
    with Store.open(uri) as remote, Store.open(local) as here:
        paths = remote.images("clip").column("path").to_pylist()
        assert sorted(paths) == sorted(here.images("clip").column("path").to_pylist()) and len(set(paths)) == 40
    # the precision record lives in a local cache for a URI index, never in a local "s3:" folder
    write_sidecar(uri, {"precision": "fp32", "locations": {}, "reason": "test"})
    assert read_sidecar(uri)["precision"] == "fp32"
    assert str(sidecar_folder(uri)).startswith(s3["env"]["XDG_CACHE_HOME"])
    # search: the same hits as the same library indexed on a local disk
    name, scene = sorted(load_scenes(library).items())[7]
    query = scene.captions("en")[0]
    remote_hits = LibrarySearch(uri, Settings("toy")).by_text(query, 5)["hits"]
    local_hits = LibrarySearch(local, Settings("toy")).by_text(query, 5)["hits"]
    assert [h["path"] for h in remote_hits] == [h["path"] for h in local_hits]
    assert [round(h["score"], 4) for h in remote_hits] == [round(h["score"], 4) for h in local_hits]
    # serve: the API answers from the S3 index, thumbnails made in the per-user cache and downloadable
    from tests.test_capstone_serve import free_port

    port = free_port()
    app = serve(uri, port=port, settings=Settings("toy"), block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=str(tmp_path / "downloads"))
        gallery, note, hits = client.predict(query, "auto", 5, api_name="/text_search")
        assert [h["file"] for h in hits] == [h["path"] for h in local_hits]
        first_thumb = Path(gallery[0]["image"])
        assert first_thumb.is_file() and first_thumb.stat().st_size > 500
    finally:
        app.close()
    thumbs = list(Path(s3["env"]["XDG_CACHE_HOME"], "chapter09", "serve").rglob("*.jpg"))
    assert thumbs, "serve made no thumbnail in the cache"


_HOLDER = textwrap.dedent("""
    import sys
    from chapter09.capstone.store.database import Store
    with Store.open(sys.argv[1], library=sys.argv[2], write=True):
        print("locked", flush=True)
        sys.stdin.readline()
""")

_WRITER = writer_script(commit_rows=20)


def _env():
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def test_a_second_writer_on_s3_is_refused_or_waits_and_readers_are_not_blocked(s3, tmp_path, capsys, monkeypatch):
    import threading

    from chapter09.capstone.errors import IndexLockedError
    from chapter09.capstone.store.database import Store

    uri = f"s3://{BUCKET}/second_writer"
    with Store.open(uri, library=tmp_path, write=True):
        pass
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, uri, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError, match=rf"being updated by another run \(pid {holder.pid} on "):
            Store.open(uri, write=True)
        Store.open(uri).failures()  # a reader takes no lock
        # `index` is refused before it measures a precision (which costs two encoding passes over a sample)
        from chapter09.capstone.__main__ import main as capstone
        from chapter09.capstone.precision import library as library_precision

        def measured(*_, **__):
            raise AssertionError("index measured a precision before taking the lock")
        monkeypatch.setattr(library_precision, "index_precision", measured)
        (tmp_path / "lib").mkdir()
        assert capstone(["index", str(tmp_path / "lib"), "--index", uri, "--models", "toy", "--no-progress"]) == 2
        assert "being updated by another run" in capsys.readouterr().err
        threading.Timer(1.0, lambda: (holder.stdin.write("\n"), holder.stdin.flush())).start()
        started = time.monotonic()
        with Store.open(uri, write=True, wait_s=60):
            waited = time.monotonic() - started
        assert waited >= 0.5 and "waiting up to 60 s" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


def test_kill_9_of_an_s3_writer_keeps_its_commits_and_the_next_run_takes_the_lock_over(s3, tmp_path):
    from chapter09.capstone.store.database import Store

    uri, total = f"s3://{BUCKET}/killed", 120
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    child = subprocess.Popen([sys.executable, str(script), uri, str(total), str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, env=_env())
    committed = 0
    for line in child.stdout:
        if line.startswith("committed"):
            committed = int(line.split()[1])
            if committed >= 60:
                child.send_signal(signal.SIGKILL)
                break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert keys(s3, "killed/.lock") == ["killed/.lock"], "kill -9 left no lock object (nothing to take over)"
    paths = Store.open(uri).images("clip").column("path").to_pylist()
    # every commit that returned is there, each row once, and no half commit (a kill may land after a
    # commit returned and before its line was read: at most one commit more than reported)
    assert len(paths) == len(set(paths)) and len(paths) % 20 == 0 and committed <= len(paths) <= committed + 20
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script), uri, str(total), str(tmp_path)], capture_output=True,
                          text=True, env=_env(), timeout=120)
    assert done.returncode == 0 and "finished" in done.stdout, done.stderr[-2000:]
    assert f"pid {child.pid} on " in done.stdout and "is gone" in done.stdout  # taken over at once, not after a lease
    assert time.monotonic() - started < 60
    assert sorted(Store.open(uri).images("clip").column("path").to_pylist()) == \
        [f"img/{i:05d}.jpg" for i in range(total)]
    assert not keys(s3, "killed/.lock")


def test_a_lock_left_on_another_machine_is_honoured_until_its_lease_lapses_and_a_lost_lease_stops_writes(s3,
                                                                                                       tmp_path):
    import numpy as np

    from chapter09.capstone.errors import IndexLockedError
    from chapter09.capstone.store.database import EncoderIdentity, Store
    from chapter09.capstone.store.lock import ObjectStoreLock

    uri = f"s3://{BUCKET}/elsewhere"
    with Store.open(uri, library=tmp_path, write=True):
        pass
    other = {"pid": 4242, "host": "render-node-7", "boot": "another-boot", "since": time.time(), "lease_s": 2}
    s3["client"].put_object(Bucket=BUCKET, Key="elsewhere/.lock", Body=json.dumps(other).encode())
    with pytest.raises(IndexLockedError, match=r"pid 4242 on render-node-7.*taken over 2 s after its last refresh"):
        Store.open(uri, write=True)
    time.sleep(3.2)  # by the server's clock (S3 dates are whole seconds)
    with Store.open(uri, write=True) as store:
        assert "pid 4242 on render-node-7" in store.lock.took_over and "not refreshed for" in store.lock.took_over
    # a holder whose lock object is replaced behind its back (its lease lapsed, another run took over)
    # finds out at its next refresh and writes nothing more
    lock = ObjectStoreLock(uri, lease_s=0.8)
    with Store.open(uri, library=tmp_path, write=True) as store:
        store.lock.release()
        store.lock = lock.acquire()
        s3["client"].put_object(Bucket=BUCKET, Key="elsewhere/.lock", Body=json.dumps(other).encode())
        time.sleep(0.6)
        table = store.images(EncoderIdentity("clip", "/m", "fp32", 4))
        table.put({"path": ["a.jpg"], "size": [1], "mtime_ns": [1], "sha1": ["x"], "width": [1], "height": [1],
                   "vector": np.ones((1, 4), np.float32) / 2})
        with pytest.raises(IndexLockedError, match="lost its write lock"):
            store.commit()
        store.write = False  # what the with-block would commit on leaving
    s3["client"].delete_object(Bucket=BUCKET, Key="elsewhere/.lock")


def test_s3_setup_errors_say_what_to_do(s3, tmp_path):
    from chapter09.capstone.store.database import Store
    from chapter09.errors import SetupError

    with pytest.raises(SetupError, match=r"bucket no-such-bucket does not exist at http://127\.0\.0\.1:\d+.*create it"):
        Store.open("s3://no-such-bucket/idx", library=tmp_path, write=True)
    with pytest.raises(FileNotFoundError, match="no index at s3://photos/never-built"):
        Store.open(f"s3://{BUCKET}/never-built")
