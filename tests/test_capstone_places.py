"""Places (issue 33): EXIF GPS positions read at index time and named offline once per run; the --place and --near
filters on the CLI, the search API and the web UI; the web UI's Duplicates tab. One small library of JPEGs written
here with GPS EXIF (two in Hangzhou, one each in Beijing, Shanghai and Paris), one with a malformed GPS block, one
with none, indexed once for the module with the toy CLIP."""
import io
import json
import math
import shutil
import struct

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from chapter09.capstone.index import places as index_places
from chapter09.capstone.index.build import build_index
from chapter09.capstone.index.metadata import gps_position
from chapter09.capstone.search.filters import Filters
from chapter09.capstone.search.library_search import LibrarySearch, Term
from chapter09.capstone.search.places import haversine_km, parse_near
from chapter09.capstone.store.database import Store
from chapter09.capstone.store.tables import PLACE_COLUMNS as NAME_COLUMNS
from chapter09.capstone.store.tables import POSITION_COLUMNS
from chapter09.errors import UsageError
from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GPS_IFD = 0x8825
POSITIONS = {"west_lake.jpg": (30.2587, 120.1315), "trip/hz_station.jpg": (30.2910, 120.2130),
             "trip/beijing.jpg": (39.9042, 116.4074), "trip/shanghai.jpg": (31.2304, 121.4737),
             "paris.jpg": (48.8566, 2.3522)}
PLACE_COLUMNS = (*POSITION_COLUMNS, *NAME_COLUMNS)  # as stored


def dms(degrees: float) -> tuple:
    """Decimal degrees as EXIF's degrees, minutes, seconds."""
    degrees = abs(degrees)
    whole, minutes = int(degrees), int((degrees - int(degrees)) * 60)
    return float(whole), float(minutes), round((degrees - whole - minutes / 60) * 3600, 4)


def gps_exif(lat=None, lon=None, tags=None) -> Image.Exif:
    exif = Image.Exif()
    gps = exif.get_ifd(GPS_IFD)
    if lat is not None:
        gps.update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)})
    gps.update(tags or {})
    return exif


def jpeg(path, exif_bytes: bytes | None, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90, **({"exif": exif_bytes} if exif_bytes else {}))


def broken_gps_pointer() -> bytes:
    """EXIF whose GPS IFD pointer points past the end of the block (as a truncating editor leaves it)."""
    raw = gps_exif(30.0, 120.0).tobytes()
    tag = struct.pack(">HHI", GPS_IFD, 4, 1)  # Pillow writes big-endian ("MM")
    at = raw.index(tag) + len(tag)
    return raw[:at] + struct.pack(">I", 0xFFFFFF00) + raw[at + 4:]


def read_back(exif: Image.Exif):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=exif.tobytes())
    buffer.seek(0)
    return gps_position(Image.open(buffer).getexif())


@pytest.mark.unit
def test_gps_positions_are_read_signed_and_malformed_ones_are_none():
    lat, lon = read_back(gps_exif(-33.8688, -70.5))
    assert math.isclose(lat, -33.8688, abs_tol=1e-6) and math.isclose(lon, -70.5, abs_tol=1e-6)
    good = {1: "N", 2: (30.0, 15.0, 0.0), 3: "E", 4: (120.0, 0.0, 0.0)}
    assert read_back(gps_exif(tags=good)) == (30.25, 120.0)
    for broken in ({1: "Q"}, {2: (95.0, 0.0, 0.0)}, {2: (30.0, 0.0, 0.0, 1.0)}, {3: None, 4: None},
                   {2: (TiffImagePlugin.IFDRational(30, 0), 0.0, 0.0)}, {2: (0.0, 0.0, 0.0), 4: (0.0, 0.0, 0.0)}):
        tags = {**good, **broken}
        assert read_back(gps_exif(tags={k: v for k, v in tags.items() if v is not None})) is None, broken
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=broken_gps_pointer())
    buffer.seek(0)
    assert gps_position(Image.open(buffer).getexif()) is None


