"""The capstone's web UI: its HTTP API (gradio_client), its limits, and the page in a real headless
browser (Debian's chromium, driven by Playwright)."""
import os
import shutil
import socket
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from headless import launch, require_chromium

from chapter09.models import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
HEIC = "phone/IMG_0001.heic"
STORED = {"en": "a stored caption: red circle, yellow circle", "zh": "存储的描述：红色圆形和黄色圆形"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from PIL import Image

    from chapter09.capstone.__main__ import build_parser
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.store.database import Store
    from chapter09.capstone.web.serve import serve
    from chapter09.capstone.web.thumbnails import file_sha1
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import load_scenes, write_dataset

    library = write_dataset(tmp_path_factory.mktemp("ui_library"), n=150, seed=55, split="heldout")
    # a phone photo among the PNGs: a scene the library does not hold otherwise, saved as HEIC
    other = write_dataset(tmp_path_factory.mktemp("ui_other"), n=1, seed=56, split="heldout")
    (name, heic_scene), = load_scenes(other).items()
    (library / "phone").mkdir()
    Image.open(other / name).convert("RGB").save(library / HEIC, quality=95)
    index = tmp_path_factory.mktemp("ui_index")
    build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    # captions stored in the index (as `caption --index` writes them) for one image
    name = sorted(load_scenes(library))[17]
    with Store.open(index, library=library, write=True) as store:
        store.put_captions([{"path": name, "sha1": file_sha1(library / name), **STORED}])
    # the cap as the command line types it (a float): `serve --max-upload-mb 5` used to crash at start
    # started with a relative --index from the index's parent folder, then the tests run elsewhere: every
    # file the UI hands out must be absolute (the API used to answer 403 from any other working folder)
    args = build_parser().parse_args(["serve", "--index", index.name, "--max-upload-mb", "5"])
    port = free_port()
    here = os.getcwd()
    os.chdir(index.parent)
    try:
        app = serve(args.index, port=port, settings=Settings("toy"), max_upload_mb=args.max_upload_mb, block=False)
    finally:
        os.chdir(here)
    yield {"url": f"http://127.0.0.1:{port}", "library": library, "index": index, "app": app,
           "heic_scene": heic_scene}
    app.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], download_files=False, verbose=False)


