"""Text in photos (``index --ocr``, ``search --ocr-text``) and Traditional Chinese read as Simplified.

The index and search around OCR run on a reader that returns known text (``ocr.FixedReader``: fast, exact); one
test reads rendered English and Chinese words with the real RapidOCR models."""
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from chapter09.capstone.__main__ import main as capstone
from chapter09.capstone.caption.text_search import rrf_fuse
from chapter09.capstone.index.build import build_index
from chapter09.capstone.ocr.reader import FixedReader
from chapter09.capstone.ocr.run import ocr_rows
from chapter09.capstone.search.library_search import LibrarySearch, Term
from chapter09.capstone.search.queries import QueryError
from chapter09.capstone.store.database import Store
from chapter09.chinese import to_simplified
from chapter09.clip import clip_encoder
from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# photo colour (its top-left pixel: what FixedReader keys on) -> the lines written in it
WRITTEN = {
    (200, 30, 30): ["EXIT", "緊急出口"],  # Traditional, as a Hong Kong or Taipei sign has it
    (30, 200, 30): ["Fresh Coffee", "咖啡店"],
    (30, 30, 200): ["营业时间 9AM-6PM"],
    (200, 200, 30): ["Parking receipts", "停车场"],
}
PLAIN = [(90, 90, 90), (150, 60, 150), (60, 150, 150), (240, 240, 240)]  # photos without text


def photo(path: Path, colour) -> None:
    image = Image.new("RGB", (64, 64), colour)
    ImageDraw.Draw(image).ellipse((20, 20, 44, 44), fill=(255 - colour[0], 255 - colour[1], 255 - colour[2]))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "lib"
    for i, colour in enumerate([*WRITTEN, *PLAIN]):
        photo(root / ("signs" if colour in WRITTEN else "plain") / f"p{i}.png", colour)
    return root, tmp_path / "idx"


@pytest.fixture(scope="module")
def encoders():
    return {"clip": clip_encoder("clip", Settings("toy"))}


def index(root, idx, encoders, reader, **options):
    return build_index(root, idx, encoders, workers=0, progress=False, ocr=True, ocr_reader=reader, **options)


def found(searcher, words, k=10):
    return [(h["path"], h.get("ocr_match")) for h in searcher.search([], k, ocr_text=words)["hits"]]


