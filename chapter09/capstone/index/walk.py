"""The library's files: a walk that never opens what it lists, and the exclude globs that leave folders out."""
from __future__ import annotations

import errno
import fnmatch
import os
from pathlib import Path
from stat import S_ISBLK, S_ISCHR, S_ISDIR, S_ISFIFO, S_ISREG, S_ISSOCK

from ...errors import UsageError

# Folders (or files) a photo library holds that are not photos: a NAS's thumbnail folders (Synology @eaDir),
# version control, JavaScript packages, Windows' recycle bin, desktop thumbnail caches. `--exclude` adds more;
# `--no-default-excludes` drops these. (Hidden entries, .git and .thumbnails among them, are skipped anyway.)
DEFAULT_EXCLUDES = ("@eaDir", ".git", "node_modules", "$RECYCLE.BIN", ".thumbnails")
EXCLUDED_LISTED = 50  # excluded folders named in the summary; the count is always exact


def is_excluded(relative, patterns) -> bool:
    """Whether ``relative`` (a path inside the library) or one of its folders matches a glob of ``patterns``.

    Each pattern is matched against every component's name (``@eaDir`` anywhere) and against the relative
    path up to it (``2019/raw``, ``*/cache/*``), case-insensitively (libraries move between file systems
    that differ in case: ``$Recycle.Bin``).
    """
    if not patterns:
        return False
    parts = Path(relative).parts
    return any(matches_pattern(parts[depth], "/".join(parts[:depth + 1]), patterns) for depth in range(len(parts)))


def matches_pattern(name: str, relative: str, patterns) -> bool:
    """One walked entry against the (lower-cased) globs: its name, or its path inside the library."""
    name, relative = name.lower(), relative.lower()
    return any(fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(relative, pattern) for pattern in patterns)


def exclude_patterns(extra=(), defaults: bool = True) -> tuple[str, ...]:
    """The globs a run leaves out (lower-cased, as ``is_excluded`` compares): the defaults unless turned off,
    then ``extra`` (``--exclude``, repeatable)."""
    patterns = [*(DEFAULT_EXCLUDES if defaults else ()), *(extra or ())]
    for pattern in patterns:
        if not str(pattern).strip():
            raise UsageError("--exclude needs a pattern (a glob such as '@eaDir' or 'raw/*'), not an empty string")
    return tuple(dict.fromkeys(str(p).strip().strip("/").lower() for p in patterns))


def more_files_than(root: Path, limit: int) -> bool:
    """Whether ``root`` holds more than ``limit`` files (hidden entries skipped), stopping as soon as it knows: a
    cheap size check before the full walk (``walk_library``), which a large library makes slow."""
    count = 0
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not name.startswith(".")]
        count += sum(1 for name in files if not name.startswith("."))
        if count > limit:
            return True
    return False


def walk_library(root: Path, exclude: Path | None = None, skipped: list | None = None, patterns=(),
                 excluded: list | None = None) -> list[Path]:
    """Every regular file under ``root`` (recursively, hidden entries and ``exclude`` skipped), sorted, relative to ``root``.

    ``patterns``: globs (``is_excluded``) of folders and files left out; a folder matching one is not entered.
    What they left out goes to ``excluded`` (relative paths: folders with a trailing ``/``) when it is given.

    Entries are only ``stat``-ed here, never opened, so a named pipe, a socket or a device (reading one can
    block forever) is never read: those, broken and looping symlinks, unreadable folders and names that are
    not UTF-8 go to ``skipped`` ({"path", "reason"}) when it is given. A symlinked folder is followed once: a
    folder reached again (a loop, or a second link to it) is skipped. Iterative, so no depth is too deep.
    """
    found = []
    note = skipped.append if skipped is not None else (lambda entry: None)
    root = Path(root)
    exclude = Path(exclude).resolve() if exclude is not None else None
    top = os.stat(root)
    seen, stack = {(top.st_dev, top.st_ino)}, [Path()]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(root / folder) as entries:
                names = sorted(entry.name for entry in entries)
        except OSError as error:
            note({"path": printable(folder), "reason": f"folder not readable ({error.strerror}): skipped"})
            continue
        for name in names:
            relative = folder / name
            if name.startswith("."):
                continue
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                note({"path": printable(relative), "reason": "file name is not valid UTF-8: rename it to index it"})
                continue
            path = root / relative
            if patterns and matches_pattern(name, relative.as_posix(), patterns):  # its folders passed when walked
                if excluded is not None:
                    excluded.append(printable(relative) + ("/" if os.path.isdir(path) else ""))
                continue
            try:
                info = os.stat(path)  # follows a symlink; opens nothing
            except OSError as error:
                reason = ("a symlink loop" if error.errno == errno.ELOOP else
                          "a broken symlink" if os.path.islink(path) else f"cannot be read ({error.strerror})")
                note({"path": printable(relative), "reason": f"{reason}: skipped"})
                continue
            if S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) in seen:
                    note({"path": printable(relative),
                          "reason": "a folder already walked (a symlink loop, or a second link to it): not followed again"})
                elif exclude is None or path.resolve() != exclude:
                    seen.add((info.st_dev, info.st_ino))
                    stack.append(relative)
            elif S_ISREG(info.st_mode):
                found.append(relative)
            else:
                note({"path": printable(relative), "reason": f"not a regular file ({file_kind(info.st_mode)}): never opened"})
    return sorted(found)


def file_kind(mode: int) -> str:
    """What a non-regular directory entry is, in words."""
    for test, kind in ((S_ISFIFO, "a named pipe"), (S_ISSOCK, "a socket"), (S_ISCHR, "a character device"),
                       (S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "an unknown kind of entry"


def printable(relative) -> str:
    """A path as text that prints and serialises anywhere (bytes that are not UTF-8 shown as \\xNN)."""
    return os.fsencode(str(relative)).decode("utf-8", "backslashreplace")

