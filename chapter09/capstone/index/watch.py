"""``index --watch``: keep an index current while photos are added, changed, moved and deleted.

File-system events (``watchdog``: inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows)
only say *that* something under the library changed; each batch is then an ordinary incremental
``build_index`` run, which walks the library and compares it with the index (a stat per file, no read
of an unchanged photo), so a batch is exactly what a manual `index` would do: moves and copies keep
their vectors, excludes apply, broken files are reported. Events are batched: a batch starts once the
library has been quiet for ``debounce_s`` (a folder copied in is one batch, not a thousand), or after
``MAX_DELAY_S`` of unbroken events. The index's lock is held only while a batch writes, so `search` and
`serve` read between batches and a second `index` is refused (or waits with ``--wait``) as it is
against any run. A full rescan every ``rescan_s`` seconds catches what events miss (network file
systems deliver none for changes made on another machine); when watchdog cannot start (not installed,
out of inotify watches) rescans are all there is.

Ctrl-C or SIGTERM stops it: between batches at once; inside one, the rows queued so far are committed
(each commit is atomic: what is committed stays) and the next run continues from there.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from ...errors import SetupError, UsageError
from ..errors import IndexLockedError
from ..options import IndexOptions
from ..store.database import is_uri
from .build import build_index
from .walk import is_excluded

DEBOUNCE_S = 2.0  # quiet seconds after the last event before a batch starts
MAX_DELAY_S = 30.0  # a batch starts after this long even if events never stop (a long copy)
RESCAN_S = 600.0  # a full rescan this often when events arrive (they can be missed)
RESCAN_FALLBACK_S = 60.0  # and this often when there are no events to wait for
POLL_S = 0.1  # how often the loop looks at the clock and the events
# Opening or reading a file is no change to it (the indexer reads photos: these would loop forever).
IGNORED_EVENTS = {"opened", "closed_no_write"}


class _Changes:
    """What the event thread hands the main loop: whether something relevant changed, and when last."""

    def __init__(self, root: Path, index_dir: Path | None, patterns: tuple):
        self.root, self.index_dir, self.patterns = root, index_dir, patterns
        self.lock = threading.Lock()
        self.first = self.last = None  # monotonic times of the first and last event since the last batch
        self.count = 0

    def relevant(self, path: str) -> bool:
        if not path:
            return False
        try:
            path = Path(os.fsdecode(path)).resolve()
            relative = path.relative_to(self.root)
        except (ValueError, OSError):
            return False
        if self.index_dir is not None and (path == self.index_dir or self.index_dir in path.parents):
            return False  # the index's own writes (an index inside its library)
        if any(part.startswith(".") for part in relative.parts):
            return False  # hidden entries are never indexed (editors' temporary files among them)
        return not is_excluded(relative, self.patterns)

    def note(self, event) -> None:
        if event.event_type in IGNORED_EVENTS:
            return
        if not (self.relevant(event.src_path) or self.relevant(getattr(event, "dest_path", ""))):
            return
        self.touch()

    def touch(self) -> None:
        """Something changed now (an event, or a batch refused by the lock that must run again)."""
        now = time.monotonic()
        with self.lock:
            self.first = self.first or now
            self.last, self.count = now, self.count + 1

    def due(self, debounce_s: float) -> int:
        """Events waiting for a batch that should start now (0: none, or not quiet long enough yet)."""
        now = time.monotonic()
        with self.lock:
            if self.last is None or (now - self.last < debounce_s and now - self.first < MAX_DELAY_S):
                return 0
            return self.count

    def take(self) -> None:
        """The batch about to start covers every event so far (those arriving during it start the next one)."""
        with self.lock:
            self.first = self.last = None
            self.count = 0


def start_observer(root: Path, changes: _Changes, log):
    """A running watchdog observer feeding ``changes``, or None (said why) when events are unavailable."""
    try:
        from watchdog.events import FileSystemEventHandler  # optional: watchdog
        from watchdog.observers import Observer
    except ImportError:
        log("watchdog is not installed (pip install -r requirements.txt): no file-system events, "
            "so the library is rescanned on a timer instead")
        return None

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            changes.note(event)

    observer = Observer()
    try:
        observer.schedule(Handler(), str(root), recursive=True)
        observer.start()
    except Exception as error:  # e.g. OSError: inotify watch limit reached (fs.inotify.max_user_watches)
        log(f"file-system events could not start on {root} ({type(error).__name__}: {error}); "
            "the library is rescanned on a timer instead")
        return None
    return observer


def _stop_on_sigterm():
    """SIGTERM (systemd, docker stop, kill) ends the watcher as Ctrl-C does; returns the previous handler."""
    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def watch_library(library, index_dir, encoders: dict, options: IndexOptions | None = None, *,
                  debounce_s: float = DEBOUNCE_S, rescan_s: float | None = None, report=None, log=None,
                  stop: threading.Event | None = None, precomputed: dict | None = None) -> int:
    """Index ``library`` into ``index_dir`` now, then again whenever it changes, until Ctrl-C/SIGTERM or ``stop``.

    ``report(summary, batch, reason)`` is called after every batch (reason 'start', 'events' or 'rescan').
    ``rescan_s``: seconds between full rescans (None: ``RESCAN_S`` with events, ``RESCAN_FALLBACK_S`` without;
    0: none, refused when there are no events). ``options`` go to every ``build_index`` run. Returns
    how many batches ran.
    """
    log = log or (lambda message: print(f"[watch] {message}", file=sys.stderr, flush=True))
    report = report or (lambda summary, batch, reason: None)
    stop = stop or threading.Event()
    if debounce_s < 0 or (rescan_s is not None and rescan_s < 0):
        raise UsageError("--debounce-s and --rescan-s must be 0 or more seconds")
    root = Path(library).resolve()
    if not root.is_dir():
        raise NotADirectoryError(f"library {root} is not a folder")
    options = options or IndexOptions()
    if is_uri(index_dir):
        raise UsageError("--watch needs a local index folder: an object-store index has no lock to share with "
                         "search between batches; run `index` on a timer instead")
    index_path = Path(index_dir).resolve()
    patterns = options.patterns
    changes = _Changes(root, index_path, patterns)
    previous = _stop_on_sigterm()
    observer, batches = None, 0

    def run(reason: str, precomputed=None) -> bool:
        nonlocal batches
        try:
            summary = build_index(root, index_dir, encoders, options, precomputed=precomputed)
        except IndexLockedError as error:  # another writer: its run covers the change, or the next batch will
            log(f"{error}; trying again in {max(debounce_s, 1.0):g} s")
            return False
        batches += 1
        report(summary, batches, reason)
        return True

    try:
        observer = start_observer(root, changes, log)  # before the first run: nothing changed during it is lost
        if rescan_s is None:
            rescan_s = RESCAN_S if observer is not None else RESCAN_FALLBACK_S
        if observer is None and not rescan_s:
            raise SetupError("no file-system events here and --rescan-s 0: nothing would ever update the index; "
                             "give --rescan-s SECONDS, or install watchdog (pip install -r requirements.txt)")
        while not run("start", precomputed):
            if stop.wait(max(debounce_s, 1.0)):
                return batches
        log(f"watching {root} ({'file-system events' if observer is not None else 'no events'}; batches after "
            f"{debounce_s:g} s quiet" + (f", a full rescan every {rescan_s:g} s" if rescan_s else "")
            + "); Ctrl-C stops")
        last_run = time.monotonic()
        while not stop.wait(POLL_S):
            if changes.due(debounce_s):
                changes.take()
                if run("events"):
                    last_run = time.monotonic()
                else:
                    changes.touch()
                    stop.wait(max(debounce_s, 1.0))
            elif rescan_s and time.monotonic() - last_run >= rescan_s:
                changes.take()
                run("rescan")
                last_run = time.monotonic()
    except KeyboardInterrupt:
        log("stopping: every committed row stays in the index (a batch cut short continues on the next run)")
    finally:
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return batches


def print_batch(as_json: bool, stream=None):
    """A ``report`` for the command line: one JSON object per line per batch (``--json``), else a few lines."""
    def report(summary, batch, reason):
        out = stream or sys.stdout
        if as_json:
            print(json.dumps({"batch": batch, "reason": reason, **summary.to_json()}, ensure_ascii=False,
                             default=str), file=out, flush=True)
        else:
            print(f"[{time.strftime('%H:%M:%S')}] batch {batch} ({reason}): " + summary.text(), file=out, flush=True)
    return report