def test_index_ocr_reads_each_file_once_and_search_finds_its_words(library, encoders):
    root, idx = library
    reader = FixedReader(WRITTEN)
    summary = index(root, idx, encoders, reader)
    assert summary.ocr["read"] == 8 and summary.ocr["with_text"] == 4 and reader.calls == 8
    searcher = LibrarySearch(idx, Settings("toy"))
    assert found(searcher, "exit") == [("signs/p0.png", ["exit"])]
    assert found(searcher, "coffees") == [("signs/p1.png", ["coffees"])]  # stemmed as the index is
    assert found(searcher, "咖啡") == [("signs/p1.png", ["咖啡"])]
    # Traditional and Simplified find each other, both ways
    assert found(searcher, "紧急出口") == [("signs/p0.png", ["紧急出口"])]
    assert found(searcher, "營業") == [("signs/p2.png", ["营业"])]
    assert found(searcher, "receipt parking")[0] == ("signs/p3.png", ["receipt", "parking"])
    assert found(searcher, "zebra") == [] and found(searcher, "斑马") == []
    result = searcher.search([], 5, ocr_text="出口")
    assert result["query_kind"] == "ocr text" and result["hits"][0]["ocr_text"] == "EXIT\n緊急出口"
    # a vector search's hits carry the text too; photos without text carry none
    hits = searcher.search([Term("text", "a circle")], 8)["hits"]
    assert {h["path"] for h in hits if "ocr_text" in h} == {f"signs/p{i}.png" for i in range(4)}
    with pytest.raises(QueryError, match="--hybrid"):
        searcher.search([Term("text", "a circle")], 5, ocr_text="exit")

    # nothing changed: nothing read again
    again = index(root, idx, encoders, reader)
    assert again.ocr["read"] == 0 and again.ocr["already"] == 8 and reader.calls == 8
    # moved: its reading moves with it; copied: the copy takes it; changed: read again; deleted: its row goes
    shutil.move(root / "signs/p1.png", root / "plain/cafe.png")
    shutil.copy(root / "signs/p0.png", root / "plain/exit-copy.png")
    reader.texts[(10, 10, 10)] = ["New shop 新店"]
    photo(root / "signs/p3.png", (10, 10, 10))  # a new sign over the parking one
    (root / "signs/p2.png").unlink()
    later = index(root, idx, encoders, reader)
    assert later.ocr["read"] == 1 and reader.calls == 9 and later.moved == 1 and later.copied == 1
    rows = ocr_rows(LibrarySearch(idx, Settings("toy")).store)
    assert sorted(rows) == sorted(["signs/p0.png", "plain/cafe.png", "signs/p3.png", "plain/exit-copy.png",
                                   "plain/p4.png", "plain/p5.png", "plain/p6.png", "plain/p7.png"])
    searcher = LibrarySearch(idx, Settings("toy"))
    assert found(searcher, "coffee") == [("plain/cafe.png", ["coffee"])]
    assert sorted(found(searcher, "exit")) == [("plain/exit-copy.png", ["exit"]), ("signs/p0.png", ["exit"])]
    # the single characters the 1-gram index adds rank below the whole word: 店 of 咖啡店
    assert found(searcher, "新店") == [("signs/p3.png", ["新店"]), ("plain/cafe.png", [])]
    assert found(searcher, "营业") == [] and found(searcher, "parking") == []


def test_ocr_pass_resumes_after_a_stop_and_hybrid_is_the_rrf_of_both_rankings(library, encoders):
    root, idx = library
    build_index(root, idx, encoders, workers=0, progress=False)  # indexed first, text read later
    reader = FixedReader(WRITTEN)
    from chapter09.capstone.ocr.run import run_ocr
    from chapter09.capstone.store.database import Store

    with Store.open(idx, library=root, write=True) as store, pytest.raises(KeyboardInterrupt):
        run_ocr(store, root, reader, stop_after=3)
    with Store.open(idx) as store:
        assert len(ocr_rows(store)) == 3
    summary = index(root, idx, encoders, reader)
    assert (summary.ocr["already"], summary.ocr["read"], reader.calls) == (3, 5, 8), summary.ocr

    searcher = LibrarySearch(idx, Settings("toy"))
    vector = [h["path"] for h in searcher.search([Term("text", "a green circle")], 100)["hits"]]
    words = [h["path"] for h in searcher.search([], 100, ocr_text="coffee parking")["hits"]]
    fused = searcher.search([Term("text", "a green circle")], 5, ocr_text="coffee parking", hybrid=True)
    expected = rrf_fuse([vector, words])[:5]
    assert [(h["path"], round(h["score"], 9)) for h in fused["hits"]] == [(p, round(s, 9)) for p, s in expected]
    assert fused["query_kind"] == "hybrid" and set(words) == {"signs/p1.png", "signs/p3.png"}
    assert {h["path"] for h in fused["hits"][:2]} >= {"signs/p1.png"}  # in both rankings: first or second


