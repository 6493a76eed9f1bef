"""The index's errors and its log line, below ``store``, ``lock`` and ``vectors``, which all raise and report them."""
from __future__ import annotations

import sys

from ..errors import ChapterError


class StoreError(ChapterError, RuntimeError):
    """The index cannot be used as asked; the message says why and what to do."""


class IndexLockedError(StoreError):
    """Another run holds the index's write lock."""


def log(message: str) -> None:
    """A note about the index for the person running the command (stderr, so ``--json`` output stays clean)."""
    print(f"[store] {message}", file=sys.stderr)
