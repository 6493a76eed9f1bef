"""The index's writer lock: an exclusive ``flock`` on ``INDEX/.lock``, one writer at a time.

The kernel releases a ``flock`` when its holder dies, even by ``kill -9``, so a killed run never
leaves a stale lock behind. Readers never take it.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from .errors import IndexLockedError, file_system_error, log

LOCK_NAME = ".lock"


class IndexLock:
    """An exclusive ``flock`` on ``INDEX/.lock``: one writer at a time, released by the kernel on death.

    ``wait_s``: how long to wait for another holder (0: refuse at once). The file carries the
    holder's pid, host and start time so the refusal can say who has it.
    """

    def __init__(self, index_dir: str | os.PathLike, wait_s: float = 0.0):
        self.path = Path(index_dir) / LOCK_NAME
        self.wait_s = wait_s
        self.fd: int | None = None

    def holder(self) -> str:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            data = {}
        if not data:
            return "another process"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.get("since", 0)))
        return f"pid {data.get('pid')} on {data.get('host')}, since {since}"

    def acquire(self) -> "IndexLock":
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise self._refused(error) from None
        deadline, told = time.monotonic() + self.wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    waited = f" after waiting {self.wait_s:g} s" if self.wait_s else ""
                    raise IndexLockedError(
                        f"index {self.path.parent} is being updated by another run ({self.holder()}){waited}; "
                        "nothing was written. Wait for it to finish, or pass --wait SECONDS to queue behind it") \
                        from None
                if not told:
                    log(f"index {self.path.parent} is being updated by another run ({self.holder()}); "
                        f"waiting up to {self.wait_s:g} s for it to finish")
                    told = True
                time.sleep(0.2)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(),
                      0)
        except OSError as error:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise self._refused(error) from None
        self.fd = fd
        return self

    def _refused(self, error: OSError) -> BaseException:
        """A read-only or full index folder, said so; any other failure to take the lock stays as it is."""
        return file_system_error(self.path.parent, error, "taking the write lock")

    def release(self) -> None:
        import fcntl

        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
