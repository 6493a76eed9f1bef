"""The capstone's web UI in a real headless browser (Debian's chromium, driven by Playwright)."""
import shutil
import socket
import urllib.error
import urllib.request

import pytest

from chapter09.models import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from chapter09.capstone.indexer import build_index
    from chapter09.capstone.serve import serve
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path_factory.mktemp("ui_library"), n=150, seed=55, split="heldout")
    index = tmp_path_factory.mktemp("ui_index")
    build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    port = free_port()
    app = serve(index, port=port, settings=Settings("toy"), block=False)
    yield f"http://127.0.0.1:{port}", library
    app.close()


def test_text_search_in_the_browser_shows_the_right_image(server):
    from playwright.sync_api import sync_playwright

    from chapter09.toyworld import load_scenes

    if not shutil.which("chromium"):
        pytest.fail("Debian chromium is not installed: `apt-get install chromium` (CI does this in .ci/run)")
    url, library = server
    name, scene = sorted(load_scenes(library).items())[17]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.goto(url, timeout=60_000)
        page.locator("#query textarea, #query input").first.fill(scene.captions("en")[0])
        page.locator("#search-button").click()
        first = page.locator("#results img").first
        first.wait_for(timeout=60_000)
        assert name.split("/")[-1] in first.get_attribute("src")
        # the image itself is served (200, an image), and files outside the library are not
        response = page.request.get(first.get_attribute("src") if first.get_attribute("src").startswith("http")
                                    else url + first.get_attribute("src"))
        assert response.status == 200 and response.headers["content-type"].startswith("image/")
        # a Chinese query through the same UI
        page.locator("#query textarea, #query input").first.fill(scene.captions("zh")[0])
        page.locator("#search-button").click()
        page.wait_for_function("document.querySelector('#search-note') && "
                               "document.querySelector('#search-note').innerText.includes('clip')", timeout=30_000)
        page.wait_for_timeout(1500)
        srcs = [img.get_attribute("src") for img in page.locator("#results img").all()[:5]]
        assert any(name.split("/")[-1] in src for src in srcs), srcs
        browser.close()
    outside = url + "/gradio_api/file=/etc/passwd"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(outside, timeout=10)
    assert refused.value.code in (403, 404)


def test_binds_to_loopback_by_default():
    import inspect

    from chapter09.capstone.serve import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
