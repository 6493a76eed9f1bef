"""`index --watch`: a watcher in a subprocess sees files added, changed, moved and deleted; Ctrl-C ends it cleanly."""
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from chapter09.capstone.store.database import Store
from chapter09.capstone.store.lock import IndexLock

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def photo(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def rows(index):
    try:
        return {r["path"]: r["sha1"] for r in Store.open(index).images("clip").records(("path", "sha1"))}
    except Exception:  # not created yet, or between a batch's commit and compaction: look again
        return None


def until(condition, what, timeout=12.0):
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            print(f"watcher: {what}: {time.monotonic() - started:.2f} s")
            return value
        time.sleep(0.1)
    raise AssertionError(f"the watcher did not {what} within {timeout:g} s")


def test_the_watcher_follows_adds_changes_moves_and_deletes_and_stops_on_ctrl_c(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "idx"
    for i in range(3):
        photo(lib / f"{i}.png", i)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-m", "chapter09.capstone", "index", str(lib), "--index", str(index), "--watch", "--json",
         "--models", "toy", "--precision", "fp32", "--no-progress", "--workers", "0", "--debounce-s", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    batches, stderr = queue.Queue(), []
    threading.Thread(target=lambda: [batches.put(json.loads(line)) for line in child.stdout], daemon=True).start()
    threading.Thread(target=lambda: stderr.extend(child.stderr), daemon=True).start()

    def batch(timeout=15.0):
        try:
            return batches.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no batch within {timeout:g} s; stderr: {''.join(stderr)[-3000:]}") from None

    started = time.monotonic()
    try:
        first = batch(timeout=60)
        print(f"watcher: start-up and first run: {time.monotonic() - started:.2f} s")  # the start: imports and the toy model, then the first full run
        assert (first["reason"], first["added"], first["total"]) == ("start", 3, 3)
        until(lambda: any("watching" in line for line in stderr), "say it is watching")
        with IndexLock(index):  # between batches the lock is free: another writer (or caption --index) may run
            pass
        photo(lib / "new" / "3.png", 3)  # added
        until(lambda: "new/3.png" in (rows(index) or {}), "index an added file")
        old = until(lambda: (rows(index) or {}).get("0.png"), "read the index (a read may meet the compaction)")
        photo(lib / "0.png", 100)  # changed: other bytes
        until(lambda: (rows(index) or {}).get("0.png") not in (None, old), "re-index a changed file")
        os.makedirs(lib / "2019")
        shutil.move(lib / "1.png", lib / "2019" / "1.png")  # moved
        until(lambda: set(rows(index) or ()) == {"0.png", "2019/1.png", "2.png", "new/3.png"}, "follow a move")
        os.remove(lib / "2.png")  # deleted
        until(lambda: set(rows(index) or ()) == {"0.png", "2019/1.png", "new/3.png"}, "drop a deleted file")
        seen = []
        while not batches.empty():
            seen.append(batches.get())
        seen += [] if any(b["removed"] for b in seen) else [batch()]
        totals = {key: sum(b[key] for b in seen) for key in ("added", "updated", "moved", "removed")}
        assert totals == {"added": 1, "updated": 1, "moved": 1, "removed": 1}, seen
        child.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        assert child.wait(timeout=20) == 0, "".join(stderr)[-3000:]
        print(f"watcher: exit after SIGINT: {time.monotonic() - stopping:.2f} s")
        assert any("stopping" in line for line in stderr)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with Store.open(index, write=True):  # the lock went with it
        pass