def test_every_action_has_one_stable_api_name(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(endpoints) == ["/caption", "/caption_hit", "/caption_text_search", "/combined_search",
                                 "/duplicates", "/find_similar", "/image_search", "/match", "/ocr_text_search", "/text_search"]


def test_search_returns_thumbnails_scores_paths_and_hit_actions_need_no_upload(server, client):
    from PIL import Image

    from chapter09.toyworld import load_scenes

    name, scene = sorted(load_scenes(server["library"]).items())[17]
    gallery, note, hits = client.predict(scene.captions("en")[0], "auto", 8, api_name="/text_search")
    assert "clip" in note and "151 images" in note
    assert hits[0]["file"] == name and hits[0]["rank"] == 1 and -1 <= hits[0]["score"] <= 1
    assert [h["rank"] for h in hits] == list(range(1, 9)) and len(gallery) == 8
    assert gallery[0]["caption"].startswith(f"1. {hits[0]['score']:.3f}") and Path(name).name in gallery[0]["caption"]
    # the captions the index stores travel with the hit (and label it); other hits have none
    assert (hits[0]["caption_en"], hits[0]["caption_zh"]) == (STORED["en"], STORED["zh"])
    assert STORED["zh"] in gallery[0]["caption"]
    assert hits[1]["caption_en"] is None and hits[1]["caption_zh"] is None
    # the gallery carries a small JPEG made once in INDEX/thumbnails, not the library file
    thumbnails = sorted((server["index"] / "thumbnails").glob(f"*-256-{Path(name).stem}.jpg"))
    assert len(thumbnails) == 1 and Path(gallery[0]["image"]["path"]).name == thumbnails[0].name
    with Image.open(thumbnails[0]) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    # from a hit: find similar (its own file finds itself first) and caption it, nothing uploaded
    _, similar_note, similar = client.predict(name, 5, api_name="/find_similar")
    assert similar[0]["file"] == name and similar[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert "similar to" in similar_note
    english, chinese = client.predict(name, api_name="/caption_hit")
    assert english.strip() and any("\u4e00" <= c <= "\u9fff" for c in chinese)
    # a hit outside the library is refused, not served
    with pytest.raises(Exception, match="pick a result"):
        client.predict("../../../../etc/passwd", 5, api_name="/find_similar")


def test_a_heic_photo_is_searched_and_shown_as_jpeg(server, client):
    from chapter09.capstone.web.library import WebLibrary

    _, _, hits = client.predict(server["heic_scene"].captions("en")[0], "auto", 3, api_name="/text_search")
    assert hits[0]["file"] == HEIC
    assert sorted((server["index"] / "thumbnails").glob("*-256-IMG_0001.jpg"))
    # a browser cannot show HEIC: the detail view links a large JPEG rendition (and the original file)
    detail = WebLibrary(server["index"], Settings("toy")).detail_html(hits[0])
    assert "-2048-IMG_0001.jpg" in detail.split('id="full-image" src="')[1].split('"')[0]
    assert "IMG_0001.heic" in detail


def test_an_upload_over_the_cap_is_refused_with_a_clear_message(server, tmp_path):
    import httpx
    from gradio import Error

    from chapter09.capstone.web.library import WebLibrary

    assert server["app"].max_file_size == 5 * 1024 * 1024
    big = tmp_path / "huge.jpg"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    response = httpx.post(server["url"] + "/gradio_api/upload",
                          files={"files": ("huge.jpg", big.read_bytes(), "image/jpeg")}, timeout=60)
    assert response.status_code == 413 and "maximum allowed size of 5242880 bytes" in response.text
    # files that reach a function without the upload route (inline data) are checked again
    with pytest.raises(Error, match=r"huge.jpg is 6.0 MB, over this server's upload limit of 5 MB"):
        WebLibrary(server["index"], Settings("toy"), max_upload_mb=5).upload(big)


def test_a_non_image_upload_is_refused_with_a_clear_message(client, tmp_path):
    from gradio_client import handle_file

    text = tmp_path / "notes.png"
    text.write_text("this is not a picture")
    for api_name, extra in (("/image_search", (8,)), ("/caption", ()), ("/match", ("a cat",))):
        with pytest.raises(Exception, match="notes.png is not an image this server can read"):
            client.predict(handle_file(str(text)), *extra, api_name=api_name)


def test_thumbnails_are_made_once_and_follow_the_content(tmp_path):
    from PIL import Image

    from chapter09.capstone.web.thumbnails import ensure_thumbnail

    photo = tmp_path / "photo.png"
    Image.new("RGB", (800, 400), "red").save(photo)
    first = ensure_thumbnail(tmp_path / "index", photo)
    made = first.stat().st_mtime_ns
    assert ensure_thumbnail(tmp_path / "index", photo) == first and first.stat().st_mtime_ns == made
    with Image.open(first) as thumb:
        assert thumb.size == (256, 128)
    Image.new("RGB", (800, 400), "blue").save(photo)  # the same path, other content: a new thumbnail
    second = ensure_thumbnail(tmp_path / "index", photo)
    assert second != first
    with Image.open(second) as thumb:
        assert thumb.getpixel((10, 10))[2] > 200


def test_the_page_shows_the_toy_banner_models_thumbnails_and_hit_details(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from chapter09.capstone.web.page import TOY_BANNER
    from chapter09.toyworld import load_scenes

    require_chromium()
    url, library = server["url"], server["library"]
    name, scene = sorted(load_scenes(library).items())[17]
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url, timeout=60_000)
        # the truth first: the toy banner and the model table, in the header, before any tab
        banner = page.locator("#toy-banner")
        banner.wait_for(timeout=60_000)
        assert banner.is_visible() and TOY_BANNER in banner.inner_text()
        table = page.locator("#model-table")
        assert table.is_visible()
        text = table.inner_text()
        assert all(role in text for role in ("clip", "captioner", "translator_zh_en")) and "toy twin" in text
        # a search shows thumbnails
        page.locator("#query textarea, #query input").first.fill(scene.captions("en")[0])
        page.locator("#search-button").click()
        first = page.locator("#results img").first
        first.wait_for(timeout=60_000)
        assert first.is_visible() and f"-256-{Path(name).stem}.jpg" in first.get_attribute("src")
        page.wait_for_function("document.querySelector('#results img').naturalWidth > 0", timeout=30_000)
        assert 0 < first.evaluate("img => img.naturalWidth") <= 256
        response = page.request.get(first.get_attribute("src") if first.get_attribute("src").startswith("http")
                                    else url + first.get_attribute("src"))
        assert response.status == 200 and response.headers["content-type"].startswith("image/")
        # clicking a hit opens its detail: the full image, score, path
        first.click()
        full = page.locator("#hit-detail #full-image")
        full.wait_for(timeout=30_000)
        assert Path(name).name in full.get_attribute("src")
        page.wait_for_function("document.querySelector('#hit-detail #full-image').naturalWidth > 0", timeout=30_000)
        assert full.evaluate("img => img.naturalWidth") == 128  # the library file itself, full size
        detail = page.locator("#hit-detail").inner_text()
        assert name in detail and STORED["en"] in detail and STORED["zh"] in detail
        # ... and from it, caption this (Chinese shown) and find similar, without uploading anything
        page.locator("#caption-hit-button").click()
        page.wait_for_function("""() => { const t = document.querySelector('#hit-caption-zh textarea');
                                  return t && /[\\u4e00-\\u9fff]/.test(t.value); }""", timeout=60_000)
        page.locator("#similar-button").click()
        page.wait_for_function("document.querySelector('#search-note') && "
                               "document.querySelector('#search-note').innerText.includes('similar to')",
                               timeout=30_000)
        # a Chinese query through the same UI
        page.locator("#query textarea, #query input").first.fill(scene.captions("zh")[0])
        page.locator("#search-button").click()
        page.wait_for_function("document.querySelector('#search-note') && "
                               "!document.querySelector('#search-note').innerText.includes('similar to')",
                               timeout=30_000)
        page.wait_for_timeout(1000)
        srcs = [img.get_attribute("src") for img in page.locator("#results img").all()[:5]]
        assert any(Path(name).stem in src for src in srcs), srcs
        page.locator("#results img").first.click()
        page.locator("#hit-detail #full-image").wait_for(timeout=30_000)
        page.locator("#caption-hit-button").click()
        page.wait_for_function("""() => { const t = document.querySelector('#hit-caption-zh textarea');
                                  return t && /[\\u4e00-\\u9fff]/.test(t.value); }""", timeout=60_000)
        page.wait_for_timeout(500)
        shot = Path(os.environ.get("CH09_UI_SCREENSHOT", tmp_path / "ui.png"))
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # uploads: one over the cap and one that is not an image, each refused with a message that says so
        big, text = tmp_path / "huge.jpg", tmp_path / "notes.png"
        big.write_bytes(os.urandom(6 * 1024 * 1024))
        text.write_text("this is not a picture")
        for upload, message in ((big, 'exceed the maximum allowed size of 5.0 Mb: "huge.jpg"'),
                                (text, "notes.png is not an image this server can read")):
            page.reload()
            page.get_by_text("…or search by an example image").click()
            page.locator("#example-image input[type=file]").set_input_files(str(upload))
            if upload is text:
                page.locator("#image-search-button").click()
            page.get_by_text(message).first.wait_for(timeout=30_000)
        browser.close()
    outside = url + "/gradio_api/file=/etc/passwd"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(outside, timeout=10)
    assert refused.value.code in (403, 404)


def test_the_banner_shows_whenever_any_role_is_a_toy_twin():
    from chapter09.capstone.web.page import TOY_BANNER, header_html

    def rows(*weights):
        return [{"role": f"role{i}", "weights": w, "class": "CLIPModel", "location": "somewhere"}
                for i, w in enumerate(weights)]

    assert TOY_BANNER not in header_html(rows("real", "real"), Path("/lib"), 3, "exact")
    assert TOY_BANNER not in header_html(rows("real", "unavailable"), Path("/lib"), 3, "exact")
    page = header_html(rows("real", "toy twin"), Path("/lib"), 3, "exact")
    assert 'id="toy-banner"' in page and TOY_BANNER in page and 'id="model-table"' in page


def test_binds_to_loopback_by_default():
    import inspect

    from chapter09.capstone.web.serve import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_the_documented_api_call_downloads_its_files_from_any_folder(server, tmp_path, monkeypatch):
    from gradio_client import Client

    monkeypatch.chdir(tmp_path)  # neither the library, nor the index, nor where serve started
    client = Client(server["url"], verbose=False, download_files=str(tmp_path / "downloads"))
    gallery, note, hits = client.predict("a red circle", "auto", 8, api_name="/text_search")
    assert len(gallery) == len(hits) == 8
    assert all(isinstance(hit, dict) and (server["library"] / hit["file"]).is_file() for hit in hits)
    for item in gallery:  # each thumbnail came over HTTP into the client's folder
        path = Path(item["image"])
        assert path.is_relative_to(tmp_path / "downloads") and path.stat().st_size > 0


def test_no_analytics_no_monitoring_endpoint(server):
    import re

    import httpx

    config = httpx.get(server["url"] + "/config", timeout=30).json()
    assert config["analytics_enabled"] is False
    assert httpx.get(server["url"] + "/monitoring", timeout=30).status_code in (401, 403, 404)
    # the page loads its scripts, styles and fonts from this server, not from a CDN
    page = httpx.get(server["url"] + "/", timeout=30).text
    loads = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', page)
    assert not [url for url in loads if not url.startswith(server["url"])], loads
    css = [httpx.get(server["url"] + "/" + href.lstrip("/"), timeout=30).text
           for href in re.findall(r'<link[^>]+href="([^"]+\.css)"', page) if not href.startswith("http")]
    assert not any("fonts.googleapis" in sheet for sheet in css)


def test_hostile_inputs_get_a_message_never_a_crash(server, client):
    k_bound = "maximum value 50|minimum value 1|whole number from 1 to 50"  # Gradio's slider check, or ours
    bad = [(("a red circle", "auto", 10**9), k_bound), (("a red circle", "auto", -3), k_bound),
           (("a red circle", "auto", 2.5), k_bound), (("a red circle", "auto", "lots"), k_bound + "|could not convert"),
           (("", "auto", 8), "type a query"),
           (("x" * 100_000, "auto", 8), "this server reads at most 500"),
           ((f"red{chr(0)}{chr(7)}circle", "auto", 8), None)]  # control characters: a result
    for args, message in bad:
        if message is None:
            assert len(client.predict(*args, api_name="/text_search")[2]) == 8
        else:
            with pytest.raises(Exception, match=message):
                client.predict(*args, api_name="/text_search")
    for relative in ("/etc/passwd", "a" * 5000, f"x{chr(0)}y", "../" * 50):
        with pytest.raises(Exception, match="pick a result"):
            client.predict(relative, 5, api_name="/find_similar")
    assert client.predict("a red circle", "auto", 1, api_name="/text_search")[2]  # still serving


def test_one_client_gets_a_few_slots_and_then_is_told_to_slow_down():
    from gradio import Error

    from chapter09.capstone.web.access import ClientLimiter

    def request(user=None, host="10.0.0.7"):
        return type("Request", (), {"username": user, "client": type("Client", (), {"host": host})()})()

    limiter = ClientLimiter(2)
    with limiter.slot(request()), limiter.slot(request()):
        with pytest.raises(Error, match=r"slow down: this client \(address 10.0.0.7\) already has 2 searches"):
            with limiter.slot(request()):
                pass
        with limiter.slot(request(host="10.0.0.8")), limiter.slot(request(user="bob")):
            pass  # others are served meanwhile
    with limiter.slot(request()), limiter.slot(request()):
        pass  # slots come back when searches end
    with limiter.slot(request(host="127.0.0.1")), limiter.slot(request(host="127.0.0.1")), \
            limiter.slot(request(host="127.0.0.1")):
        pass  # this machine's own user, without a login, is not limited (bench.web plays 20 users from here)
    with pytest.raises(Error, match=r"this client \(user ann\)"):
        with limiter.slot(request("ann", "127.0.0.1")), limiter.slot(request("ann", "127.0.0.1")), \
                limiter.slot(request("ann", "127.0.0.1")):
            pass
    assert not limiter.running


def test_one_client_sending_too_many_requests_a_second_is_told_to_slow_down():
    from gradio import Error

    from chapter09.capstone.web.access import ClientLimiter

    def request(user=None, host="10.0.0.7"):
        return type("Request", (), {"username": user, "client": type("Client", (), {"host": host})()})()

    now = [100.0]
    limiter = ClientLimiter(2, rate=5, burst=10, clock=lambda: now[0])
    for _ in range(10):  # a burst of 10, one after another (never more than 2 at once)
        with limiter.slot(request()):
            pass
    with pytest.raises(Error, match=r"slow down: this client \(address 10.0.0.7\) is sending more than 5 requests "
                                    r"a second \(at most 10 at once\); try again in 0.2 s"):
        with limiter.slot(request()):
            pass
    with limiter.slot(request(host="10.0.0.8")), limiter.slot(request(user="bob")):
        pass  # others are served meanwhile
    for _ in range(30):  # this machine's own user, without a login, is not limited
        with limiter.slot(request(host="127.0.0.1")):
            pass
    now[0] += 0.2  # one token back after 1/5 s: one request, then slow down again
    with limiter.slot(request()):
        pass
    with pytest.raises(Error, match="slow down"):
        with limiter.slot(request()):
            pass
    now[0] += 2.0  # a pause refills the bucket, to the burst and no further
    for _ in range(10):
        with limiter.slot(request()):
            pass
    with pytest.raises(Error, match="slow down"):
        with limiter.slot(request()):
            pass
    assert not limiter.running


def test_a_network_host_needs_a_login_unless_no_auth_says_so(server, capsys, tmp_path):
    from chapter09.capstone.web.access import check_exposure, parse_logins
    from chapter09.capstone.web.serve import serve
    from chapter09.errors import UsageError

    with pytest.raises(UsageError, match=r"serve --host 0.0.0.0 would show every photo in .* add a login"):
        serve(server["index"], host="0.0.0.0", port=free_port(), settings=Settings("toy"), block=False)
    check_exposure("0.0.0.0", [], True, server["library"])
    assert "NO LOGIN" in capsys.readouterr().err
    check_exposure("0.0.0.0", [("ann", "pw")], False, server["library"])
    logins = tmp_path / "logins"
    logins.write_text("# who may look\nann:pa:ss\n\nbob:x\n")
    assert parse_logins(["cy:1"], logins, env="dee:2, eve:3") == [("cy", "1"), ("ann", "pa:ss"), ("bob", "x"),
                                                                  ("dee", "2"), ("eve", "3")]
    for broken in ("nocolon", ":pw", "ann:"):
        with pytest.raises(UsageError, match="a login is USER:PASSWORD"):
            parse_logins([broken], env="")


def test_a_login_guards_the_page_and_the_api_a_burst_leaves_others_served_and_nothing_phones_home(server,
                                                                                                   monkeypatch):
    import threading
    import time

    import httpx
    from gradio_client import Client

    from chapter09.capstone.web import serve as serve_module
    from chapter09.capstone.web.library import WebLibrary

    # every name looked up and every address connected to, from building the app to the last search
    # (Gradio with analytics on looks up api.gradio.app and huggingface.co as it starts)
    contacted, lookup, connect = [], socket.getaddrinfo, socket.socket.connect

    def recorded_lookup(host, *args, **kwargs):
        contacted.append(host)
        return lookup(host, *args, **kwargs)

    def recorded_connect(sock, address):
        contacted.append(address[0] if isinstance(address, tuple) else address)
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", recorded_lookup)
    monkeypatch.setattr(socket.socket, "connect", recorded_connect)
    # gradio_client itself reports its use to huggingface.co and fetches huggingface_hub's agent registry
    # from there as it starts (HF_HUB_DISABLE_TELEMETRY=1 / HF_HUB_OFFLINE=1 on the client stop them): the
    # client's doing, not the server's. These clients skip both, so whatever is left was the server's.
    import huggingface_hub.utils._detect_agent as detect_agent

    monkeypatch.setattr(Client, "_telemetry_thread", lambda self: None)
    monkeypatch.setattr(detect_agent, "_fetch_registry", lambda: None)
    real = WebLibrary.by_text

    def slow(self, *args, **kwargs):  # a search that takes long enough for a burst to overlap
        time.sleep(0.4)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(WebLibrary, "by_text", slow)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = serve_module.serve(server["index"], port=port, settings=Settings("toy"), block=False,
                             auth=[("ann", "pw-ann"), ("bob", "pw-bob")])
    try:
        assert httpx.get(url + "/config", timeout=30).status_code == 401
        assert httpx.post(url + "/login", data={"username": "ann", "password": "wrong"}, timeout=30).status_code == 400
        with pytest.raises(Exception):
            Client(url, verbose=False, download_files=False)
        ann = Client(url, auth=("ann", "pw-ann"), verbose=False, download_files=False)
        bob = Client(url, auth=("bob", "pw-bob"), verbose=False, download_files=False)
        outcomes = []

        def burst():
            try:
                ann.predict("a red circle", "auto", 4, api_name="/text_search")
                outcomes.append("ok")
            except Exception as error:  # noqa: BLE001
                outcomes.append(str(error))

        threads = [threading.Thread(target=burst) for _ in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        assert len(bob.predict("a blue square", "auto", 4, api_name="/text_search")[2]) == 4
        for thread in threads:
            thread.join(60)
        assert outcomes.count("ok") >= 1 and any("slow down" in o for o in outcomes), outcomes
    finally:
        app.close()
    outside = {str(host) for host in contacted} - {"127.0.0.1", "localhost", "::1", "0.0.0.0", "None"}
    assert contacted and not outside, outside


def test_a_read_only_index_is_served_with_thumbnails_made_in_a_cache(server, tmp_path, monkeypatch, capsys):
    import subprocess

    from chapter09.capstone.web import library as web_library

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mount = tmp_path / "ro"
    mount.mkdir()
    real = not os.environ.get("CH09_TESTS_NO_MOUNT") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True).returncode == 0
    try:
        index = mount / "idx"
        shutil.copytree(server["index"], index, ignore=shutil.ignore_patterns("thumbnails", ".lock"))
        if real:  # a read-only file system, as a shared or archived index is
            subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        else:  # where nothing may be mounted: the probe that decides where thumbnails go is refused there
            writable = web_library.writable
            monkeypatch.setattr(web_library, "writable",
                                lambda folder: not folder.is_relative_to(mount) and writable(folder))
        library = web_library.WebLibrary(index, Settings("toy"))
        said = capsys.readouterr().err
        assert said.count("is read-only: new thumbnails are made in") == 1
        home = tmp_path / "cache" / "chapter09" / "serve"
        assert library.thumb_home.is_relative_to(home)
        result, _ = library.by_text("a red circle", "auto", 4)
        items, hits = library.hits(result)
        assert len(items) == len(hits) == 4
        assert all(Path(thumb).is_relative_to(library.thumb_home / "thumbnails") for thumb, _ in items)
        assert library.thumb_home / "thumbnails" in library.thumbnail_folders()  # allowed paths for Gradio
        assert not (index / "thumbnails").exists()
    finally:
        if real:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_bounded_fuzz_of_the_search_endpoints_gets_messages_or_results(server, client):
    import random

    rng = random.Random(20)
    texts = ["", " ", "a red circle", "红色圆形", "\x00\x01\x1b[31m", "x" * 600, "☃" * 499, "' OR 1=1 --", "../" * 9,
             "%s%n{0}", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace")]
    ks = [0, 1, 8, 50, 51, -1, 2.5, 1e308, "8", "lots", None, True]
    strategies = ["auto", "clip", "translate", "nope", "", None]
    generic = "has raised an exception but has not enabled verbose error reporting"
    # the filters every search takes, and the combined builder's rows: hostile values too
    folders = ["", "images", "../../etc", "/etc", "\x00", "x" * 5000, None]
    dates = ["", "2024-05-01", "yesterday", "9999-99-99", "2024-05-01T25:00", None, 5]
    cameras = ["", "canon", "x" * 1000, None]
    types = [[], ["png"], ["nope"], ["jpeg", "png"], None, "jpeg"]
    sizes = [0, 100, -5, "big", 1e308, None]
    kinds, signs, weights = ["text", "image", "this hit", "nope", None], ["add", "subtract", "x", None], \
        [1, -3, 0, "abc", 1e308, None]

    def filters():
        return (rng.choice(folders), rng.choice(dates), rng.choice(dates), rng.choice(cameras), rng.choice(types),
                rng.choice(sizes))

    def term():
        return (rng.choice(kinds), rng.choice(signs), rng.choice(texts + ["images/heldout_55_00000.png"]), None,
                rng.choice(weights))

    tried = Counter()
    for _ in range(80):
        api = rng.choice(["/text_search", "/find_similar", "/combined_search", "/caption_text_search"])
        if api == "/text_search":
            args = (rng.choice(texts), rng.choice(strategies), rng.choice(ks))
        elif api == "/find_similar":
            args = (rng.choice(texts + ["images/heldout_55_00000.png"]), rng.choice(ks))
        elif api == "/combined_search":
            args = (rng.choice(texts), None, *term(), *term(), *term(), rng.choice(strategies), rng.choice(ks))
        else:
            args = (rng.choice(texts), rng.choice([True, False, None, "yes"]), rng.choice(texts),
                    rng.choice(strategies), rng.choice(ks))
        args += filters() if rng.random() < 0.7 else ()
        try:
            client.predict(*args, api_name=api)
            tried["result"] += 1
        except Exception as error:  # noqa: BLE001
            assert generic not in str(error), (api, args)  # an unhandled error inside the server
            tried["message"] += 1
    assert client.predict("a red circle", "auto", 2, api_name="/text_search")[2]  # still serving
    print(f"fuzz: {sum(tried.values())} inputs, {dict(tried)}")
