"""Moved, renamed, copied and touched photos keep their vectors and captions (nothing re-encoded); excludes."""
import json
import os
import shutil
import time

import numpy as np
import pytest
from PIL import Image

from chapter09.capstone.index.build import build_index
from chapter09.capstone.index.walk import DEFAULT_EXCLUDES, is_excluded
from chapter09.capstone.store.database import Store
from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class Counting:
    """The toy encoder, counting the images it encodes (the proof that nothing was re-encoded)."""

    def __init__(self, encoder):
        self.encoder, self.encoded = encoder, 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode_pixels(self, pixels):
        self.encoded += len(pixels)
        return self.encoder.encode_pixels(pixels)


@pytest.fixture(scope="module")
def toy_clip():
    from chapter09.clip import clip_encoder

    return clip_encoder("clip", Settings("toy"))


def noise_photos(folder, n, seed=0, side=16):
    """``n`` small PNGs of distinct random pixels (distinct bytes, so each has its own sha1)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")


def by_sha1(index):
    """sha1 -> float32 vector and path -> sha1 of the index's clip table."""
    table = Store.open(index).images("clip")
    sha1 = {r["path"]: r["sha1"] for r in table.records(("path", "sha1"))}
    paths, vectors = table.vectors()
    return {sha1[p]: v.astype(np.float32) for p, v in zip(paths, vectors)}, sha1


def test_moving_1000_indexed_photos_into_new_folders_encodes_none_and_keeps_vectors_and_captions(tmp_path, toy_clip):
    lib, index = tmp_path / "lib", tmp_path / "idx"
    noise_photos(lib / "inbox", 1000)
    clip = Counting(toy_clip)
    first = build_index(lib, index, {"clip": clip}, progress=False, workers=0)
    assert first.added == 1000 and clip.encoded == 1000
    before, sha1_before = by_sha1(index)
    with Store.open(index, write=True) as store:  # captions as `caption --index` writes them
        store.put_captions([{"path": p, "sha1": s, "en": f"photo {p}", "zh": f"照片 {p}"}
                            for p, s in sha1_before.items() if p.endswith("7.png")])
    for i in range(1000):  # into 10 new folders, named by year
        (lib / f"{2010 + i % 10}").mkdir(exist_ok=True)
        os.rename(lib / "inbox" / f"{i:04d}.png", lib / f"{2010 + i % 10}" / f"{i:04d}.png")
    clip.encoded = 0
    started = time.time()
    moved = build_index(lib, index, {"clip": clip}, progress=False, workers=0)
    seconds = time.time() - started
    print(f"moving 1000 indexed photos: {seconds:.2f} s, {clip.encoded} encoded")
    assert clip.encoded == 0, "a moved photo was encoded again"
    report = moved.to_json()
    assert (report["moved"], report["copied"], report["new"], report["changed"], report["removed"]) == (1000, 0, 0, 0, 0)
    assert report["added"] == 0 and report["updated"] == 0 and report["total"] == 1000
    after, sha1_after = by_sha1(index)
    assert sorted(sha1_after) == sorted(f"{2010 + i % 10}/{i:04d}.png" for i in range(1000))
    assert set(after) == set(before)
    for sha1, vector in before.items():
        assert np.array_equal(after[sha1], vector)  # the very vectors, not re-computed ones
    captions = Store.open(index).captions()
    assert len(captions) == 100 and all(p.startswith("20") for p in captions)
    assert captions["2017/0007.png"] == {"en": "photo inbox/0007.png", "zh": "照片 inbox/0007.png"}
    again = build_index(lib, index, {"clip": clip}, progress=False, workers=0)
    assert (again.unchanged, again.moved, clip.encoded) == (1000, 0, 0)


