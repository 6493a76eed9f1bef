"""Metadata stored at index time (capture time, camera, format, original size) and old tables brought up to it."""
import calendar
import os
import time

import numpy as np
import pytest
from PIL import Image

from chapter09.capstone.index.build import build_index
from chapter09.capstone.index.metadata import exif_time
from chapter09.capstone.store.database import Store
from chapter09.capstone.store.tables import METADATA_COLUMNS
from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TAKEN = "2019:07:04 13:45:10"
TAKEN_S = calendar.timegm((2019, 7, 4, 13, 45, 10, 0, 0, 0))


@pytest.fixture(scope="module")
def toy_clip():
    from chapter09.clip import clip_encoder

    return clip_encoder("clip", Settings("toy"))


def exif(make=None, model=None, taken=None, orientation=None, digitized=None):
    data = Image.Exif()
    for tag, value in ((0x010F, make), (0x0110, model), (0x0112, orientation)):
        if value is not None:
            data[tag] = value
    for tag, value in ((0x9003, taken), (0x9004, digitized)):
        if value is not None:
            data.get_ifd(0x8769)[tag] = value
    return data


def photo(path, size=(64, 48), seed=0, **save):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **save)
    return path


def library(root):
    """Photos whose metadata is known: what each must be stored as (width, height as shown)."""
    mtime = 1_600_000_000
    expected = {}
    photo(root / "cam/a.jpg", (800, 600), exif=exif("Canon", "EOS 5D\x00", TAKEN, orientation=1).tobytes())
    expected["cam/a.jpg"] = (TAKEN_S, "exif", "Canon", "EOS 5D", "jpeg", 800, 600)
    photo(root / "cam/turned.jpg", (800, 600), seed=1, exif=exif("NIKON", "D750", TAKEN, orientation=6).tobytes())
    expected["cam/turned.jpg"] = (TAKEN_S, "exif", "NIKON", "D750", "jpeg", 600, 800)  # shown upright: portrait
    photo(root / "cam/digitized.webp", seed=2, exif=exif(digitized="2001:02:03 04:05:06").tobytes())
    expected["cam/digitized.webp"] = (calendar.timegm((2001, 2, 3, 4, 5, 6, 0, 0, 0)), "exif", None, None, "webp",
                                      64, 48)
    photo(root / "no_clock.jpg", seed=3, exif=exif("Acme", "", "0000:00:00 00:00:00").tobytes())
    expected["no_clock.jpg"] = (mtime, "file", "Acme", None, "jpeg", 64, 48)  # a camera whose clock was never set
    photo(root / "scan.png", (30, 20), seed=4)
    expected["scan.png"] = (mtime, "file", None, None, "png", 30, 20)
    photo(root / "anim.gif", seed=5)
    expected["anim.gif"] = (mtime, "file", None, None, "gif", 64, 48)
    for path in expected:
        os.utime(root / path, (mtime, mtime))
    return expected


DATE_CAMERA_FORMAT = METADATA_COLUMNS[:5]  # the GPS columns have their own tests (test_capstone_places)


def stored(index):
    rows = Store.open(index).images("clip").records(("path", *DATE_CAMERA_FORMAT, "width", "height"))
    return {r["path"]: tuple(r[c] for c in (*DATE_CAMERA_FORMAT, "width", "height")) for r in rows}


@pytest.mark.unit
def test_exif_times_read_as_utc_wall_clock_and_blank_ones_refused():
    assert exif_time(TAKEN) == TAKEN_S and exif_time(TAKEN.encode() + b"\x00") == TAKEN_S
    assert exif_time("2019-07-04T13:45:10") == TAKEN_S  # as some tools rewrite it
    for blank in (None, "", "    :  :     :  :  ", "0000:00:00 00:00:00", "2019:13:01 00:00:00", "garbage"):
        assert exif_time(blank) is None, blank


def test_index_stores_capture_time_camera_format_and_original_size(tmp_path, toy_clip):
    expected = library(tmp_path / "lib")
    summary = build_index(tmp_path / "lib", tmp_path / "idx", {"clip": toy_clip}, progress=False, workers=0)
    assert summary.added == len(expected) and not summary.failed
    assert stored(tmp_path / "idx") == expected


def test_an_old_table_gets_the_columns_and_the_next_run_fills_them_from_headers_without_encoding(tmp_path, toy_clip):
    import lancedb

    expected = library(tmp_path / "lib")
    for i in range(40):  # enough rows to time the header reads against the encoding
        photo(tmp_path / "lib" / "more" / f"{i:02d}.jpg", (640, 480), seed=10 + i, quality=90)
        os.utime(tmp_path / "lib" / "more" / f"{i:02d}.jpg", (1_600_000_000, 1_600_000_000))
        expected[f"more/{i:02d}.jpg"] = (1_600_000_000, "file", None, None, "jpeg", 640, 480)
    started = time.time()
    build_index(tmp_path / "lib", tmp_path / "idx", {"clip": toy_clip}, progress=False, workers=0)
    encode_s = time.time() - started
    store = Store.open(tmp_path / "idx")
    name = store.images("clip").name
    paths, vectors = store.images("clip").vectors()
    before = dict(zip(paths, vectors))
    lancedb.connect(tmp_path / "idx").open_table(name).drop_columns(list(METADATA_COLUMNS))  # as an old index
    old = Store.open(tmp_path / "idx").images("clip")
    assert not old.has_metadata and len(old.catalog()) == len(expected)  # read-only: still readable, not changed
    assert "taken_s" not in lancedb.connect(tmp_path / "idx").open_table(name).schema.names

    class Refuses:
        def __getattr__(self, attr):
            return getattr(toy_clip, attr)

        def encode_pixels(self, pixels):
            raise AssertionError("filling metadata encoded an image")

    summary = build_index(tmp_path / "lib", tmp_path / "idx", {"clip": Refuses()}, progress=False, workers=0)
    assert summary.metadata_filled == len(expected) and summary.unchanged == len(expected)
    print(f"metadata filled for {len(expected)} rows in {summary.metadata_s:.2f} s "
          f"(headers only); indexing them took {encode_s:.2f} s")
    assert stored(tmp_path / "idx") == expected
    paths, vectors = Store.open(tmp_path / "idx").images("clip").vectors()
    assert all(np.array_equal(before[p], v) for p, v in zip(paths, vectors))
    again = build_index(tmp_path / "lib", tmp_path / "idx", {"clip": Refuses()}, progress=False, workers=0)
    assert again.metadata_filled == 0 and again.unchanged == len(expected)
