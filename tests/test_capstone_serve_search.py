"""The web UI's filters, combined-query builder and caption-text search: in headless Chromium (Debian's, driven
by Playwright) and through gradio_client, each checked against ``LibrarySearch.search`` on the same index, and
``serve`` finding rows indexed after it started. One toy library of 40 images (15 JPEGs in trip/, 25 PNGs in
home/, two with stored captions), one server for the module."""
import os
import shutil
from pathlib import Path

import pytest
from headless import launch, require_chromium

from chapter09.models import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
CAPTIONS = {"trip": ("a zebra by the sea", "海边的斑马"), "home": ("a zebra in a garden", "花园里的斑马")}
MINUS = "a blue square"
NO_FILTER = ("", "", "", "", [], 0)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from PIL import Image

    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.capstone.store.database import Store
    from chapter09.capstone.web.serve import serve
    from chapter09.clip import clip_encoder
    from chapter09.images import file_sha1
    from chapter09.toyworld import load_scenes, write_dataset
    from tests.test_capstone_serve import free_port

    source = write_dataset(tmp_path_factory.mktemp("filters_src"), n=40, seed=4343, split="heldout")
    library = tmp_path_factory.mktemp("filters_lib")
    scenes = {}
    for i, (name, scene) in enumerate(sorted(load_scenes(source).items())):
        folder = "trip" if i < 15 else "home"
        (library / folder).mkdir(exist_ok=True)
        relative = f"{folder}/{Path(name).stem}{'.jpg' if folder == 'trip' else '.png'}"
        Image.open(source / name).convert("RGB").save(library / relative, quality=95)
        scenes[relative] = scene
    index = tmp_path_factory.mktemp("filters_idx")
    encoder = clip_encoder("clip", Settings("toy"))
    build_index(library, index, {"clip": encoder}, workers=0, progress=False)
    captioned = {folder: sorted(p for p in scenes if p.startswith(folder + "/"))[3] for folder in CAPTIONS}
    with Store.open(index, library=library, write=True) as store:
        store.put_captions([{"path": path, "sha1": file_sha1(library / path), "en": CAPTIONS[folder][0],
                             "zh": CAPTIONS[folder][1]} for folder, path in captioned.items()])
        store.finish()
    port = free_port()
    app = serve(index, port=port, settings=Settings("toy"), block=False)
    yield {"url": f"http://127.0.0.1:{port}", "library": library, "index": index, "scenes": scenes,
           "captioned": captioned, "searcher": LibrarySearch(index, Settings("toy")), "encoder": encoder}
    app.close()


@pytest.fixture(scope="module")
def client(served):
    from gradio_client import Client

    return Client(served["url"], download_files=False, verbose=False)


def reference(served, terms, k, **filters):
    """What ``LibrarySearch.search`` answers for these terms and filters: the paths, in order."""
    from chapter09.capstone.search.filters import Filters

    searcher = served["searcher"]
    searcher.refresh()
    result = searcher.search(terms, k, filters=Filters.parse(**filters, library=str(served["library"])))
    return [h["path"] for h in result["hits"]]


def rows(*terms):
    """The builder's three rows (kind, add/subtract, text or path, image, weight), unused ones left blank."""
    flat = []
    for kind, sign, value, weight in [*terms, *[("text", "add", "", 1)] * (3 - len(terms))]:
        flat += [kind, sign, value, None, weight]
    return flat