def test_search_ocr_text_on_the_command_line(library, encoders, capsys):
    root, idx = library
    index(root, idx, encoders, FixedReader(WRITTEN))
    assert capstone(["search", "--index", str(idx), "--ocr-text", "紧急 exit", "--json", "--models", "toy"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ocr_text"] == "紧急 exit" and result["hits"][0]["path"] == "signs/p0.png"
    assert result["hits"][0]["ocr_match"] == ["紧急", "exit"]
    assert capstone(["search", "--index", str(idx), "--ocr-text", "coffee", "--models", "toy"]) == 0
    text = capsys.readouterr().out
    assert "text in photos: coffee (scores are BM25)" in text and "[text] Fresh Coffee | 咖啡店  (matched: coffee)" in text


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory):
    """12 toy scenes indexed with both encoders, and a Simplified caption on one of them."""
    from chapter09.capstone.store.database import Store
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path_factory.mktemp("toy"), n=12, seed=7, split="heldout")
    idx = tmp_path_factory.mktemp("idx")
    build_index(library, idx, {r: clip_encoder(r, Settings("toy")) for r in ("clip", "chinese_clip")}, workers=0,
                progress=False)
    with Store.open(idx, write=True) as store:
        first = store.images("clip").records(("path", "sha1"))[0]
        store.put_captions([{**first, "en": "a red circle", "zh": "左上方有一个红色圆形"}])
        store.finish()
    return idx, first["path"]


def test_traditional_chinese_queries_find_what_simplified_ones_find(toy_index, monkeypatch):
    import chapter09.capstone.search.queries as queries

    idx, captioned = toy_index
    searcher = LibrarySearch(idx, Settings("toy"))

    def tops(strategy):
        return [[h["path"] for h in searcher.search([Term("text", text)], 5, strategy)["hits"]]
                for text in ("紅色圓形", "红色圆形")]

    for strategy in ("translate", "multilingual", "chinese_clip"):
        traditional, simplified = tops(strategy)
        assert traditional == simplified, strategy
    encoded = searcher.search([Term("text", "紅色圓形")], 5, "chinese_clip")["encoded_text"]
    assert encoded == "红色圆形"
    assert [h["path"] for h in searcher.search([], 3, caption_text="紅色圓形")["hits"]] == [captioned]
    # read as typed, the Traditional query finds other photos with at least one strategy: the test can fail
    monkeypatch.setattr(queries, "to_simplified", lambda text: text)
    queries.QUERY_CACHE.clear()  # the vectors cached above were read as Simplified
    try:
        assert any(a != b for a, b in (tops(s) for s in ("translate", "multilingual", "chinese_clip")))
    finally:  # and these were read as typed: no later test in this process may be answered from them
        queries.QUERY_CACHE.clear()


def test_rapidocr_reads_rendered_english_and_chinese_words(tmp_path):
    """The real models: words rendered with a Latin and a CJK font are read and found by their query words (1.4 s
    here on an idle 2-core machine, 10-15 s while other jobs loaded it: default tier)."""
    from chapter09.capstone.bench.ocr import cjk_font
    from chapter09.capstone.ocr.reader import OcrReader
    from chapter09.capstone.ocr.text_search import matched_words

    font = cjk_font()
    if font is None:
        pytest.skip("no CJK font on this machine (fonts-wqy-microhei: the chromium apt line installs it)")
    image = Image.new("RGB", (720, 260), (250, 245, 230))
    draw = ImageDraw.Draw(image)
    draw.text((30, 30), "OPEN DAILY", fill=(20, 20, 20),
              font=ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 48))
    draw.text((30, 140), "欢迎光临 營業時間", fill=(150, 20, 20), font=ImageFont.truetype(font, 48))
    lines = OcrReader(threads=min(2, os.cpu_count() or 1)).read(image)
    text = "\n".join(line.text for line in lines)
    words = ["open", "daily", "欢迎光临", "营业时间"]
    recall = sum(bool(matched_words(word, text)) and matched_words(word, text)[0] == word for word in words)
    assert recall == len(words), text
    assert all(0.5 <= line.score <= 1 and len(line.box) == 4 for line in lines)
    english = next(line for line in lines if line.text.upper().startswith("OPEN"))
    assert english.box[0][1] < 60 and english.box[2][1] < 140  # the box of the top line


def test_to_simplified():
    assert to_simplified("紅色圓形") == "红色圆形" and to_simplified("營業時間 9AM") == "营业时间 9AM"
    assert to_simplified("红色圆形") == "红色圆形" and to_simplified("a red circle") == "a red circle"


