"""What the index stores about a photo beside its vector: capture time, camera, format, shown size, GPS position
(EXIF). The position's place name is looked up later, for a whole run at once (``index.places``)."""
from __future__ import annotations

import calendar
import math
import re
from pathlib import Path

from PIL import Image

from ..store.tables import METADATA_COLUMNS, PLACE_COLUMNS, POSITION_COLUMNS

EXIF_IFD, EXIF_MAKE, EXIF_MODEL, EXIF_ORIENTATION = 0x8769, 0x010F, 0x0110, 0x0112
EXIF_DATETIME_ORIGINAL, EXIF_DATETIME_DIGITIZED = 0x9003, 0x9004
GPS_IFD, GPS_LATITUDE_REF, GPS_LATITUDE, GPS_LONGITUDE_REF, GPS_LONGITUDE = 0x8825, 1, 2, 3, 4
NO_POSITION = float("nan")  # lat/lon of a photo read without a GPS position (null: never read for one)
_EXIF_TIME = re.compile(r"\s*(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
NO_METADATA = {"taken_s": 0, "taken_from": "", "camera_make": "", "camera_model": "", "format": "",
               "lat": NO_POSITION, "lon": NO_POSITION}
TEXT_METADATA = ("taken_from", "camera_make", "camera_model", "format")  # '' for unknown while decoded, null stored
STORED_METADATA = (*METADATA_COLUMNS, "width", "height")  # what a photo's header fills in an images table


def exif_time(value) -> int | None:
    """EXIF 'YYYY:MM:DD HH:MM:SS' as seconds since the epoch, the wall-clock read as UTC (EXIF rarely says its
    zone; a date filter on the day a photo shows then matches it); None for a blank or impossible date
    ('0000:00:00 00:00:00', as cameras without a clock write)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _EXIF_TIME.match(str(value)) if value else None
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61 and year >= 1826):
        return None  # 1826: the oldest surviving photograph; anything before is a clock never set
    try:
        return calendar.timegm((year, month, day, hour, minute, min(second, 59), 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def _exif_text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).replace("\x00", "").strip() if value is not None else ""


def _degrees(value, ref, positive: str, negative: str, limit: float) -> float | None:
    """EXIF GPS degrees, minutes, seconds (three rationals; some writers give one decimal number) and the
    hemisphere reference -> signed decimal degrees; None for anything malformed (zero denominators, a wrong
    count, a ref that is neither letter, out of range)."""
    try:
        parts = [float(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not 1 <= len(parts) <= 3 or not all(math.isfinite(p) and p >= 0 for p in parts):
        return None
    degrees = sum(p / 60 ** i for i, p in enumerate(parts))
    ref = _exif_text(ref).upper()[:1]
    if ref not in (positive, negative) or degrees > limit:
        return None
    return -degrees if ref == negative else degrees


def gps_position(exif) -> tuple[float, float] | None:
    """(lat, lon) in decimal degrees from a Pillow ``Exif``'s GPS IFD; None when it has none or a malformed one
    (and for exactly 0, 0: what cameras without a fix write)."""
    try:
        gps = exif.get_ifd(GPS_IFD)
        lat = _degrees(gps.get(GPS_LATITUDE), gps.get(GPS_LATITUDE_REF), "N", "S", 90.0)
        lon = _degrees(gps.get(GPS_LONGITUDE), gps.get(GPS_LONGITUDE_REF), "E", "W", 180.0)
    except Exception:  # a malformed GPS block: no position, the photo is still indexed
        return None
    if lat is None or lon is None or (lat == 0 and lon == 0):
        return None
    return lat, lon


def photo_metadata(image, mtime_ns: int) -> dict:
    """What the index stores about a photo beside its vector, from an opened (not yet decoded) Pillow image:
    capture time (EXIF DateTimeOriginal, else DateTimeDigitized, else the file's mtime; ``taken_from`` says
    which), camera make and model ('' when unknown), Pillow's format lower-cased, and the original pixel size
    as it is shown (width and height swapped when EXIF orientation turns it by 90 degrees). Reads only what
    Pillow parsed from the header; a broken EXIF block counts as none (the photo is still indexed). ``lat`` and
    ``lon``: the EXIF GPS position, NaN when there is none (``gps_position``)."""
    try:
        exif = image.getexif()
        sub = exif.get_ifd(EXIF_IFD)
    except Exception:  # a malformed EXIF block (seen in the wild): the pixels may still be fine
        exif, sub = {}, {}
    taken = exif_time(sub.get(EXIF_DATETIME_ORIGINAL)) or exif_time(sub.get(EXIF_DATETIME_DIGITIZED))
    position = gps_position(exif) if exif else None
    width, height = image.size
    if exif.get(EXIF_ORIENTATION) in (5, 6, 7, 8):
        width, height = height, width
    return {"taken_s": taken if taken is not None else int(mtime_ns // 1_000_000_000),
            "taken_from": "exif" if taken is not None else "file",
            "camera_make": _exif_text(exif.get(EXIF_MAKE)), "camera_model": _exif_text(exif.get(EXIF_MODEL)),
            "format": (image.format or "").lower(), "width": width, "height": height,
            "lat": position[0] if position else NO_POSITION, "lon": position[1] if position else NO_POSITION}


def header_metadata(path: Path, mtime_ns: int) -> dict | None:
    """``photo_metadata`` of a file without decoding it (Pillow reads the header): for rows indexed before the
    metadata columns, and copies whose source row lacks them. None if the file does not open as an image."""
    try:
        with Image.open(path) as image:
            return photo_metadata(image, mtime_ns)
    except Exception:
        return None


def metadata_row(item: dict) -> dict:
    """The metadata columns of one decoded item as stored: '' (the worker's 'unknown', which crosses Ray's
    columns as a string) becomes null; lat/lon as read (NaN: read, no position), the place columns null (named
    after the run's rows are written, ``index.places.fill_places``)."""
    read = bool(item.get("taken_from"))
    return {"taken_s": int(item.get("taken_s") or 0) if read else None,
            **{key: (item.get(key) or None) for key in TEXT_METADATA},
            **{key: float(item.get(key, NO_POSITION)) if read else None for key in POSITION_COLUMNS},
            **dict.fromkeys(PLACE_COLUMNS)}

