"""Where an index lives: a local folder, or an object store named by a URI (``s3://bucket/prefix``).

One owner for the question, importable by every module of the capstone (it imports none of them): the store,
its lock and the caption search ask it alike.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def is_uri(location: str | os.PathLike) -> bool:
    """True for an object-store index (``scheme://...``), False for a folder."""
    return "://" in str(location)


def local_side_folder(location: str, kind: str) -> Path:
    """The local folder of a URI index's side files of one ``kind`` (``ann``, ``serve``, ``precision``):
    ``$XDG_CACHE_HOME/chapter09/KIND/<sha1 of the URI>`` (``~/.cache/...``). LanceDB writes the tables to
    the object store; these files are caches a machine rebuilds, so they stay on the machine using them."""
    digest = hashlib.sha1(str(location).encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "chapter09" / kind / digest