def test_the_web_ui_searches_the_photos_text_alone_and_hybrid(library, encoders):
    from chapter09.capstone.web.handlers import Handlers
    from chapter09.capstone.web.library import WebLibrary

    root, idx = library
    index(root, idx, encoders, FixedReader(WRITTEN))
    web = WebLibrary(idx, Settings("toy"))
    handlers = Handlers(web)
    items, note, hits = handlers.ocr_text_search("營業", False, "", "auto", 5)
    assert [h["file"] for h in hits] == ["signs/p2.png"] and hits[0]["ocr_match"] == ["营业"]
    assert "text in photos: 營業 (BM25)" in note and len(items) == 1
    from chapter09.exercises.i18n import speaking

    with speaking("en"):  # outside a request the page's words are in both languages
        assert "text in the photo:</b> 营业时间 9AM-6PM (matched: 营业)" in web.detail_html(hits[0])
    _, note, hits = handlers.ocr_text_search("coffee", True, "a green circle", "auto", 3)
    assert hits[0]["file"] == "signs/p1.png" and "(fused by reciprocal rank)" in note
    with pytest.raises(Exception, match="type a query too"):
        handlers.ocr_text_search("coffee", True, "", "auto", 3)

    from fastapi.testclient import TestClient

    from chapter09.capstone.web.access import ClientLimiter
    from chapter09.capstone.web.api import build_api

    api = TestClient(build_api(web, ClientLimiter(100, rate=1000, burst=1000), (), None), root_path="/api")
    answer = api.get("/api/search", params={"ocr_text": "營業", "k": 5}).json()  # the JSON API: the same search
    assert [h["path"] for h in answer["hits"]] == ["signs/p2.png"] and answer["hits"][0]["ocr_match"] == ["营业"]
    assert answer["query_kind"] == "ocr text"


@pytest.mark.slow
def test_index_ocr_on_the_ray_engine_reads_what_the_local_engine_reads(library, encoders):
    pytest.importorskip("ray")
    root, idx = library
    reader = FixedReader(WRITTEN)
    summary = index(root, idx, encoders, reader, engine="ray")
    assert summary.engine == "ray" and summary.ocr["read"] == 8 and summary.ocr["with_text"] == 4
    assert reader.calls == 0  # every image was read by the actors' copies, none here
    local = index(root, idx.parent / "local", encoders, FixedReader(WRITTEN))
    with Store.open(idx) as on_ray, Store.open(idx.parent / "local") as here:
        assert {p: r["text"] for p, r in ocr_rows(on_ray).items()} == {p: r["text"] for p, r in ocr_rows(here).items()}
    assert local.ocr["read"] == 8
    again = index(root, idx, encoders, FixedReader(WRITTEN), engine="ray")  # nothing left: no Ray started
    assert again.ocr["read"] == 0 and again.ocr["already"] == 8
    assert found(LibrarySearch(idx, Settings("toy")), "咖啡") == [("signs/p1.png", ["咖啡"])]


@pytest.mark.slow
def test_the_ocr_bench_runs_end_to_end_on_a_few_images(tmp_path, capsys):
    from chapter09.capstone.bench import ocr as bench

    if bench.cjk_font() is None:
        pytest.skip("no CJK font on this machine (fonts-wqy-microhei: the chromium apt line installs it)")
    assert bench.main(["--images", "6", "--json", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert report["images"] == 6 and report["pairs"] >= 6 and report["ocr_threads"] >= 1
    assert set(report["read_recall"]) >= {"all", "en", "sign", "receipt", "screenshot"}
    assert report["read_recall"]["all"] >= 0.7 and report["search_recall"]["all"] >= 0.7  # 0.89 and 0.95 in one run
    assert 0 < report["ocr_share"] <= 1 and report["index_with_ocr_s"] > report["ocr_s"] > 0
