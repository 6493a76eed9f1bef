"""Crash consistency, proven by trials: the index's writers killed with SIGKILL at random moments.

Three writers, each the way a command writes: ``index`` (image rows put in batches, committed every
``commit_rows``, then the final compaction), ``caption --index`` (caption rows upserted a batch at a time)
and the final compaction itself (``Store.finish``, many small versions folded). The child reports each
commit on a pipe as it goes: ``begin`` with the paths it is writing, ``done`` once the commit returned. After
each kill the test checks that the index opens, holds no duplicate path, and holds exactly the rows whose
commit returned (plus, all or nothing, those of the one commit in flight when the kill landed); the next
trial is the next run, resuming; a last run completes the library. A trial table is printed (``-s``).

The default run uses store-level writers with fake vectors (the fast ones of test_capstone_store.py: no
model, about a second a trial); ``-m slow`` kills the real ``build_index`` and ``caption_index`` with the
toy models.
"""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chapter09.capstone.store.database import Store

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parents[1]

# the child: every commit of image rows and caption rows, and the final compaction, reported on a pipe
_CHILD = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    from chapter09.capstone.store import database as store_module
    from chapter09.capstone.store import tables
    from chapter09.capstone.store.database import EncoderIdentity, Store

    events = os.fdopen(int(os.environ["CRASH_EVENTS_FD"]), "w", buffering=1)

    def say(*parts):
        events.write(json.dumps(parts) + "\\n")
        events.flush()

    table_commit, path_upsert, finish = tables.ImageTable.commit, tables.PathTable.upsert, Store.finish

    def reported_commit(self):
        paths = [p for batch in self._pending for p in batch.column("path").to_pylist()]
        if paths:
            say("begin", self.name, paths)
        written = table_commit(self)
        if paths:
            say("done", self.name)
        return written

    def reported_upsert(self, rows):
        captions = self.name == "captions" and rows
        if captions:
            say("begin", "captions", [row["path"] for row in rows])
        path_upsert(self, rows)
        if captions:
            say("done", "captions")

    def reported_finish(self):
        say("finishing")
        finish(self)
        say("finished")
        time.sleep(0.1)  # a kill meant for the compaction that lands after it still kills a running process

    tables.ImageTable.commit, tables.PathTable.upsert, Store.finish = reported_commit, reported_upsert, reported_finish
    mode, index, library, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    identity = EncoderIdentity("clip", "/models/clip-toy", "fp32", 16)
    paths = [f"img/{i:05d}.jpg" for i in range(total)]

    def rows(chosen):
        v = np.random.default_rng(len(chosen)).standard_normal((len(chosen), 16)).astype(np.float32)
        n = len(chosen)
        return {"path": chosen, "size": [1] * n, "mtime_ns": [1] * n, "sha1": ["s" + p for p in chosen],
                "width": [1] * n, "height": [1] * n, "vector": v / np.linalg.norm(v, axis=1, keepdims=True)}

    if mode == "index":  # as build_index writes: puts of a batch, a commit every 32 rows, then the compaction
        with Store.open(index, library=library, write=True, commit_rows=32) as store:
            table = store.images(identity)
            done = set(table.column("path").to_pylist())
            todo = [p for p in paths if p not in done]
            for start in range(0, len(todo), 16):
                time.sleep(0.01)  # an encoder's pace
                table.put(rows(todo[start:start + 16]))
            store.finish()
    elif mode == "caption":  # as caption_index writes: one upsert of a batch's captions per commit
        with Store.open(index, write=True) as store:
            done = set(store.captions())
            todo = [p for p in paths if p not in done]
            for start in range(0, len(todo), 8):
                time.sleep(0.01)  # a captioner's pace
                store.put_captions([{"path": p, "sha1": "s" + p, "en": "caption of " + p, "zh": "图" + p}
                                    for p in todo[start:start + 8]])
            store.finish()
    elif mode == "compact":  # many small versions for the compaction to fold, then the compaction
        with Store.open(index, library=library, write=True, commit_rows=4) as store:
            table = store.images(identity)
            start = len(table)
            for i in range(start, min(start + 120, total)):
                table.put(rows([paths[i]]))
            table.commit()
            store.finish()
    elif mode in ("real-index", "real-caption"):  # the commands' own code, toy models, small commits
        from chapter09.models import Settings
        if mode == "real-index":
            from chapter09.capstone.index.build import build_index
            from chapter09.clip import clip_encoder
            build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, batch_size=8, workers=0,
                        progress=False, commit_rows=16, build_ann=False)
        else:
            try:
                from chapter09.capstone.caption.run import caption_index
            except ImportError:  # before it moved out of the indexer
                from chapter09.capstone.index.build import caption_index
            caption_index(index, "en,zh", Settings("toy"), batch_size=4, commit_s=0, progress=False)
    say("exit")
