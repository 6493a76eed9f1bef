"""The capstone under faults: odd entries in a library, a full disk, a read-only index.

Each fault is made for real where this machine allows it (a named pipe, a socket, symlink loops; a
size-limited tmpfs and a read-only remount of it when the tests may mount one, as root in this
container) and simulated otherwise (the write raising the errno the kernel would give), so every
test runs everywhere and none is skipped. ``CH09_TESTS_NO_MOUNT=1`` simulates even where mounting works.
"""
import contextlib
import errno
import os
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from store_faults import refuse_lock_file

from chapter09.capstone.errors import IndexFullError, IndexReadOnlyError
from chapter09.capstone.store.database import EncoderIdentity, Store

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::UserWarning")]

DIM = 64
CLIP = EncoderIdentity("clip", "/models/clip-toy", "bf16", DIM)


def rows(start, n):
    v = np.random.default_rng(start).standard_normal((n, DIM)).astype(np.float32)
    return {"path": [f"img/{i:05d}.jpg" for i in range(start, start + n)], "size": [1] * n, "mtime_ns": [1] * n,
            "sha1": ["0" * 40] * n, "width": [1] * n, "height": [1] * n,
            "vector": v / np.linalg.norm(v, axis=1, keepdims=True)}


# ----------------------------------------------------------------------------- a small file system
class SmallDisk:
    """A folder on a size-limited tmpfs (``real``), or, where nothing may be mounted, a plain folder whose
    LanceDB writes fail as a full disk would fail them: the same RuntimeError LanceDB raises, errno 28."""

    def __init__(self, tmp_path, monkeypatch, size_kb: int):
        self.folder = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        self.folder.mkdir()
        self.monkeypatch, self.size_kb = monkeypatch, size_kb
        self.real = not os.environ.get("CH09_TESTS_NO_MOUNT") and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(self.folder)],
            capture_output=True).returncode == 0
        self._full = False

    def fill_after(self, adds: int) -> None:
        """Simulation only: the table writes after the first ``adds`` fail with ENOSPC."""
        import lancedb.table

        calls = {"n": 0}
        original = lancedb.table.LanceTable.add

        def add(table, *args, **kwargs):
            calls["n"] += 1
            if self._full and calls["n"] > adds:
                raise RuntimeError("lance error: LanceError(IO): No space left on device (os error 28), "
                                   "/root/.cargo/registry/src/lance-file-13.0.0/src/writer/structural.rs:258:9")
            return original(table, *args, **kwargs)

        self._full = True
        self.monkeypatch.setattr(lancedb.table.LanceTable, "add", add)

    def grow(self) -> None:
        """Free space: a bigger tmpfs, or the simulated failure lifted."""
        if self.real:
            subprocess.run(["mount", "-o", f"remount,size={self.size_kb * 16}k", str(self.folder)], check=True)
        self._full = False

    def read_only(self, on: bool = True) -> None:
        if self.real:
            subprocess.run(["mount", "-o", "remount," + ("ro" if on else "rw"), str(self.folder)], check=True)

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", "-l", str(self.folder)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disks = []

    def make(size_kb: int) -> SmallDisk:
        disks.append(SmallDisk(tmp_path, monkeypatch, size_kb))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


# ----------------------------------------------------------------------------- entries that are not photos
def test_the_walk_skips_pipes_sockets_devices_and_symlink_loops_without_opening_them(tmp_path):
    from chapter09.capstone.index.walk import walk_library

    lib = tmp_path / "lib"
    (lib / "a" / "b").mkdir(parents=True)
    (lib / "a" / "b" / "photo.jpg").write_bytes(b"x")
    os.mkfifo(lib / "pipe.jpg")  # reading a FIFO with no writer blocks forever
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(lib / "sock.png"))
        os.symlink("/dev/zero", lib / "zero.jpg")  # a device behind a symlink: an endless read
        os.symlink("self.jpg", lib / "self.jpg")  # a symlink to itself
        os.symlink("missing.jpg", lib / "broken.jpg")
        os.symlink("..", lib / "a" / "b" / "up")  # a folder loop
        os.symlink(lib / "a", lib / "again")  # a second link to a folder already walked
        deep = lib / "deep"
        deep.mkdir()
        (deep / "/".join(["d"] * 60)).mkdir(parents=True)
        (deep / "/".join(["d"] * 60) / "bottom.png").write_bytes(b"x")
        (lib / os.fsdecode(b"caf\xe9.jpg")).write_bytes(b"x")  # a Latin-1 name, not UTF-8
        skipped = []
        found = walk_library(lib, skipped=skipped)
    assert [str(p) for p in found] == ["a/b/photo.jpg", "deep/" + "/".join(["d"] * 60) + "/bottom.png"]
    reasons = {entry["path"]: entry["reason"] for entry in skipped}
    assert reasons["pipe.jpg"] == "not a regular file (a named pipe): never opened"
    assert reasons["sock.png"] == "not a regular file (a socket): never opened"
    assert reasons["zero.jpg"] == "not a regular file (a character device): never opened"
    assert reasons["self.jpg"] == "a symlink loop: skipped"
    assert reasons["broken.jpg"] == "a broken symlink: skipped"
    assert "already walked" in reasons["a/b/up"] and "already walked" in reasons["again"]
    assert reasons["caf\\xe9.jpg"] == "file name is not valid UTF-8: rename it to index it"