def test_every_search_api_takes_the_filters_and_answers_as_the_library_does(served, client):
    from chapter09.capstone.search.library_search import Term

    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/combined_search", "/caption_text_search"} <= set(endpoints)
    for name in ("/text_search", "/image_search", "/find_similar", "/combined_search", "/caption_text_search"):
        names = [p["parameter_name"] for p in endpoints[name]["parameters"]]
        assert names[-8:] == ["folder", "taken_after", "taken_before", "camera", "types", "min_size", "place",
                              "near"], name
        assert all(p["parameter_has_default"] for p in endpoints[name]["parameters"][-8:]), name
    # text search, folder filter: every hit in the folder, the note says what the filter kept
    _, note, hits = client.predict("a red circle", "auto", 10, "trip", api_name="/text_search")
    assert len(hits) == 10 and all(h["file"].startswith("trip/") for h in hits)
    assert "filter: folder trip -> 15 of 40 images match (exact)" in note
    assert [h["file"] for h in hits] == reference(served, [Term("text", "a red circle")], 10, folder="trip")
    # type and size filters through the API: PNGs only; no photo has a 200 px shorter side
    _, note, hits = client.predict("a red circle", "auto", 30, types=["png"], api_name="/text_search")
    assert len(hits) == 25 and all(h["file"].endswith(".png") for h in hits)
    assert "filter: types png -> 25 of 40 images match (exact)" in note
    _, note, hits = client.predict("a red circle", "auto", 5, "", "", "", "", [], 200, api_name="/text_search")
    assert hits == [] and "-> 0 of 40 images match" in note
    # combined: text minus a text plus an indexed hit, with a folder filter, as LibrarySearch.search answers it
    home = sorted(p for p in served["scenes"] if p.startswith("home/"))[7]
    text = served["scenes"][home].captions("en")[0]
    _, note, hits = client.predict(f"2:{text}", None, *rows(("text", "subtract", MINUS, 1), ("this hit", "add", home,
                                                                                              0.5)),
                                   "auto", 8, "home", api_name="/combined_search")
    expected = reference(served, [Term("text", text, 2.0), Term("text", MINUS, -1.0), Term("indexed", home, 0.5)],
                         8, folder="home")
    assert [h["file"] for h in hits] == expected and hits[0]["file"] == home
    assert "terms: +2×text" in note and "-1×text:" + MINUS in note and "+0.5×indexed:" + home in note
    # caption text in Chinese, with and without the folder filter; hybrid fuses it with the query box's text
    _, note, hits = client.predict("斑马", False, "", "auto", 5, api_name="/caption_text_search")
    assert {h["file"] for h in hits} == set(served["captioned"].values()) and "caption text: 斑马" in note
    _, _, hits = client.predict("海边", False, "", "auto", 5, api_name="/caption_text_search")
    assert [h["file"] for h in hits] == [served["captioned"]["trip"]]
    _, _, hits = client.predict("斑马", False, "", "auto", 5, "home", api_name="/caption_text_search")
    assert [h["file"] for h in hits] == [served["captioned"]["home"]]
    _, note, hits = client.predict("zebra", True, "a red circle", "auto", 5, api_name="/caption_text_search")
    assert "reciprocal rank" in note and set(served["captioned"].values()) <= {h["file"] for h in hits}
    # the old calls (no filter arguments) still answer unfiltered
    _, note, hits = client.predict("a red circle", "auto", 3, api_name="/text_search")
    assert len(hits) == 3 and "filter" not in note


def test_bad_filters_and_terms_get_a_message(client):
    for args, message in [(("a red circle", "auto", 5, "../.."), "'..' leaves the library"),
                          (("a red circle", "auto", 5, "/etc"), "not inside the library"),
                          (("a red circle", "auto", 5, "", "yesterday"), "give an ISO date"),
                          (("a red circle", "auto", 5, "", "", "", "", ["exe"]), "not in the list of choices"),
                          (("a red circle", "auto", 5, "", "", "", "", [], -3), "minimum value 0"),
                          (("a red circle", "auto", 5, "", "", "", "canon"), "re-run `index`")]:
        with pytest.raises(Exception, match=message):
            client.predict(*args, api_name="/text_search")
    for term, message in [(("this hit", "add", "/etc/passwd", 1), "not a photo in the library"),
                          (("text", "add", "a red circle", "lots"), "the weight must be a number|could not convert"),
                          (("text", "add", "a red circle", -1), "cancel out")]:
        with pytest.raises(Exception, match=message):
            client.predict("a red circle", None, *rows(term), "auto", 5, api_name="/combined_search")
    with pytest.raises(Exception, match="build a query first"):
        client.predict("", None, *rows(), "auto", 5, api_name="/combined_search")
    with pytest.raises(Exception, match="type a query too"):
        client.predict("zebra", True, "", "auto", 5, api_name="/caption_text_search")


def stems(page, count):
    """The stems of the gallery's first ``count`` thumbnails (``<sha1>-256-<stem>.jpg``), in order."""
    page.wait_for_function(f"document.querySelectorAll('#results img').length >= {count}", timeout=30_000)
    return [src.rsplit("/", 1)[-1].split("-256-", 1)[1].removesuffix(".jpg")
            for src in page.locator("#results img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")]


def wait_note(page, *parts):
    script = ("(parts) => { const n = document.querySelector('#search-note'); "
              "return n && parts.every(p => n.innerText.includes(p)); }")
    page.wait_for_function(script, arg=list(parts), timeout=60_000)


