"""Thumbnails for the web UI: made once per image content, cached in the index folder.

``INDEX/thumbnails/<sha1 of the file>-<size>-<name>.jpg``, at most ``SIZE`` pixels on the long
edge, upright (EXIF orientation applied; HEIC/AVIF read like JPEG). The key is the file's
content hash (sha1), computed once per process for a given path, size and modification time
(or taken from an index row passed as ``record`` while the file still matches it), so an
edited photo gets a new thumbnail rather than the stale one, and a copy of a photo shares
its thumbnail. Written atomically (temporary file, then rename), so two requests making the
same thumbnail at once both end with a whole file. A video's thumbnail is the frame at a moment
(``time_s``, default its first frame), decoded with PyAV and keyed by the video's sha1 and that moment.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ...images import file_sha1, load_image
from ..index.video import is_video, read_frame

SIZE = 256
QUALITY = 85
FOLDER = "thumbnails"


_HASHED: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha1, for files the index row lacks


def content_key(path: Path, record: dict | None = None) -> str:
    """The file's sha1: the index's, while the file is as indexed (same size and mtime); else hashed
    (once per process for a given path, size and modification time)."""
    stat = path.stat()
    if record and record.get("sha1") and stat.st_size == record.get("size") and \
            stat.st_mtime_ns == record.get("mtime_ns"):
        return str(record["sha1"])
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = file_sha1(path)
    return _HASHED[key]


def thumbnail_path(index_dir: str | Path, source: Path, key: str, size: int = SIZE) -> Path:
    stem = re.sub(r"[^\w.-]+", "_", source.stem)[:60] or "image"
    return Path(index_dir) / FOLDER / f"{key}-{size}-{stem}.jpg"


def frame_content_key(path: Path, record: dict | None = None, time_s: float | None = None) -> str:
    """``content_key``, and for a video the moment its frame is shown at (a thumbnail per frame)."""
    key = content_key(path, record)
    return f"{key}-t{time_s or 0.0:.2f}" if is_video(path) else key


def ensure_thumbnail(index_dir: str | Path, source: str | Path, record: dict | None = None,
                     size: int = SIZE, time_s: float | None = None) -> Path:
    """The cached thumbnail of ``source`` (a video: of its frame at ``time_s``; made now if missing); raises
    BadImageError for a bad file."""
    source = Path(source)
    target = thumbnail_path(index_dir, source, frame_content_key(source, record, time_s), size)
    if target.exists():
        return target
    image = read_frame(source, time_s or 0.0, size) if is_video(source) else load_image(source, min_side=size)
    image.thumbnail((size, size))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".thumb-", suffix=".jpg", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            image.save(out, "JPEG", quality=QUALITY, optimize=True)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