@pytest.mark.unit
def test_near_and_place_values_are_checked_where_the_filters_are_made():
    assert parse_near("30.27, 120.15, 50") == (30.27, 120.15, 50.0) and parse_near("") is None
    for bad in ("30.27,120.15", "north,120,5", "91,0,5", "0,181,5", "0,0,0", "0,0,-3"):
        with pytest.raises(UsageError, match="--near"):
            Filters.parse(near=bad)
    with pytest.raises(UsageError, match="--place"):
        Filters.parse(place="x" * 101)
    assert Filters.parse(place="  杭州 ").place == "杭州" and not Filters.parse(place=" ").active
    # Hangzhou to Shanghai is about 165 km along the great circle
    assert 150 < float(haversine_km(30.2741, 120.1551, 31.2304, 121.4737)) < 180


@pytest.fixture(scope="module")
def toy_clip():
    from chapter09.clip import clip_encoder

    return clip_encoder("clip", Settings("toy"))


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, toy_clip):
    """The library, its index and what the run's one place lookup was asked (the positions, in one call)."""
    root = tmp_path_factory.mktemp("places")
    library, index = root / "lib", root / "idx"
    for seed, (name, (lat, lon)) in enumerate(POSITIONS.items()):
        jpeg(library / name, gps_exif(lat, lon).tobytes(), seed)
    jpeg(library / "broken_gps.jpg", broken_gps_pointer(), 10)
    jpeg(library / "bad_ref.jpg", gps_exif(tags={1: "Q", 2: (30.0, 0.0, 0.0), 3: "E", 4: (120.0, 0.0, 0.0)}).tobytes(),
         11)
    jpeg(library / "no_gps.jpg", None, 12)
    calls = []
    real = index_places.locate

    def counted(points):
        calls.append(list(points))
        return real(points)

    patch = pytest.MonkeyPatch()
    patch.setattr(index_places, "locate", counted)
    try:
        summary = build_index(library, index, {"clip": toy_clip}, progress=False, workers=0)
    finally:
        patch.undo()
    return {"library": library, "index": index, "summary": summary, "calls": calls}


def stored(index) -> dict:
    rows = Store.open(index).images("clip").records(("path", *PLACE_COLUMNS))
    return {row.pop("path"): row for row in rows}


def test_index_reads_positions_and_names_them_in_one_lookup(indexed):
    summary, rows = indexed["summary"], stored(indexed["index"])
    assert summary.added == len(POSITIONS) + 3 and not summary.failed  # malformed GPS: indexed anyway
    assert len(indexed["calls"]) == 1 and len(indexed["calls"][0]) == len(POSITIONS) == summary.placed
    print(f"index run {summary.seconds:.1f} s, of which naming {summary.placed} positions {summary.places_s:.1f} s")
    for name, (lat, lon) in POSITIONS.items():
        assert math.isclose(rows[name]["lat"], lat, abs_tol=1e-5) and math.isclose(rows[name]["lon"], lon, abs_tol=1e-5)
    named = {name: (row["place"], row["place_zh"], row["country"]) for name, row in rows.items() if row["place"]}
    assert named == {"west_lake.jpg": ("Hangzhou", "杭州", "CN"), "trip/hz_station.jpg": ("Hangzhou", "杭州", "CN"),
                     "trip/beijing.jpg": ("Beijing", "北京", "CN"), "trip/shanghai.jpg": ("Shanghai", "上海", "CN"),
                     "paris.jpg": ("Paris", "巴黎", "FR")}
    assert rows["west_lake.jpg"]["admin"] == "Zhejiang Sheng"
    for name in ("broken_gps.jpg", "bad_ref.jpg", "no_gps.jpg"):  # read, no position (NaN), no place
        assert math.isnan(rows[name]["lat"]) and rows[name]["place"] is None, name


def found(indexed, **filters) -> set[str]:
    searcher = LibrarySearch(indexed["index"], Settings("toy"))
    result = searcher.search([Term("text", "a photo")], 20,
                             filters=Filters.parse(**filters, library=str(indexed["library"])))
    return {hit["path"] for hit in result["hits"]}


