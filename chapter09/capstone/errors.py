"""The index's errors and its log line, below ``store``, ``lock`` and ``vectors``, which all raise and report them.

A write that the file system refuses (a full disk, a read-only mount, no permission) reaches us
either as an ``OSError`` (Python's own writes: the lock file, thumbnails, the ANN cache) or as
LanceDB's ``RuntimeError("lance error: LanceError(IO): No space left on device (os error 28), <a
path into its Rust sources>")``. ``write_errno`` reads the errno from either; ``store`` turns the
two kinds a user can fix into ``IndexFullError`` and ``IndexReadOnlyError``, whose messages name
the folder, what is kept and what to do next.
"""
from __future__ import annotations

import errno
import re
import shutil
import sys
from pathlib import Path

from ..errors import ChapterError

FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_OS_ERROR = re.compile(r"os error (\d+)")


class StoreError(ChapterError, RuntimeError):
    """The index cannot be used as asked; the message says why and what to do."""


class IndexLockedError(StoreError):
    """Another run holds the index's write lock."""


class IndexReadOnlyError(StoreError):
    """The index folder cannot be written (read-only file system, no permission); reading it still works."""


class IndexFullError(StoreError):
    """The disk holding the index filled up during a write; what was committed before is intact."""


def log(message: str) -> None:
    """A note about the index for the person running the command (stderr, so ``--json`` output stays clean)."""
    print(f"[store] {message}", file=sys.stderr)


def write_errno(error: BaseException) -> int | None:
    """The errno behind a failed write: an OSError's own, or the ``(os error N)`` LanceDB's message carries."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    if isinstance(error, (OSError, RuntimeError)):
        found = _OS_ERROR.search(str(error))
        if found:
            return int(found.group(1))
    return None


def megabytes(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.0f} kB"


def free_space(folder: str | Path) -> str:
    """'12.3 MB free of 2,000.0 MB' for the file system holding ``folder`` (or its nearest existing parent)."""
    path = Path(folder)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return "free space unknown"
    return f"{megabytes(usage.free)} free of {megabytes(usage.total)}"


def read_only_error(location: str | Path, error: BaseException, doing: str) -> IndexReadOnlyError:
    why = "a read-only file system" if write_errno(error) == errno.EROFS else "no permission to write there"
    target = getattr(error, "filename", None)
    where = f" at {target}" if target else ""
    return IndexReadOnlyError(
        f"index {location} is read-only ({why}: {doing} was refused{where}); this write changed nothing. "
        f"search, serve and dedup work on it as it is; to update it (index, caption --index), make the folder "
        f"writable, or copy it somewhere writable (cp -r {location} NEW) and pass --index NEW")


def full_error(location: str | Path, doing: str, kept: str, needed: int | None = None) -> IndexFullError:
    need = f"; this write needed about {megabytes(needed)}" if needed else ""
    return IndexFullError(
        f"the disk holding index {location} is full while {doing} ({free_space(location)}{need}). "
        f"Kept: {kept}; nothing after it was half-written. Free some space (or move the index to a bigger "
        f"disk) and run the same command again: it continues from there")


def file_system_error(location: str | Path, error: BaseException, doing: str,
                      kept=lambda: "the index as the last run left it", needed: int | None = None) -> BaseException:
    """A full or read-only file system behind ``error`` in words (IndexFullError / IndexReadOnlyError);
    any other error is handed back as it is. ``kept()`` says what the index still holds (asked only
    for a full disk); ``needed``: about how many bytes the write was adding, when known."""
    code = write_errno(error)
    if code in READ_ONLY_ERRNOS:
        return read_only_error(location, error, doing)
    if code in FULL_ERRNOS:
        return full_error(location, doing, kept(), needed)
    return error
