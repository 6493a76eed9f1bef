"""Videos (issue 33): frames sampled with PyAV, one row per frame keyed ``video#t=SECONDS``, searched, shown and
played from the frame's moment. The videos are made here from toy scenes: a small blue square throughout, and a
large red circle only from second 3 to second 5 of a 6-second, 4 fps clip, so a search for the red circle must
find the video at a moment inside [3, 5]. Broken files (garbage, zero bytes, truncated, audio only) sit beside it."""
import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from chapter09.capstone.index.video import VideoSampling, clock, frame_key, sample_frames, split_key, unit_of
from chapter09.errors import UsageError
from chapter09.models import Settings
from chapter09.toyworld.scenes import Scene, ToyObject

av = pytest.importorskip("av")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
BACKGROUND = (230, 230, 230)
RED_CIRCLE = ToyObject("red", "circle", "large", (1, 1))
CIRCLE = RED_CIRCLE.en()  # the object's own caption: "a large red circle in the center"


def scene(with_circle: bool):
    objects = [ToyObject("blue", "square", "small", (0, 0)), *([RED_CIRCLE] if with_circle else [])]
    return Scene(tuple(objects), BACKGROUND, 1)


def make_video(path, appear=(3.0, 5.0), seconds=6, fps=4, size=128, codec="mpeg4"):
    """A clip of toy scenes: the red circle shown from ``appear[0]`` (inclusive) to ``appear[1]`` (exclusive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = {flag: av.VideoFrame.from_image(scene(flag).render(size)) for flag in (False, True)}
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            for packet in stream.encode(frames[appear[0] <= i / fps < appear[1]]):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_audio_only(path):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=8000, layout="mono")
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


BROKEN = {"garbage.mp4": "not a video PyAV can read", "empty.mov": "empty file (0 bytes)",
          "cut.mp4": "not a video PyAV can read", "voice.mkv": "no video stream in the file (audio only?)"}


def make_library(root):
    make_video(root / "clips/circle.mp4")
    make_video(root / "circle.webm", codec="libvpx")
    for i, with_circle in enumerate((False, False)):
        scene(with_circle).render(128).save(root / f"photo{i}.png")
    (root / "garbage.mp4").write_bytes(b"not a video at all" * 50)
    (root / "empty.mov").write_bytes(b"")
    whole = (root / "clips/circle.mp4").read_bytes()
    (root / "cut.mp4").write_bytes(whole[:len(whole) // 2])
    make_audio_only(root / "voice.mkv")
    return root


@pytest.fixture(scope="module")
def toy_clip():
    from chapter09.clip import clip_encoder

    return {"clip": clip_encoder("clip", Settings("toy"))}


def index(library, index_dir, encoders, **options):
    from chapter09.capstone.index.build import build_index

    return build_index(library, index_dir, encoders, progress=False, workers=0, **options)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, toy_clip):
    root = tmp_path_factory.mktemp("video")
    library = make_library(root / "lib")
    summary = index(library, root / "idx", toy_clip)
    return {"library": library, "index": root / "idx", "summary": summary}


def rows(index_dir) -> dict:
    from chapter09.capstone.store.database import Store

    with Store.open(index_dir) as store:
        return {row["path"]: row for row in store.images("clip").records(("path", "sha1", "format", "width"))}


def cli(*argv) -> tuple[int, str]:
    from chapter09.capstone.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


# ----------------------------------------------------------------------------- the key and the rule
@pytest.mark.unit
def test_frame_keys_name_the_video_and_the_moment():
    key = frame_key("trip/a b.mp4", 12.0)
    assert key == "trip/a b.mp4#t=12.00" and split_key(key) == ("trip/a b.mp4", 12.0) and unit_of(key) == "trip/a b.mp4"
    assert split_key("photo.jpg") == ("photo.jpg", None) and split_key("odd.jpg#t=1.00") == ("odd.jpg#t=1.00", None)
    assert clock(12.4) == "0:12" and clock(3725) == "1:02:05"
    for bad in ({"every_s": 0}, {"max_frames": 0}, {"max_frames": 2.5}, {"scene_threshold": -1},
                {"every_s": float("nan")}):
        with pytest.raises(UsageError, match="--video-"):
            VideoSampling(**bad)


@pytest.mark.unit
def test_frames_are_sampled_every_n_seconds_at_scene_changes_and_capped(tmp_path):
    clip = tmp_path / "c.mp4"
    make_video(clip)
    times = lambda **rule: [round(t, 2) for t, _ in sample_frames(clip, VideoSampling(**rule), 64)]  # noqa: E731
    assert times() == [0.0, 2.0, 4.0]  # every 2 s; the circle changes too little of the frame for the default 20
    assert times(every_s=10, scene_threshold=8) == [0.0, 3.0, 5.0]  # the circle comes and goes: two scene changes
    assert times(max_frames=2, scene_threshold=255) == [0.0, 3.0]  # 6 s / 2 frames: the interval stretched to 3 s
    first = next(iter(sample_frames(clip, VideoSampling(), 64)))[1]
    assert first.size == (64, 64) and first.mode == "RGB"  # downscaled as it is converted


@pytest.mark.unit
def test_a_frame_too_large_is_refused_before_decoding(tmp_path, monkeypatch):
    from chapter09.capstone.index import video
    from chapter09.capstone.index.decode import decode_file

    make_video(tmp_path / "big.mp4")
    monkeypatch.setattr(video, "MAX_PIXELS", 128 * 128 - 1)  # as a 20000x20000 video meets the real limit
    items = decode_file(tmp_path, "big.mp4", {}, 0)
    assert len(items) == 1 and not items[0]["ok"] and "over the limit" in items[0]["reason"]


# ----------------------------------------------------------------------------- indexing and search
def test_a_video_is_indexed_frame_by_frame_and_found_at_the_moment(indexed, toy_clip):
    summary = indexed["summary"]
    assert summary.added == 4  # two videos, two photos: files, however many frames
    failed = {f["path"]: f["reason"] for f in summary.failed}
    assert set(failed) == set(BROKEN), failed
    for path, reason in BROKEN.items():
        assert failed[path].startswith(reason), failed[path]
    stored = rows(indexed["index"])
    frames = sorted(p for p in stored if unit_of(p) == "clips/circle.mp4")
    assert frames == ["clips/circle.mp4#t=0.00", "clips/circle.mp4#t=2.00", "clips/circle.mp4#t=4.00"]
    assert {stored[p]["format"] for p in frames} == {"video"} and stored[frames[0]]["width"] == 128
    assert len({stored[p]["sha1"] for p in frames}) == 1  # the video file's

    code, out = cli("search", "--index", str(indexed["index"]), "--models", "toy", "--json", "--k", "3",
                    "--text", CIRCLE, "--type", "mp4")
    assert code == 0, out
    hits = json.loads(out)["hits"]
    assert all(split_key(h["path"])[1] == h["time_s"] for h in hits)
    assert 3.0 <= hits[0]["time_s"] <= 5.0, hits  # the moment the circle is on screen ranks first
    code, out = cli("search", "--index", str(indexed["index"]), "--models", "toy", "--json", "--k", "10",
                    "--text", "a blue square", "--type", "png")
    assert code == 0 and all("time_s" not in h for h in json.loads(out)["hits"])  # a photo's JSON is unchanged
    code, out = cli("search", "--index", str(indexed["index"]), "--models", "toy", "--k", "1",
                    "--text", CIRCLE, "--type", "video")
    assert code == 0 and "circle." in out and " @ 0:0" in out and "#t=" not in out, out

    again = index(indexed["library"], indexed["index"], toy_clip)
    assert again.unchanged == 4 and again.added == 0
    assert {f["path"] for f in again.failed} == set(BROKEN)
    assert all(not f["retried"] for f in again.failed)  # a broken file waits until it changes


def test_unchanged_videos_are_not_decoded_moved_ones_re_keyed_changed_ones_re_sampled(tmp_path, toy_clip,
                                                                                        monkeypatch):
    from chapter09.capstone.index import decode

    library = tmp_path / "lib"
    make_video(library / "a.mp4")
    shutil.copy(library / "a.mp4", library / "copy.mp4")
    opened = []
    real = decode.sample_frames
    monkeypatch.setattr(decode, "sample_frames", lambda path, *a, **k: (opened.append(path.name), real(path, *a, **k))[1])
    idx = tmp_path / "idx"
    first = index(library, idx, toy_clip)
    assert first.added == 2 and sorted(opened) == ["a.mp4", "copy.mp4"]

    from chapter09.capstone.search.dedup import find_duplicates

    found = find_duplicates(idx)
    assert found["exact_groups"] == [["a.mp4", "copy.mp4"]]  # a video once, not once per frame
    assert all(unit_of(p["a"]) != unit_of(p["b"]) for p in found["near_pairs"])

    opened.clear()
    assert index(library, idx, toy_clip).unchanged == 2 and opened == []

    (library / "trip").mkdir()
    (library / "a.mp4").rename(library / "trip/moved.mp4")
    moved = index(library, idx, toy_clip)
    assert moved.moved == 1 and moved.removed == 0 and opened == []
    assert sorted(p for p in rows(idx) if unit_of(p) != "copy.mp4") == [
        "trip/moved.mp4#t=0.00", "trip/moved.mp4#t=2.00", "trip/moved.mp4#t=4.00"]

    make_video(library / "trip/moved.mp4", appear=(0.0, 1.0), seconds=3)  # new content, 3 s: frames at 0 and 2
    changed = index(library, idx, toy_clip)
    assert changed.updated == 1 and opened == ["moved.mp4"]
    assert sorted(p for p in rows(idx) if p.startswith("trip/")) == ["trip/moved.mp4#t=0.00", "trip/moved.mp4#t=2.00"]

    (library / "copy.mp4").unlink()
    gone = index(library, idx, toy_clip)
    assert gone.removed == 1 and not any(p.startswith("copy.mp4") for p in rows(idx))


# ----------------------------------------------------------------------------- the web UI and the API
def test_the_web_ui_shows_the_frame_and_plays_from_its_moment(indexed):
    from fastapi.testclient import TestClient

    from chapter09.capstone.web.access import ClientLimiter
    from chapter09.capstone.web.api import build_api
    from chapter09.capstone.web.handlers import Handlers
    from chapter09.capstone.web.library import WebLibrary
    from chapter09.exercises.i18n import speaking

    web = WebLibrary(indexed["index"], Settings("toy"))
    items, note, hits = Handlers(web).text_search(CIRCLE, "auto", 3, types=["video"])
    assert hits and all("time_s" in h for h in hits) and 3.0 <= hits[0]["time_s"] <= 5.0
    assert f"@ {clock(hits[0]['time_s'])}" in items[0][1]  # the gallery's caption says the moment
    with speaking("en"):
        detail = web.detail_html(hits[0])
    assert "<video" in detail and f"#t={hits[0]['time_s']:.2f}" in detail and clock(hits[0]["time_s"]) in detail

    api = TestClient(build_api(web, ClientLimiter(100, rate=1000, burst=1000), (), None), root_path="/api")
    answer = api.get("/api/search", params={"text": CIRCLE, "k": 3, "types": "video"}).json()
    top = answer["hits"][0]
    assert 3.0 <= top["time_s"] <= 5.0 and top["original"].endswith(f"#t={top['time_s']:.2f}")
    thumb = api.get(top["thumbnail"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from PIL import Image

    shown = np.asarray(Image.open(io.BytesIO(thumb.content)).convert("RGB"), int)
    assert (np.abs(shown - np.array([220, 30, 50])).sum(axis=2) < 120).mean() > 0.05  # the red circle's frame
    video = top["original"].split("#")[0]
    whole = api.get(video)
    assert whole.status_code == 200 and whole.content == (indexed["library"] / split_key(top["path"])[0]).read_bytes()
    part = api.get(video, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100 and part.content == whole.content[:100]


def test_frames_are_read_for_captions_and_text(indexed):
    from chapter09.capstone.index.decode import decode_one
    from chapter09.capstone.index.video import row_image

    image = row_image(indexed["library"], "clips/circle.mp4#t=4.00")
    assert image.size == (128, 128) and np.asarray(image)[64, 64, 0] > 150  # the circle's red, mid-frame
    item = decode_one(indexed["library"], "clips/circle.mp4#t=4.00", {}, 0)  # what `caption --index` decodes
    assert item["ok"] and item["format"] == "video" and item["path"] == "clips/circle.mp4#t=4.00"


@pytest.mark.slow
def test_the_ray_engine_indexes_a_videos_frames_as_the_local_engine_does(indexed, tmp_path, toy_clip):
    pytest.importorskip("ray")
    on_ray = index(indexed["library"], tmp_path / "ray", toy_clip, engine="ray")
    assert on_ray.engine == "ray" and on_ray.added == 4 and {f["path"] for f in on_ray.failed} == set(BROKEN)
    from chapter09.capstone.store.database import Store

    with Store.open(tmp_path / "ray") as ray_store, Store.open(indexed["index"]) as local_store:
        ray_rows = {r["path"]: r["vector"] for r in ray_store.images("clip").records(("path", "vector"))}
        local_rows = {r["path"]: r["vector"] for r in local_store.images("clip").records(("path", "vector"))}
    assert sorted(ray_rows) == sorted(local_rows)
    for path, vector in local_rows.items():
        assert np.allclose(np.asarray(ray_rows[path], np.float32), np.asarray(vector, np.float32), atol=2e-2), path
