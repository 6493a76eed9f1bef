"""Capstone, toy world end to end: a 1000-image library indexed, searched in both languages, evaluated."""
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from chapter09.capstone.__main__ import main as capstone
from chapter09.models import Settings
from chapter09.toyworld import write_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("library"), n=1000, seed=777, split="heldout")


@pytest.fixture(scope="module")
def index(library, tmp_path_factory):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder

    index_dir = tmp_path_factory.mktemp("index")
    summary = build_index(library, index_dir, {"clip": clip_encoder("clip", Settings("toy"))}, progress=False)
    assert summary.added == 1000 and not summary.failed
    assert {s["path"] for s in summary.skipped} == {"captions.jsonl", "qa.jsonl", "scenes.jsonl"}
    return index_dir


def run_json(capsys, *argv):
    assert capstone([*argv, "--models", "toy", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def snapshot(index, role="clip"):
    """(paths, float32 vectors) of ``role``'s table read whole: enough for the few hundred images here."""
    from chapter09.capstone.store.database import Store

    paths, vectors = Store.open(index).images(role).vectors()
    return Snapshot(paths, vectors.astype(np.float32))


class Snapshot:
    def __init__(self, paths, vectors):
        self.paths, self.vectors = paths, {"clip": vectors}

    def __len__(self):
        return len(self.paths)


def test_eval_recall_english_and_chinese(library, capsys):
    report = run_json(capsys, "eval", "--dataset", str(library))
    assert report["images"] == 1000
    for lang in ("en", "zh"):
        recall = report["languages"][lang]["text_to_image"]
        assert recall["R@5"] >= 0.90, (lang, recall)
        assert report["languages"][lang]["image_to_text"]["R@5"] >= 0.80, (lang, report["languages"][lang])


def test_second_index_run_is_incremental(library, index, capsys):
    summary = run_json(capsys, "index", str(library), "--index", str(index), "--no-progress")
    assert (summary["added"], summary["unchanged"], summary["removed"]) == (0, 1000, 0)


def test_text_search_finds_the_described_image(library, index):
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.toyworld import load_scenes

    scenes = load_scenes(library)
    searcher = LibrarySearch(index, Settings("toy"))
    names = sorted(scenes)[:40]
    for lang in ("en", "zh"):
        found = sum(name in [h["path"] for h in searcher.by_text(scenes[name].captions(lang)[0], 5)["hits"]]
                    for name in names)
        assert found / len(names) >= 0.85, (lang, found)


def test_image_search_finds_source_of_resized_jpeg(library, index, tmp_path):
    from chapter09.capstone.search.library_search import LibrarySearch

    searcher = LibrarySearch(index, Settings("toy"))
    for i in (3, 141, 592):
        source = f"images/heldout_777_{i:05d}.png"
        copy = tmp_path / f"copy_{i}.jpg"
        Image.open(library / source).resize((200, 200)).save(copy, quality=70)
        assert searcher.by_image(str(copy), 3)["hits"][0]["path"] == source


def test_search_rejects_empty_and_truncates_long_queries(index, capsys):
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.capstone.search.queries import QueryError

    searcher = LibrarySearch(index, Settings("toy"))
    with pytest.raises(QueryError, match="empty"):
        searcher.by_text("   ", 5)
    assert capstone(["search", "--index", str(index), "--text", "", "--models", "toy"]) == 2
    warnings = []
    result = searcher.by_text("a red circle " * 400, 5, warn=warnings.append)
    assert len(result["hits"]) == 5 and any("cut" in w for w in warnings) and any("tokens" in w for w in warnings)


def test_interrupted_index_resumes_without_duplicates(library, tmp_path):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder

    small = tmp_path / "lib"
    shutil.copytree(library / "images", small / "images", ignore=lambda d, names: sorted(names)[300:])
    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    with pytest.raises(KeyboardInterrupt):
        build_index(small, tmp_path / "idx", encoders, batch_size=32, workers=0, progress=False, stop_after=100)
    partial = snapshot(tmp_path / "idx")
    assert 100 <= len(partial) < 300
    summary = build_index(small, tmp_path / "idx", encoders, workers=0, progress=False)
    assert summary.unchanged == len(partial) and summary.added == 300 - len(partial)
    store = snapshot(tmp_path / "idx")
    assert len(store) == len(set(store.paths)) == 300 and store.vectors["clip"].shape[0] == 300
    # deleting and touching files: dropped and re-encoded, never duplicated
    (small / "images" / sorted(store.paths)[0].split("/")[-1]).unlink()
    changed = small / sorted(store.paths)[1]
    Image.open(changed).rotate(90).save(changed)
    summary = build_index(small, tmp_path / "idx", encoders, workers=0, progress=False)
    assert (summary.removed, summary.updated, summary.added) == (1, 1, 0)
    assert len(snapshot(tmp_path / "idx")) == 299


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_bad_files_are_reported_and_good_ones_indexed(library, tmp_path):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder

    folder = tmp_path / "messy"
    (folder / "sub").mkdir(parents=True)
    source = Image.open(library / "images/heldout_777_00010.png")
    good = {}
    source.convert("CMYK").save(folder / "cmyk.jpg"); good["cmyk.jpg"] = 1
    Image.fromarray(np.asarray(source.convert("L"), np.uint16) * 257).save(folder / "grey16.png"); good["grey16.png"] = 1
    source.convert("P").save(folder / "palette.gif"); good["palette.gif"] = 1
    rgba = source.convert("RGBA"); rgba.putalpha(128); rgba.save(folder / "sub/alpha.png"); good["sub/alpha.png"] = 1
    exif = Image.Exif(); exif[0x0112] = 6
    source.rotate(90, expand=True).save(folder / "rotated.jpg", exif=exif); good["rotated.jpg"] = 1
    source.save(folder / "sub/plain.webp"); good["sub/plain.webp"] = 1
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file with an image name")
    data = (library / "images/heldout_777_00011.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    # a 30000 x 30000 PNG header: 900 M pixels, refused before any pixel is decoded
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) +
                                      _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _png_chunk(b"IEND", b""))
    (folder / "readme.txt").write_text("not an image")
    summary = build_index(folder, tmp_path / "idx", {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    failed = {f["path"]: f["reason"] for f in summary.failed}
    assert set(failed) == {"empty.png", "notes.jpg", "truncated.png", "corrupt.jpg", "bomb.png"}
    assert "empty" in failed["empty.png"] and "bomb" in failed["bomb.png"] or "limit" in failed["bomb.png"]
    assert [s["path"] for s in summary.skipped] == ["readme.txt"]
    store = snapshot(tmp_path / "idx")
    assert sorted(store.paths) == sorted(good)
    # the EXIF-rotated copy is turned upright: it matches the original best of all
    vectors = dict(zip(store.paths, store.vectors["clip"]))
    plain = vectors["sub/plain.webp"]
    assert vectors["rotated.jpg"] @ plain > 0.95


def test_dedup_separates_exact_from_near(library, tmp_path, capsys):
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder

    folder = tmp_path / "dups"
    folder.mkdir()
    for i in range(20):
        shutil.copy(library / f"images/heldout_777_{i:05d}.png", folder / f"{i}.png")
    shutil.copy(folder / "0.png", folder / "0_copy.png")  # exact
    Image.open(folder / "1.png").save(folder / "1_resaved.jpg", quality=85)  # near
    build_index(folder, tmp_path / "idx", {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    capsys.readouterr()  # the toy-model banner, when this test runs alone
    result = run_json(capsys, "dedup", "--index", str(tmp_path / "idx"))
    assert result["exact_groups"] == [["0.png", "0_copy.png"]]
    near = {frozenset((p["a"], p["b"])) for p in result["near_pairs"]}
    assert frozenset(("1.png", "1_resaved.jpg")) in near
    assert frozenset(("0.png", "0_copy.png")) not in near
    assert len(near) <= 3, result["near_pairs"]


def test_ann_search_matches_exact_and_is_cached(library, index, monkeypatch):
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.capstone.store import vectors as vectors_module
    from chapter09.toyworld import load_scenes

    scenes = load_scenes(library)
    exact = LibrarySearch(index, Settings("toy"), mode="exact")
    ann = LibrarySearch(index, Settings("toy"), mode="ann")
    searcher = ann.searchers["clip"]
    assert searcher.index is not None and searcher.recall_at_10 >= vectors_module.IVF_TARGET_RECALL
    assert any((index / "ann").glob("images_clip_*.faiss"))
    names = sorted(scenes)[:20]
    agree = sum(exact.by_text(scenes[n].captions("en")[0], 10)["hits"][0]["path"] ==
                ann.by_text(scenes[n].captions("en")[0], 10)["hits"][0]["path"] for n in names)
    assert agree >= 18
    result = ann.by_text("a red circle", 10)
    assert result["search"] == "ann" and result["ann_nprobe"] == searcher.nprobe and len(result["hits"]) == 10

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached IVF index should have been reused")

    monkeypatch.setattr(vectors_module, "build_ann", no_rebuild)
    again = LibrarySearch(index, Settings("toy"), mode="ann").searchers["clip"]
    assert (again.nprobe, again.recall_at_10) == (searcher.nprobe, searcher.recall_at_10)


def test_filtered_ann_search_returns_the_matching_top_k(library, index, monkeypatch):
    """A filter on an IVF index: few matching rows are searched exactly (their stored vectors read back), many
    through IVF restricted to them; either way k matching rows come back, close to exact filtered search."""
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.capstone.store import vectors as vectors_module
    from chapter09.toyworld import load_scenes

    scenes = load_scenes(library)
    exact, ann = LibrarySearch(index, Settings("toy"), mode="exact"), LibrarySearch(index, Settings("toy"), mode="ann")
    flat, ivf = exact.searchers["clip"], ann.searchers["clip"]
    mask = np.zeros(len(flat), bool)
    mask[::7] = True  # 1 row in 7, unrelated to what the images show
    queries = sorted(scenes)[:20]
    from chapter09.clip import clip_encoder

    encoder = clip_encoder("clip", exact.query_settings)
    vectors = encoder.encode_texts([scenes[n].captions("en")[0] for n in queries])
    reference = [flat.search_filtered(v, 10, mask)[1][0] for v in vectors]
    assert all(mask[r].all() and len(r) == 10 for r in reference)
    few = [ivf.search_filtered(v, 10, mask, fetch=ann._fetch("clip")) for v in vectors]
    assert {facts["how"] for _, _, facts in few} == {"exact over the matching rows"}
    assert all(list(ids[0]) == list(r) for (_, ids, _), r in zip(few, reference))
    monkeypatch.setattr(vectors_module, "FILTER_EXACT_ROWS", 0)  # as with many matching rows: IVF with a selector
    many = [ivf.search_filtered(v, 10, mask, fetch=ann._fetch("clip")) for v in vectors]
    assert {facts["how"] for _, _, facts in many} == {"ann"}
    assert all(mask[ids[0]].all() and len(ids[0]) == 10 for _, ids, _ in many)
    recall = np.mean([len(set(ids[0]) & set(r)) / 10 for (_, ids, _), r in zip(many, reference)])
    assert recall >= 0.9, recall


def test_caption_index_captions_each_image_once_and_search_returns_the_captions(library, tmp_path, capsys):
    from chapter09.capstone.caption.run import caption_index
    from chapter09.capstone.index.build import build_index
    from chapter09.clip import clip_encoder

    folder = tmp_path / "lib"
    shutil.copytree(library / "images", folder, ignore=lambda d, names: sorted(names)[12:])
    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    build_index(folder, tmp_path / "idx", encoders, workers=0, progress=False)
    with pytest.raises(KeyboardInterrupt):  # interrupted after 4 images: those 4 are kept
        caption_index(tmp_path / "idx", "en,zh", Settings("toy"), batch_size=2, progress=False, stop_after=4)
    capsys.readouterr()
    summary = run_json(capsys, "caption", "--index", str(tmp_path / "idx"), "--no-progress")
    assert (summary["captioned"], summary["already"], summary["total"]) == (8, 4, 12) and not summary["failed"]
    again = run_json(capsys, "caption", "--index", str(tmp_path / "idx"), "--no-progress")
    assert (again["captioned"], again["already"]) == (0, 12)
    result = run_json(capsys, "search", "--index", str(tmp_path / "idx"), "--text", "a red circle", "--k", "3")
    assert len(result["hits"]) == 3
    for hit in result["hits"]:
        assert set(hit["captions"]) == {"en", "zh"} and all(hit["captions"].values())
    # a changed photo loses its caption (it described other bytes) and is captioned again, alone
    changed = folder / result["hits"][0]["path"]
    Image.open(changed).rotate(90).save(changed)
    build_index(folder, tmp_path / "idx", encoders, workers=0, progress=False)
    capsys.readouterr()
    assert run_json(capsys, "caption", "--index", str(tmp_path / "idx"), "--no-progress")["captioned"] == 1