def test_place_and_near_filters_return_exactly_the_photos_taken_there(indexed):
    hangzhou = {"west_lake.jpg", "trip/hz_station.jpg"}
    assert found(indexed, place="Hangzhou") == hangzhou == found(indexed, place="杭州")
    assert found(indexed, place="hangzhou") == hangzhou == found(indexed, place="杭州市")
    assert found(indexed, near="30.27,120.15,50") == hangzhou  # Shanghai is 165 km away
    assert found(indexed, near="30.27,120.15,200") == hangzhou | {"trip/shanghai.jpg"}
    assert found(indexed, place="Zhejiang") == hangzhou  # the region
    assert found(indexed, place="China") == hangzhou | {"trip/beijing.jpg", "trip/shanghai.jpg"}
    assert found(indexed, place="France") == {"paris.jpg"} == found(indexed, place="巴黎")
    assert found(indexed, place="Paris", folder="trip") == set()  # with the other filters
    assert found(indexed, place="Nowhere Town") == set()
    searcher = LibrarySearch(indexed["index"], Settings("toy"))
    typo = searcher.search([Term("text", "a photo")], 5, filters=Filters.parse(place="Hangzhuo"))
    assert not typo["hits"] and any("called 'Hangzhuo'" in n and "Hangzhou (2)" in n for n in typo["notes"])
    known = searcher.search([Term("text", "a photo")], 5, filters=Filters.parse(place="Beijing"))
    assert not any("called" in n for n in known.get("notes", ()))


def test_a_position_is_named_by_the_prominent_city_nearby_and_none_at_sea():
    from chapter09.capstone.search.places import NOWHERE, locate

    at_sea, passy, west_lake = locate([(0.0, -30.0), (48.87, 2.29), (30.27, 120.15)])
    assert at_sea == {"place": NOWHERE, "place_zh": None, "admin": None, "country": None}
    assert (passy["place"], passy["country"]) == ("Paris", "FR") and west_lake["place_zh"] == "杭州"
    import reverse_geocoder  # its nearest entries: the next town and a township

    nearest = reverse_geocoder.search([(48.87, 2.29), (30.27, 120.15)], mode=1, verbose=False)
    assert [n["name"] for n in nearest] == ["Levallois-Perret", "Mishixiang"]


@pytest.mark.unit
def test_positions_cross_rays_columns_as_floats():
    from chapter09.capstone.index.decode import items_as_columns, items_from_columns
    from chapter09.capstone.index.metadata import NO_METADATA

    items = [{"path": "a.jpg", "ok": True, "reason": "", "width": 4, "height": 3, "size": 9, "mtime_ns": 1,
              "sha1": "x", **NO_METADATA, "lat": 30.2587, "lon": -120.1315},
             {"path": "b.jpg", "ok": True, "reason": "", "width": 4, "height": 3, "size": 9, "mtime_ns": 1,
              "sha1": "y", **NO_METADATA}]
    back = items_from_columns(items_as_columns(items))
    assert (back[0]["lat"], back[0]["lon"]) == (30.2587, -120.1315) and math.isnan(back[1]["lat"])