def test_index_finishes_beside_a_named_pipe_and_reports_it(tmp_path):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder
    from chapter09.models import Settings
    from chapter09.toyworld import write_dataset

    lib = write_dataset(tmp_path / "lib", n=4, seed=3)
    fifo = lib / "images" / "stuck.png"
    os.mkfifo(fifo)
    out = {}

    def run():
        out["summary"] = build_index(lib, tmp_path / "idx", {"clip": clip_encoder("clip", Settings("toy"))},
                                     workers=0, progress=False, build_ann=False)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    if worker.is_alive():  # it opened the pipe: let it go (open a writer, then close it) and fail
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
        pytest.fail("index blocked on a named pipe in the library")
    summary = out["summary"]
    assert summary.added == 4 and summary.total == 4 and not summary.failed
    assert {"path": "images/stuck.png", "reason": "not a regular file (a named pipe): never opened"} in summary.skipped
    assert "SKIPPED images/stuck.png: not a regular file (a named pipe): never opened" in summary.text()


def test_a_file_that_turns_into_a_pipe_after_the_walk_fails_alone_unopened(tmp_path):
    from chapter09.capstone.index.decode import decode_one

    os.mkfifo(tmp_path / "late.jpg")
    item = decode_one(tmp_path, "late.jpg", {}, 0)  # would block in open() if it tried to read
    assert not item["ok"] and item["reason"] == "not a regular file (a named pipe): never opened"


# ----------------------------------------------------------------------------- a full disk
def test_a_full_disk_says_which_folder_what_is_free_and_what_was_kept_and_the_next_run_resumes(small_disk):
    disk = small_disk(1024)
    index = disk.folder / "idx"
    if not disk.real:
        disk.fill_after(3)
    committed = 0
    with pytest.raises(IndexFullError) as full:
        with Store.open(index, library=disk.folder, write=True, commit_rows=256) as store:
            table = store.images(CLIP)
            for start in range(0, 100_000, 64):
                table.put(rows(start, 64))
                if table.pending == 0:
                    committed = len(table)
    message = str(full.value)
    assert message.startswith(f"the disk holding index {index} is full while committing 256 rows to {CLIP.table}")
    assert "free of" in message and "this write needed about" in message
    assert f"Kept: the last commit, {committed:,} images in {CLIP.table}, is intact" in message
    assert "run the same command again: it continues from there" in message
    assert "structural.rs" not in message and committed >= 256
    paths = Store.open(index).images("clip").column("path").to_pylist()
    assert len(paths) == len(set(paths)) == committed  # every committed row, nothing half-written
    disk.grow()
    with Store.open(index, library=disk.folder, write=True, commit_rows=256) as store:
        table = store.images(CLIP)
        done = set(table.column("path").to_pylist())
        for start in range(0, committed + 512, 64):
            batch = rows(start, 64)
            if batch["path"][0] not in done:
                table.put(batch)
        store.finish()
    paths = Store.open(index).images("clip").column("path").to_pylist()
    assert len(paths) == len(set(paths)) == committed + 512