""")


# Each trial's writer is forked from this zygote, which has imported what a writer spends its start-up on
# (numpy, pyarrow, pandas, LanceDB's namespace models: ~2.5 s a process here) but never lancedb itself, whose
# import starts the threads that forking is unsafe with; the child imports lancedb (and opens the index) itself.
_ZYGOTE = textwrap.dedent("""
    import json, os, sys, threading, traceback
    import asyncio, numpy, pandas, pyarrow, pyarrow.compute, pydantic, tqdm, lance_namespace
    import chapter09.capstone.store.database
    assert "lancedb" not in sys.modules and threading.active_count() == 1, "the zygote must hold no threads"
    say = threading.Lock()

    def report(*parts):
        with say:
            print(json.dumps(parts), flush=True)

    def reap(pid):
        report("exit", pid, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))

    for line in sys.stdin:
        script, argv, events, stderr = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                fd = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(fd, 2)
                os.environ["CRASH_EVENTS_FD"] = str(os.open(events, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
                sys.argv = [script, *argv]
                exec(compile(open(script).read(), script, "exec"), {"__name__": "__main__"})
            except SystemExit as stop:
                code = stop.code or 0
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        report("started", pid)
        threading.Thread(target=reap, args=(pid,), daemon=True).start()
""")


class Zygote:
    def __init__(self, folder: Path):
        self.folder = folder
        self.process = subprocess.Popen([sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                        env={**os.environ, "PYTHONWARNINGS": "ignore"})

    def fork(self, script, argv) -> tuple[int, Path, Path]:
        events, stderr = self.folder / "events.jsonl", self.folder / "stderr.txt"
        events.unlink(missing_ok=True)
        self.process.stdin.write(json.dumps([str(script), argv, str(events), str(stderr)]) + "\n")
        self.process.stdin.flush()
        kind, pid = json.loads(self.process.stdout.readline())
        assert kind == "started", kind
        return pid, events, stderr

    def exit_code(self, pid) -> int:
        kind, who, code = json.loads(self.process.stdout.readline())
        assert (kind, who) == ("exit", pid)
        return code

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def zygote(tmp_path):
    z = Zygote(tmp_path)
    yield z
    z.close()


def _run(zygote, script, mode, index, library, total, kill=None):
    """Run the child; ``kill``: ("commit", k, delay_s) kills it delay_s after the k-th commit returned,
    ("finishing", delay_s) that long after the compaction started. Returns the events and the exit code."""
    pid, events_file, stderr_file = zygote.fork(script, [mode, str(index), str(library), str(total)])
    while not events_file.exists():
        time.sleep(0.002)
    events, done, exited, buffer = [], 0, False, b""
    with open(events_file, "rb") as reader:
        while True:
            chunk = reader.read()
            if not chunk:
                if exited:
                    break
                exited = not _alive(pid)  # one more read after it is gone: all it wrote is in the file
                time.sleep(0.002)
                continue
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")  # a half line stays in the buffer until the rest comes
            for line in lines:
                events.append(json.loads(line))
                if kill is None:
                    continue
                if events[-1][0] == "done":
                    done += 1
                if (kill[0] == "commit" and events[-1][0] == "done" and done == kill[1]) or \
                        (kill[0] == "finishing" and events[-1][0] == "finishing"):
                    time.sleep(kill[-1])
                    os.kill(pid, signal.SIGKILL)
                    kill = None
        # the loop read on past the kill: what it reported before it died is all there
    code = zygote.exit_code(pid)
    return events, code, stderr_file.read_text(errors="replace")


def _alive(pid) -> bool:
    """Still running (not yet a zombie waiting for the zygote to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _committed(events):
    """(paths whose commit returned, paths of a commit begun and never reported done, landed in compaction)."""
    returned, pending = set(), None
    for event in events:
        if event[0] == "begin":
            pending = event[2]
        elif event[0] == "done":
            returned.update(pending)
            pending = None
    in_compaction = any(e[0] == "finishing" for e in events) and not any(e[0] == "finished" for e in events)
    return returned, set(pending or ()), in_compaction


def _held(index, captions: bool):
    store = Store.open(index)  # the index opens after every kill
    if captions:
        found = [row["path"] for row in store._captions.rows()]
        versions = len(store.captions_table().list_versions()) if hasattr(store, "captions_table") else None
    else:
        table = store.images("clip")
        found = table.column("path").to_pylist()
        versions = len(table.table.list_versions())
    return found, versions


def _series(zygote, tmp_path, mode, trials, total, rng, kills, captions=False, table=None, setup=None):
    """``trials`` killed runs of ``mode`` on one index, each resuming the last, then one that completes it."""
    index = tmp_path / f"idx_{mode}"
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    if setup:
        setup(zygote, script, index, tmp_path, total)
    held = set()
    for trial in range(trials):
        kill = kills(trial, len(held))
        events, code, stderr = _run(zygote, script, mode, index, tmp_path, total, kill)
        returned, in_flight, in_compaction = _committed(events)
        found, versions = _held(index, captions)
        row = {"writer": mode, "kill": (f"commit {kill[1]} +{kill[2] * 1000:.0f} ms" if kill[0] == "commit" else
                                        f"compaction +{kill[1] * 1000:.0f} ms"),
               "exit": code, "returned": len(held | returned), "in_flight": len(in_flight),
               "found": len(found), "dupes": len(found) - len(set(found)),
               "in_flight_landed": "-" if not in_flight else ("all" if in_flight <= set(found) else "none"),
               "in_compaction": in_compaction, "versions": versions}
        table.append(row)
        assert code == -signal.SIGKILL, (row, stderr[-2000:])
        assert row["dupes"] == 0, row
        # exactly the rows whose commit returned, and of the commit in flight all or nothing
        assert set(found) in (held | returned, held | returned | in_flight), row
        held = set(found)
    events, code, stderr = _run(zygote, script, mode, index, tmp_path, total)
    found, versions = _held(index, captions)
    assert code == 0 and events[-1] == ["exit"], stderr[-2000:]
    assert sorted(found) == [f"img/{i:05d}.jpg" for i in range(total)], "the next run did not complete the library"
    table.append({"writer": mode, "kill": "none (completes)", "exit": code, "returned": total, "in_flight": 0,
                  "found": len(found), "dupes": len(found) - len(set(found)), "in_flight_landed": "-",
                  "in_compaction": False, "versions": versions})
    assert versions in (None, 1), "the completing run left old versions"


def _print_table(rows):
    header = ("writer", "kill", "exit", "returned", "in_flight", "found", "dupes", "in_flight_landed",
              "in_compaction", "versions")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in header]
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(str(r[h]).ljust(w) for h, w in zip(header, widths)))
    killed = [r for r in rows if r["exit"] != 0]
    print(f"{len(killed)} kills: {sum(r['in_flight'] > 0 for r in killed)} with a commit in flight "
          f"({sum(r['in_flight_landed'] == 'all' for r in killed)} landed whole, "
          f"{sum(r['in_flight_landed'] == 'none' for r in killed)} not at all), "
          f"{sum(r['in_compaction'] for r in killed)} inside the compaction; "
          f"{sum(r['dupes'] for r in rows)} duplicates; every index opened")


def _caption_setup(zygote, script, index, library, total):
    events, code, stderr = _run(zygote, script, "index", index, library, total)
    assert code == 0, stderr[-2000:]


def _trials(zygote, tmp_path, rng, index_trials, caption_trials, compact_trials, total=480):
    tmp_path.mkdir(parents=True, exist_ok=True)
    rows = []

    def index_kill(trial, held):
        """After a random one of the first commits this run has left (the runs resume), or, in the last
        trial (or once fewer than two commits are left), inside its compaction."""
        left = -(-(total - held) // 32)
        if trial == index_trials - 1 or left < 2:
            return ("finishing", rng.uniform(0, 0.05))
        return ("commit", rng.randint(1, min(left - 1, 3)), rng.uniform(0, 0.03))

    _series(zygote, tmp_path, "index", index_trials, total, rng, table=rows, kills=index_kill)
    _series(zygote, tmp_path, "caption", caption_trials, 8 * 3 * caption_trials + 48, rng, table=rows,
            captions=True, setup=_caption_setup, kills=lambda t, held: ("commit", rng.randint(1, 3),
                                                                        rng.uniform(0, 0.03)))
    _series(zygote, tmp_path, "compact", compact_trials, 120 * (compact_trials + 1), rng, table=rows,
            kills=lambda t, held: ("finishing", rng.uniform(0, 0.02)))
    _print_table(rows)
    return rows


@pytest.mark.unit
def test_kill_9_at_random_moments_of_index_caption_and_compaction_loses_no_returned_commit(tmp_path, zygote):
    rng = random.Random(2020)
    rows = _trials(zygote, tmp_path, rng, index_trials=8, caption_trials=6, compact_trials=6)
    killed = [r for r in rows if r["exit"] != 0]
    assert len(killed) == 20
    # the kills fell where they must for the trials to mean something: some inside a compaction
    assert any(r["in_compaction"] for r in killed)


@pytest.mark.slow
def test_kill_9_trials_many_more_and_the_real_commands_with_toy_models(tmp_path, zygote):
    rng = random.Random(int(os.environ.get("CH09_CRASH_SEED", "7")))
    rows = _trials(zygote, tmp_path / "fake", rng, index_trials=20, caption_trials=15, compact_trials=15)
    assert len([r for r in rows if r["exit"] != 0]) == 50
    # the commands' own code: build_index and caption_index with the toy models, killed after random commits
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path / "library", n=96, seed=9, split="heldout")
    real = []
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    index = tmp_path / "real_idx"
    for mode, captions, trials in (("real-index", False, 4), ("real-caption", True, 4)):
        held = set()
        for _ in range(trials):
            kill = ("commit", rng.randint(1, 3), rng.uniform(0, 0.05))
            events, code, stderr = _run(zygote, script, mode, index, library, 0, kill)
            returned, in_flight, in_compaction = _committed(events)
            found, versions = _held(index, captions)
            real.append({"writer": mode, "kill": f"commit {kill[1]} +{kill[2] * 1000:.0f} ms", "exit": code,
                         "returned": len(held | returned), "in_flight": len(in_flight), "found": len(found),
                         "dupes": len(found) - len(set(found)), "in_compaction": in_compaction,
                         "in_flight_landed": "-" if not in_flight else ("all" if in_flight <= set(found) else "none"),
                         "versions": versions})
            if code == 0:  # on a fast machine the resumed run can finish before its k-th commit: nothing to kill
                assert len(found) == len(set(found)) == 96, (real[-1], stderr[-2000:])
                break
            assert code == -signal.SIGKILL and real[-1]["dupes"] == 0, (real[-1], stderr[-2000:])
            assert set(found) in (held | returned, held | returned | in_flight), real[-1]
            held = set(found)
        assert any(row["exit"] == -signal.SIGKILL for row in real if row["writer"] == mode), real  # some kill landed
        events, code, stderr = _run(zygote, script, mode, index, library, 0)
        assert code == 0, stderr[-2000:]
        found, versions = _held(index, captions)
        assert len(found) == len(set(found)) == 96
        real.append({"writer": mode, "kill": "none (completes)", "exit": 0, "returned": 96, "in_flight": 0,
                     "found": 96, "dupes": 0, "in_flight_landed": "-", "in_compaction": False, "versions": versions})
    _print_table(real)