def test_cli_search_takes_place_and_shows_it_on_the_hit(indexed, capsys):
    from chapter09.capstone.__main__ import main

    main(["search", "--index", str(indexed["index"]), "--text", "a photo", "--models", "toy", "--place", "杭州",
          "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["filters"] == {"place": "杭州"} and result["matching"] == 2
    hit = next(h for h in result["hits"] if h["path"] == "west_lake.jpg")
    assert hit["place"] == {"name": "Hangzhou", "name_zh": "杭州", "admin": "Zhejiang Sheng", "country": "CN"}
    assert math.isclose(hit["lat"], 30.2587, abs_tol=1e-5) and math.isclose(hit["lon"], 120.1315, abs_tol=1e-5)
    main(["search", "--index", str(indexed["index"]), "--text", "a photo", "--models", "toy", "--near",
          "48.85,2.35,5"])
    text = capsys.readouterr().out
    assert "paris.jpg  @ Paris 巴黎, Ile-de-France, FR (48.8566, 2.3522)" in text and "west_lake" not in text


def test_an_index_without_the_place_columns_opens_refuses_place_filters_then_fills_them(indexed, tmp_path,
                                                                                        toy_clip):
    import lancedb

    library, index = indexed["library"], tmp_path / "idx"
    shutil.copytree(indexed["index"], index)
    name = Store.open(index).images("clip").name
    lancedb.connect(index).open_table(name).drop_columns(list(PLACE_COLUMNS))  # as an index made before them
    searcher = LibrarySearch(index, Settings("toy"))  # opens; searches without place filters work
    assert len(searcher.search([Term("text", "a photo")], 3)["hits"]) == 3
    with pytest.raises(UsageError, match="re-run `index`"):
        searcher.search([Term("text", "a photo")], 3, filters=Filters.parse(place="Hangzhou"))
    summary = build_index(library, index, {"clip": toy_clip}, progress=False, workers=0)
    assert summary.unchanged == len(POSITIONS) + 3 and summary.added == 0
    assert summary.metadata_filled == len(POSITIONS) + 3 and summary.placed == len(POSITIONS)
    assert stored(index)["trip/beijing.jpg"]["place_zh"] == "北京"
    assert found({"index": index, "library": library}, place="北京") == {"trip/beijing.jpg"}


# ----------------------------------------------------------------------------- the Duplicates tab
@pytest.fixture(scope="module")
def duplicated(tmp_path_factory, toy_clip):
    """A toy library with one byte-for-byte copy and one re-encoded (JPEG quality 60) copy."""
    from chapter09.toyworld import write_dataset

    source = write_dataset(tmp_path_factory.mktemp("dup_src"), n=10, seed=7, split="heldout")
    library, index = tmp_path_factory.mktemp("dup_lib"), tmp_path_factory.mktemp("dup_idx")
    source = source / "images"
    names = sorted(p.name for p in source.glob("*.png"))
    for name in names:
        shutil.copy(source / name, library / name)
    shutil.copy(source / names[0], library / "copy.png")
    Image.open(source / names[1]).convert("RGB").save(library / "recompressed.jpg", quality=60)
    build_index(library, index, {"clip": toy_clip}, progress=False, workers=0)
    return {"index": index, "names": names}


def test_duplicates_handler_groups_the_copy_and_the_near_copy(duplicated):
    from chapter09.capstone.web.duplicates import DuplicatesView
    from chapter09.capstone.web.handlers import Handlers
    from chapter09.capstone.web.library import WebLibrary

    library = WebLibrary(duplicated["index"], Settings("toy"))
    view = DuplicatesView(library, Handlers(library))
    exact_html, near_html, groups = view.duplicates(0.97, request=None)
    first, second = duplicated["names"][:2]
    assert [g["paths"] for g in groups["exact_groups"]] == [sorted(["copy.png", first])]
    assert [g["paths"] for g in groups["near_groups"]] == [sorted([second, "recompressed.jpg"])]
    assert groups["near_groups"][0]["loosest"] >= 0.97
    print(f"re-encoded copy: cosine {groups['near_groups'][0]['closest']}")
    assert "copy.png" in exact_html and "recompressed.jpg" in near_html and "<img" in near_html
    _, _, strict = view.duplicates(1.0, request=None)  # the threshold moves what counts as near
    assert strict["near_groups"] == [] and strict["exact_groups"] == groups["exact_groups"]
    import gradio as gr

    with pytest.raises(gr.Error, match="threshold"):
        view.duplicates("lots", request=None)
    assert len(list(duplicated["index"].glob("*"))) and all(
        (library.root / p).is_file() for g in groups["exact_groups"] + groups["near_groups"] for p in g["paths"])


def test_the_page_builds_with_the_duplicates_tab_and_the_place_filters(duplicated):
    from chapter09.capstone.web.page import build_app

    app, _ = build_app(duplicated["index"], Settings("toy"))
    config = app.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"duplicates-threshold", "duplicates-button", "duplicates-exact", "duplicates-near",
            "filter-place", "filter-near"} <= ids
    names = {d.get("api_name") for d in config["dependencies"]}
    assert {"duplicates", "text_search"} <= names
    explained = next(c["props"]["value"] for c in config["components"]
                     if c.get("props", {}).get("elem_id") == "duplicates-explained")
    assert "duplicates_explained" in explained  # a gr.I18n key each browser resolves (serve --lang auto)
    from chapter09.capstone.web.i18n import WORDS

    english, chinese = WORDS["duplicates_explained"]
    assert "Nothing is deleted" in english and "0.97" in english and "不会删除任何文件" in chinese and "0.97" in chinese


@pytest.mark.slow
@pytest.mark.e2e
def test_served_duplicates_tab_and_place_filter_in_the_browser_and_api(duplicated, indexed, tmp_path):
    """The Duplicates tab in headless Chromium: both panels filled, every thumbnail loaded from the server; the
    /duplicates API answers the same groups; the place filter through /text_search on the places index."""
    from gradio_client import Client
    from headless import launch, require_chromium
    from playwright.sync_api import sync_playwright

    from chapter09.capstone.web.serve import serve
    from tests.test_capstone_serve import free_port

    require_chromium()
    port = free_port()
    app = serve(duplicated["index"], port=port, settings=Settings("toy"), block=False)
    places_port = free_port()
    places_app = serve(indexed["index"], port=places_port, settings=Settings("toy"), block=False)
    try:
        _, _, groups = Client(f"http://127.0.0.1:{port}", verbose=False).predict(0.97, api_name="/duplicates")
        first, second = duplicated["names"][:2]
        assert [g["paths"] for g in groups["exact_groups"]] == [sorted(["copy.png", first])]
        assert [g["paths"] for g in groups["near_groups"]] == [sorted([second, "recompressed.jpg"])]
        _, note, hits = Client(f"http://127.0.0.1:{places_port}", verbose=False).predict(
            "a photo", "auto", 10, place="杭州", api_name="/text_search")
        assert {h["file"] for h in hits} == {"west_lake.jpg", "trip/hz_station.jpg"} and "place 杭州" in note
        assert all(h["place"]["name_zh"] == "杭州" and h["lat"] is not None for h in hits)
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}", timeout=60_000)
            page.get_by_role("tab", name="Duplicates 重复").click()
            assert "Nothing is deleted" in page.locator("#duplicates-explained").inner_text()
            page.locator("#duplicates-button").click()
            page.locator("#duplicates-near img").first.wait_for(timeout=60_000)
            page.wait_for_function("() => [...document.querySelectorAll('#duplicates-exact img, #duplicates-near img')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
            assert page.locator("#duplicates-exact img").count() == 2
            assert page.locator("#duplicates-near img").count() == 2
            assert "recompressed.jpg" in page.locator("#duplicates-near").inner_text()
            page.screenshot(path=str(tmp_path / "ui_duplicates.png"), full_page=True)
            browser.close()
    finally:
        app.close()
        places_app.close()


def test_the_json_api_takes_place_and_near_as_the_command_line_does(indexed):
    from fastapi.testclient import TestClient

    from chapter09.capstone.web.access import ClientLimiter
    from chapter09.capstone.web.api import build_api
    from chapter09.capstone.web.library import WebLibrary

    library = WebLibrary(indexed["index"], Settings("toy"), max_upload_mb=1)
    client = TestClient(build_api(library, ClientLimiter(100, rate=1000, burst=1000), (), None), root_path="/api")
    for params, expected in (({"place": "杭州"}, found(indexed, place="杭州")),
                             ({"near": "30.27,120.15,200"}, found(indexed, near="30.27,120.15,200"))):
        answer = client.get("/api/search", params={"text": "a photo", "k": 20, **params})
        assert answer.status_code == 200 and {hit["path"] for hit in answer.json()["hits"]} == expected
        assert all(hit["place"]["country"] == "CN" for hit in answer.json()["hits"])
    refused = client.get("/api/search", params={"text": "a photo", "near": "30.27,120.15"})
    assert refused.status_code == 400 and "--near" in refused.json()["error"]