def test_copies_touches_overwrites_and_a_file_moved_to_two_places(tmp_path, toy_clip):
    lib, index = tmp_path / "lib", tmp_path / "idx"
    noise_photos(lib / "a", 6)
    clip = Counting(toy_clip)
    build_index(lib, index, {"clip": clip}, progress=False, workers=0)
    vectors, sha1 = by_sha1(index)
    with Store.open(index, write=True) as store:
        store.put_captions([{"path": p, "sha1": s, "en": p} for p, s in sha1.items()])
    shutil.copy(lib / "a/0000.png", lib / "copy.png")  # a copy: the original stays
    os.utime(lib / "a/0001.png", ns=(1, 10**18))  # touched: only its time changes
    shutil.copy(lib / "a/0003.png", lib / "a/0002.png")  # overwritten with another indexed photo's bytes
    (lib / "b").mkdir()
    shutil.copy(lib / "a/0004.png", lib / "b/x.png")  # 0004 moved to two places: one move, one copy
    os.rename(lib / "a/0004.png", lib / "b/y.png")
    noise_photos(lib / "c", 1, seed=99)  # one truly new photo
    os.remove(lib / "a/0005.png")  # one deleted
    clip.encoded = 0
    summary = build_index(lib, index, {"clip": clip}, progress=False, workers=0)
    assert clip.encoded == 1, "only the new photo is encoded"
    assert (summary.copied, summary.touched, summary.moved, summary.added, summary.removed) == (3, 1, 1, 1, 1)
    after, sha1_after = by_sha1(index)
    assert sha1_after["copy.png"] == sha1["a/0000.png"] and sha1_after["a/0002.png"] == sha1["a/0003.png"]
    assert {sha1_after["b/x.png"], sha1_after["b/y.png"]} == {sha1["a/0004.png"]}
    for path in ("copy.png", "a/0001.png", "a/0002.png", "b/x.png", "b/y.png"):
        assert np.array_equal(after[sha1_after[path]], vectors[sha1_after[path]])
    state = Store.open(index).images("clip").state()
    assert state["a/0001.png"][1] == 10**18  # the touched row carries the new time: unchanged next run
    captions = Store.open(index).captions(with_sha1=True)
    assert captions["copy.png"]["en"] == "a/0000.png" and captions["a/0000.png"]["en"] == "a/0000.png"
    assert captions["a/0002.png"] == {"en": "a/0003.png", "sha1": sha1["a/0003.png"]}  # its old caption went
    assert {captions["b/x.png"]["en"], captions["b/y.png"]["en"]} == {"a/0004.png"}
    assert "a/0004.png" not in captions and "a/0005.png" not in captions and "c/0000.png" not in captions
    again = build_index(lib, index, {"clip": clip}, progress=False, workers=0)
    assert again.unchanged == 8 and clip.encoded == 1


@pytest.mark.unit
def test_exclude_patterns_match_folder_names_and_relative_paths():
    patterns = tuple(p.lower() for p in DEFAULT_EXCLUDES) + ("raw/*", "*.tmp.jpg")
    assert is_excluded("2019/@eaDir/x.jpg", patterns) and is_excluded("$Recycle.Bin/a.jpg", patterns)
    assert is_excluded("node_modules/pkg/logo.png", patterns) and is_excluded("raw/a.jpg", patterns)
    assert is_excluded("trip/b.tmp.jpg", patterns)
    assert not is_excluded("2019/raw/a.jpg", patterns) and not is_excluded("eaDir/a.jpg", patterns)
    assert not is_excluded("a.jpg", ())


def test_index_exclude_defaults_patterns_and_rows_removed_once_excluded(tmp_path, capsys):
    from chapter09.capstone.__main__ import main as capstone

    lib, index = tmp_path / "lib", tmp_path / "idx"
    noise_photos(lib / "photos", 3)
    noise_photos(lib / "@eaDir" / "photos", 2, seed=1)  # a Synology NAS's thumbnails
    noise_photos(lib / "node_modules" / "pkg", 1, seed=2)
    noise_photos(lib / "drafts", 2, seed=3)

    def index_json(*flags):
        assert capstone(["index", str(lib), "--index", str(index), "--no-progress", "--models", "toy",
                         "--precision", "fp32", "--json", *flags]) == 0
        return json.loads(capsys.readouterr().out)

    first = index_json()
    assert first["added"] == 5 and first["excluded"] == 2  # photos/ and drafts/, not @eaDir/ nor node_modules/
    assert sorted(first["excluded_paths"]) == ["@eaDir/", "node_modules/"]
    with_drafts_out = index_json("--exclude", "drafts")
    assert with_drafts_out["removed"] == 2 and with_drafts_out["excluded_removed"] == 2
    assert with_drafts_out["total"] == 3
    everything = index_json("--no-default-excludes")
    assert everything["added"] == 5 and everything["total"] == 8 and everything["excluded"] == 0
    assert capstone(["index", str(lib), "--index", str(index), "--no-progress", "--models", "toy",
                     "--precision", "fp32", "--exclude", "@eaDir"]) == 0
    text = capsys.readouterr().out
    assert "excluded 2 folders/files" in text and "3 indexed images in them removed from the index" in text