def test_a_full_disk_reaches_the_command_line_as_one_line(tmp_path, monkeypatch, capsys):
    from chapter09.capstone import __main__ as cli

    def full(args):
        with Store.open(tmp_path / "idx", library=tmp_path, write=True) as store:
            with store.writing("committing 64 rows to images_clip_x", needed=70_000):
                raise RuntimeError("lance error: LanceError(IO): No space left on device (os error 28), /x.rs:1:1")

    monkeypatch.setattr(cli, "cmd_index", full)  # the parser binds the command when main() builds it
    assert cli.main(["index", str(tmp_path), "--index", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: the disk holding index {tmp_path / 'idx'} is full")
    assert "no images had been committed yet" in err[0] and "Traceback" not in err[0]


# ----------------------------------------------------------------------------- a read-only index


def test_a_read_only_index_is_searched_and_refuses_writes_with_a_message(small_disk, monkeypatch):
    disk = small_disk(8192)
    index = disk.folder / "idx"
    with Store.open(index, library=disk.folder, write=True) as store:
        store.images(CLIP).put(rows(0, 300))
        store.finish()
    disk.read_only()
    if not disk.real:
        refuse_lock_file(monkeypatch, index)
    store = Store.open(index)  # reading needs no lock and writes nothing
    assert len(store) == 300 and store.images("clip").column("path").to_pylist()[0] == "img/00000.jpg"
    with pytest.raises(IndexReadOnlyError) as refused:
        Store.open(index, library=disk.folder, write=True)
    message = str(refused.value)
    assert message.startswith(f"index {index} is read-only (a read-only file system: taking the write lock "
                               f"was refused at {index / '.lock'})")
    assert "search, serve and dedup work on it as it is" in message and f"cp -r {index} NEW" in message
    disk.read_only(False)


def test_an_unreadable_photo_fails_alone_and_is_tried_again_once_readable(tmp_path, monkeypatch):
    from chapter09.capstone.index import build as indexer
    from chapter09.capstone.index import decode
    from chapter09.clip import clip_encoder
    from chapter09.models import Settings
    from chapter09.toyworld import write_dataset

    lib = write_dataset(tmp_path / "lib", n=3, seed=4)
    locked = sorted((lib / "images").iterdir())[1]
    real_sha1 = decode.file_sha1

    def unreadable(path):  # as chmod 000 is for a user other than root (the tests run as root)
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_sha1(path)

    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    monkeypatch.setattr(decode, "file_sha1", unreadable)
    first = indexer.build_index(lib, tmp_path / "idx", encoders, workers=0, progress=False, build_ann=False)
    assert first.added == 2 and [f["path"] for f in first.failed] == [f"images/{locked.name}"]
    assert first.failed[0]["reason"] == "cannot be read (Permission denied); tried again next run"
    monkeypatch.setattr(decode, "file_sha1", real_sha1)  # permissions fixed: size and mtime unchanged
    second = indexer.build_index(lib, tmp_path / "idx", encoders, workers=0, progress=False, build_ann=False)
    assert second.added == 1 and second.unchanged == 2 and not second.failed and second.total == 3


def test_index_says_a_full_disk_while_recording_the_precision_in_one_line(tmp_path, monkeypatch, capsys):
    from chapter09.capstone import __main__ as cli
    from chapter09.capstone.index import build as indexer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "idx" / ".precision-x.json"))

    monkeypatch.setattr(indexer, "index_precision", full)  # where the use case (decide_precision) calls it
    assert cli.main(["index", str(tmp_path), "--index", str(tmp_path / "idx"), "--models", "toy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: the disk holding index {tmp_path / 'idx'} is full "
                                               "while recording the precision")


# ----------------------------------------------------------------------------- no fork of a process holding LanceDB
def test_a_normal_index_run_with_decode_workers_prints_no_fork_warning(tmp_path):
    """The decode workers come from a fork server that never imported LanceDB, so LanceDB's warning that a
    forked child may deadlock cannot fire (with a plain fork it prints once per worker); the run's stderr
    is the user's terminal, so it is read as they would see it."""
    import sys

    from chapter09.capstone.engines.local import decode_context
    from chapter09.toyworld import write_dataset

    lib = write_dataset(tmp_path / "lib", n=12, seed=5)
    assert decode_context({}).get_start_method() != "fork"
    run = subprocess.run([sys.executable, "-m", "chapter09.capstone", "index", str(lib), "--index", str(tmp_path / "idx"),
                          "--models", "toy", "--precision", "fp32", "--workers", "2", "--batch-size", "4",
                          "--no-progress"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONWARNINGS": "default"})
    assert run.returncode == 0, run.stderr
    assert "added 12" in run.stdout
    assert "fork" not in run.stderr and "Warning" not in run.stderr, run.stderr


def test_decode_workers_only_where_they_can_overlap(monkeypatch):
    """A short run decodes here; the indexer takes up to two workers; a captioner, whose threads keep their cores
    busy, only gets workers on the cores it leaves idle (on a core it uses, a worker only adds its start-up)."""
    from chapter09.capstone.engines import local

    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    assert local.default_workers(8, 4) == 0  # two batches
    assert local.default_workers(96, 4) == 2  # the indexer
    assert local.default_workers(96, 4, model_threads=2) == 0  # a captioner on both cores
    monkeypatch.setattr(local.os, "cpu_count", lambda: 8)
    assert local.default_workers(96, 4, model_threads=2) == 2 and local.default_workers(96, 4, model_threads=7) == 1


def test_a_decode_worker_ends_when_the_process_it_decodes_for_is_killed():
    """``exit_with`` (run in every decode worker) ends the worker once the reading process is gone, a zombie not
    yet waited for included: a kill -9 of ``index`` had left the fork server and its workers running for ever."""
    import subprocess
    import sys
    import time

    reader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = subprocess.Popen([sys.executable, "-c", "import sys, time\n"
                               "from chapter09.capstone.engines.local import exit_with\n"
                               f"exit_with({reader.pid}, poll_s=0.05)\n"
                               "time.sleep(60)\n"])
    try:
        time.sleep(1.0)
        assert worker.poll() is None  # the reader lives: the worker stays
        reader.kill()  # not waited for: a zombie until the end of the test
        started = time.monotonic()
        assert worker.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        for process in (reader, worker):
            process.kill()
            process.wait()