def test_the_page_drives_filters_the_builder_and_caption_search(served, tmp_path):
    from playwright.sync_api import sync_playwright

    from chapter09.capstone.search.library_search import Term
    from chapter09.capstone.web.page import TOY_BANNER

    require_chromium()
    folder_of = {Path(p).stem: p for p in served["scenes"]}
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(served["url"], timeout=60_000)
        page.locator("#toy-banner").wait_for(timeout=60_000)
        # the filters: folder trip from the dropdown of the library's top folders
        page.get_by_text("Filters 筛选").click()
        folder = page.locator("#filter-folder input").first
        folder.click()
        options = page.get_by_role("option")
        options.first.wait_for(timeout=10_000)
        shown = [o.strip() for o in options.all_inner_texts()]
        assert any("whole library" in o for o in shown) and {"home", "trip"} <= set(shown), shown
        page.get_by_role("option", name="trip", exact=True).click()
        page.locator("#query textarea, #query input").first.fill("a red circle")
        page.locator("#search-button").click()
        wait_note(page, "filter: folder trip -> 15 of 40 images match (exact)")
        shown = stems(page, 8)
        assert len(shown) == 8 and all(folder_of[s].startswith("trip/") for s in shown), shown
        # the builder: a text minus a text, under the same filter: the gallery is LibrarySearch.search's top 8
        page.get_by_text("…or combine").click()
        trip = sorted(p for p in served["scenes"] if p.startswith("trip/"))
        text = served["scenes"][trip[5]].captions("en")[0]
        page.locator("#combined-text textarea, #combined-text input").first.fill(text)
        page.locator("#term1 label", has_text="subtract").first.click()
        page.locator("#term1-value textarea, #term1-value input").first.fill(MINUS)
        page.locator("#combined-button").click()
        wait_note(page, "terms: +1×text:", f"-1×text:{MINUS}", "15 of 40")
        expected = reference(served, [Term("text", text), Term("text", MINUS, -1.0)], 8, folder="trip")
        assert [folder_of[s] for s in stems(page, 8)] == expected
        # "this hit" from the gallery: click the third result, use it as term 2 (added, weight 2)
        page.locator("#results img").nth(2).click()
        page.locator("#hit-detail #full-image").wait_for(timeout=30_000)
        hit = expected[2]
        page.locator("#term2-use-hit").click()
        page.wait_for_function("(hit) => { const t = document.querySelector('#term2-value textarea, "
                               "#term2-value input'); return t && t.value === hit; }", arg=hit, timeout=30_000)
        page.locator("#term2 label", has_text="add").first.click()
        page.locator("#term2-weight input").first.fill("2")
        page.locator("#combined-button").click()
        wait_note(page, f"+2×indexed:{hit}")
        expected = reference(served, [Term("text", text), Term("text", MINUS, -1.0), Term("indexed", hit, 2.0)], 8,
                             folder="trip")
        assert [folder_of[s] for s in stems(page, 8)] == expected and expected[0] == hit
        shot = Path(os.environ.get("CH09_UI_FILTERS_SCREENSHOT", tmp_path / "ui_filters.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # the captions' words, in Chinese, under the folder filter: the trip photo captioned with a zebra only
        page.get_by_text("…or search the captions' words").click()
        page.locator("#caption-text textarea, #caption-text input").first.fill("斑马")
        page.locator("#caption-text-button").click()
        wait_note(page, "caption text: 斑马", "folder trip")
        page.wait_for_timeout(500)
        assert [folder_of[s] for s in stems(page, 1)] == [served["captioned"]["trip"]]
        assert TOY_BANNER in page.locator("#toy-banner").inner_text() and page.locator("#model-table").is_visible()
        shot = Path(os.environ.get("CH09_UI_CAPTION_SCREENSHOT", tmp_path / "ui_caption_search.png"))
        page.screenshot(path=str(shot), full_page=True)
        browser.close()


def test_serve_finds_photos_indexed_after_it_started(served, client):
    """`index` run again beside a running `serve` (as `index --watch` does): the next search reopens the index."""
    from chapter09.capstone.index.build import build_index
    from chapter09.toyworld import write_dataset

    extra = write_dataset(served["library"].parent / "filters_extra", n=3, seed=4344, split="heldout")
    shutil.copytree(extra / "images", served["library"] / "new")
    build_index(served["library"], served["index"], {"clip": served["encoder"]}, workers=0, progress=False)
    _, note, hits = client.predict("a red circle", "auto", 10, "new", api_name="/text_search")
    assert "the index changed since the last search: reopened" in note and "43 images" in note
    assert sorted(h["file"] for h in hits) == sorted(f"new/{p.name}" for p in (extra / "images").iterdir())
    _, note, _ = client.predict("a red circle", "auto", 3, api_name="/text_search")
    assert "reopened" not in note  # nothing changed since
