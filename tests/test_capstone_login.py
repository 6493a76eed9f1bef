"""serve --auth in a real browser (Debian's chromium, driven by Playwright) and through gradio_client: the
login page shows, a wrong password is refused, the right one is admitted and a search works."""
import os
from pathlib import Path

import pytest
from headless import launch, require_chromium

from chapter09.models import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
LOGIN = ("ann", "correct horse 7")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    from chapter09.capstone.__main__ import build_parser
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.web.serve import parse_logins, serve
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import load_scenes, write_dataset
    from tests.test_capstone_serve import free_port

    library = write_dataset(tmp_path_factory.mktemp("login_library"), n=30, seed=77, split="heldout")
    index = tmp_path_factory.mktemp("login_index")
    build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    # the login as the command line takes it: `serve --auth ann:PASSWORD`
    args = build_parser().parse_args(["serve", "--index", str(index), "--auth", ":".join(LOGIN)])
    logins = parse_logins(args.auth, env="")
    assert logins == [LOGIN]
    port = free_port()
    app = serve(args.index, port=port, settings=Settings("toy"), block=False, auth=logins)
    yield {"url": f"http://127.0.0.1:{port}", "scenes": sorted(load_scenes(library).items())}
    app.close()


def test_the_browser_gets_the_login_page_a_wrong_password_is_refused_the_right_one_searches(guarded, tmp_path):
    from playwright.sync_api import sync_playwright

    require_chromium()
    name, scene = guarded["scenes"][3]
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(guarded["url"], timeout=60_000)
        user, password = page.locator("input[type=text]").first, page.locator("input[type=password]").first
        password.wait_for(timeout=60_000)
        assert page.locator("#query").count() == 0  # nothing of the library before the login
        shot = Path(os.environ.get("CH09_LOGIN_SCREENSHOT", tmp_path / "login.png"))
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000
        user.fill(LOGIN[0])
        password.fill("wrong password")
        page.get_by_role("button", name="Login").click()
        page.get_by_text("Incorrect Credentials").wait_for(timeout=30_000)
        assert page.locator("#query").count() == 0
        user.fill(LOGIN[0])  # the refused form may have been cleared
        password.fill(LOGIN[1])
        page.get_by_role("button", name="Login").click()
        query = page.locator("#query textarea, #query input").first
        query.wait_for(timeout=60_000)
        query.fill(scene.captions("en")[0])
        page.locator("#search-button").click()
        first = page.locator("#results img").first
        first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        srcs = [img.get_attribute("src") for img in page.locator("#results img").all()[:5]]
        assert any(Path(name).stem in src for src in srcs), srcs
        # the thumbnails come with the session cookie; without it the same file is refused
        response = page.request.get(srcs[0] if srcs[0].startswith("http") else guarded["url"] + srcs[0])
        assert response.status == 200 and response.headers["content-type"].startswith("image/")
        browser.close()
    import httpx

    assert httpx.get(srcs[0] if srcs[0].startswith("http") else guarded["url"] + srcs[0], timeout=30).status_code \
        in (401, 403)


def test_gradio_client_needs_the_login_too(guarded):
    from gradio_client import Client

    with pytest.raises(Exception):
        Client(guarded["url"], auth=(LOGIN[0], "wrong password"), verbose=False, download_files=False)
    client = Client(guarded["url"], auth=LOGIN, verbose=False, download_files=False)
    name, scene = guarded["scenes"][3]
    _, _, hits = client.predict(scene.captions("en")[0], "auto", 5, api_name="/text_search")
    assert len(hits) == 5 and name in [h["file"] for h in hits]
