"""The JSON API beside the web page (``web/api.py``), through FastAPI's TestClient on a toy index of 24 images
(10 JPEGs in trip/, 14 PNGs in home/, two with stored captions): every search answers what ``search --json``
answers on the same index (same paths, same scores), files are served with ETags and only from the library, and
the login and per-client limits hold. One test starts ``serve`` to check the API is mounted beside the page."""
import base64
import io
import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chapter09.models import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
CAPTIONS = {"trip": ("a zebra by the sea", "海边的斑马"), "home": ("a zebra in a garden", "花园里的斑马")}


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    from PIL import Image

    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.store.database import Store
    from chapter09.clip import clip_encoder
    from chapter09.images import file_sha1
    from chapter09.toyworld import load_scenes, write_dataset

    source = write_dataset(tmp_path_factory.mktemp("api_src"), n=25, seed=4747, split="heldout")
    library = tmp_path_factory.mktemp("api_lib")
    scenes = {}
    for i, (name, scene) in enumerate(sorted(load_scenes(source).items())[:24]):
        folder = "trip" if i < 10 else "home"
        (library / folder).mkdir(exist_ok=True)
        relative = f"{folder}/{Path(name).stem}{'.jpg' if folder == 'trip' else '.png'}"
        Image.open(source / name).convert("RGB").save(library / relative, quality=95)
        scenes[relative] = scene
    outside = tmp_path_factory.mktemp("api_outside")  # an image the library lacks, for uploads; a secret beside it
    last = sorted(load_scenes(source))[24]
    shutil.copy(source / last, outside / "upload.png")
    (outside / "secret.txt").write_text("not for clients")
    index = tmp_path_factory.mktemp("api_idx")
    build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    captioned = {folder: sorted(p for p in scenes if p.startswith(folder + "/"))[2] for folder in CAPTIONS}
    with Store.open(index, library=library, write=True) as store:
        store.put_captions([{"path": path, "sha1": file_sha1(library / path), "en": CAPTIONS[folder][0],
                             "zh": CAPTIONS[folder][1]} for folder, path in captioned.items()])
        store.finish()
    return {"library": library, "index": index, "scenes": scenes, "outside": outside}


@pytest.fixture(scope="module")
def web_library(indexed):
    from chapter09.capstone.web.library import WebLibrary

    return WebLibrary(indexed["index"], Settings("toy"), max_upload_mb=1)


def api_client(web_library, limiter=None, logins=(), session_user=None):
    from fastapi.testclient import TestClient

    from chapter09.capstone.web.access import ClientLimiter
    from chapter09.capstone.web.api import build_api

    # TestClient's address is not loopback, so it is limited: a roomy limiter unless a test brings its own
    limiter = limiter or ClientLimiter(100, rate=1000, burst=1000)
    return TestClient(build_api(web_library, limiter, logins, session_user), root_path="/api")


@pytest.fixture(scope="module")
def client(web_library):
    return api_client(web_library)


def cli_search(index, *flags) -> dict:
    """``python -m chapter09.capstone search ... --json``, in this process."""
    import contextlib

    from chapter09.capstone.__main__ import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["search", "--index", str(index), "--models", "toy", "--json", *flags])
    assert code == 0, out.getvalue()
    return json.loads(out.getvalue())


def ranked(result) -> list[tuple[str, float]]:
    return [(hit["path"], hit["score"]) for hit in result["hits"]]


def test_searches_answer_as_the_command_line_does(indexed, client):
    index = indexed["index"]
    home = sorted(p for p in indexed["scenes"] if p.startswith("home/"))[4]
    text = indexed["scenes"][home].captions("en")[0]
    cases = [
        ({"text": "a red circle", "k": 5}, ["--text", "a red circle", "--k", "5"]),
        ({"text": "左上方的红色圆形", "k": 6, "strategy": "translate"},
         ["--text", "左上方的红色圆形", "--k", "6", "--strategy", "translate"]),
        ({"text": "a red circle", "folder": "trip", "k": 8}, ["--text", "a red circle", "--folder", "trip", "--k", "8"]),
        ({"text": "a blue square", "type": "png", "k": 20}, ["--text", "a blue square", "--type", "png", "--k", "20"]),
        ({"image": home, "k": 5}, ["--image", home, "--k", "5"]),
        ({"text": f"2:{text}", "add": [home], "subtract": ["0.5:a blue square"], "k": 7, "folder": "home"},
         ["--text", f"2:{text}", "--add", home, "--subtract", "0.5:a blue square", "--k", "7", "--folder", "home"]),
        ({"caption_text": "zebra", "k": 5}, ["--caption-text", "zebra", "--k", "5"]),
        ({"text": "a zebra", "hybrid": "true", "k": 5}, ["--text", "a zebra", "--hybrid", "--k", "5"]),
    ]
    for params, flags in cases:
        response = client.get("/search", params=params)
        assert response.status_code == 200, (params, response.text)
        answer, expected = response.json(), cli_search(index, *flags)
        assert ranked(answer) == ranked(expected) and answer["hits"], params
        assert answer["query_kind"] == expected["query_kind"] and answer["terms"] == expected["terms"], params
        assert all(h["thumbnail"].startswith("/api/thumbnail/" + h["path"]) and
                   h["original"] == "/api/original/" + h["path"] for h in answer["hits"])
    # the filters held: every hit in its folder / of its type
    trip = client.get("/search", params={"text": "a red circle", "folder": "trip", "k": 8}).json()
    assert all(h["path"].startswith("trip/") for h in trip["hits"]) and trip["matching"] == 10
    captions = client.get("/search", params={"caption_text": "zebra", "k": 5}).json()
    assert len(captions["hits"]) == 2 and all(h["captions"]["en"] for h in captions["hits"])


def test_an_uploaded_image_is_searched_as_the_command_line_searches_the_file(indexed, client):
    upload = indexed["outside"] / "upload.png"
    response = client.post("/search/image", params={"k": 6, "folder": "home"},
                           files={"image": ("upload.png", upload.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    expected = cli_search(indexed["index"], "--image", str(upload), "--k", "6", "--folder", "home")
    assert ranked(response.json()) == ranked(expected) and len(expected["hits"]) == 6
    assert response.json()["terms"] == [{"kind": "image", "value": "(uploaded image)", "weight": 1.0}]
    refused = client.post("/search/image", files={"image": ("notes.png", b"not an image at all", "image/png")})
    assert refused.status_code == 400 and "notes.png is not an image" in refused.json()["error"]
    too_big = client.post("/search/image", files={"image": ("big.png", b"\0" * (1024 * 1024 + 200_000), "image/png")})
    assert too_big.status_code == 413 and "limit of 1 MB" in too_big.json()["error"]


def test_thumbnails_and_originals_are_cacheable_files(indexed, client):
    hit = client.get("/search", params={"text": "a red circle", "k": 1}).json()["hits"][0]
    first = client.get(hit["thumbnail"].removeprefix("/api"))
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.content[:2] == b"\xff\xd8" and first.headers["cache-control"] == "private, max-age=31536000, immutable"
    etag = first.headers["etag"]
    again = client.get(hit["thumbnail"].removeprefix("/api"), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    # without the content's version the URL may change meaning: revalidated each time
    bare = client.get(f"/thumbnail/{hit['path']}")
    assert bare.headers["cache-control"] == "private, no-cache" and bare.headers["etag"] == etag
    assert client.get(f"/thumbnail/{hit['path']}", headers={"If-None-Match": '"other"'}).status_code == 200
    original = client.get(hit["original"].removeprefix("/api"))
    assert original.status_code == 200 and original.content == (indexed["library"] / hit["path"]).read_bytes()
    assert client.get(hit["original"].removeprefix("/api"),
                      headers={"If-None-Match": original.headers["etag"]}).status_code == 304


def test_nothing_outside_the_library_is_served(indexed, client):
    secret = indexed["outside"] / "secret.txt"
    link = indexed["library"] / "home" / "link.txt"
    os.symlink(secret, link)
    try:
        relative_secret = os.path.relpath(secret, indexed["library"])
        for path in (relative_secret, "../" + relative_secret, "%2e%2e/%2e%2e/etc/passwd", "..%2F..%2Fetc%2Fpasswd",
                     "%2Fetc%2Fpasswd", "home/link.txt", "home/missing.png", "home"):
            for route in ("thumbnail", "original"):
                response = client.get(f"/{route}/{path}")
                assert response.status_code == 404, (route, path, response.text)
                assert "error" in response.json() and b"not for clients" not in response.content
        # an image term names a path the index holds, never a file of this machine
        upload = str(indexed["outside"] / "upload.png")
        for image in (upload, "../" + os.path.relpath(upload, indexed["library"]), "home/missing.png"):
            response = client.get("/search", params={"image": image})
            assert response.status_code == 404 and "holds no image" in response.json()["error"], image
        assert client.get("/search", params={"text": "x", "add": upload}).status_code == 404
    finally:
        link.unlink()


def test_bad_requests_are_answered_with_a_message(client):
    for params, said in [({"text": "x", "k": 0}, "k:"), ({"text": "x", "k": "lots"}, "k:"),
                         ({"text": "x" * 501}, "at most 500"), ({}, "nothing to search for"),
                         ({"text": "x", "taken_after": "yesterday"}, "--taken-after"),
                         ({"text": "x", "type": "docx"}, "--type"), ({"text": "x", "strategy": "guess"}, "strategy"),
                         ({"text": "x", "caption_text": "y"}, "hybrid")]:
        response = client.get("/search", params=params)
        assert response.status_code == 400 and said in response.json()["error"], (params, response.text)
    assert client.get("/nowhere").json() == {"error": "Not Found"}


def test_a_login_is_required_when_the_server_has_one(web_library):
    def basic(user, password):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    sessions = {"cookie-of-bo": "bo"}
    client = api_client(web_library, logins=[("ann", "s3cret"), ("bo", "pw")],
                        session_user=lambda request: sessions.get(request.cookies.get("session")))
    params = {"text": "a red circle", "k": 2}
    refused = client.get("/search", params=params)
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert "log in" in refused.json()["error"]
    assert client.get("/search", params=params, headers=basic("ann", "wrong")).status_code == 401
    assert client.get("/search", params=params, headers={"Authorization": "Basic %%%"}).status_code == 401
    assert client.get("/thumbnail/home/x.png").status_code == 401  # files too, before saying whether they exist
    assert client.get("/search", params=params, headers=basic("ann", "s3cret")).status_code == 200
    assert client.get("/search", params=params, cookies={"session": "cookie-of-bo"}).status_code == 200
    assert client.get("/search", params=params, cookies={"session": "forged"}).status_code == 401


def test_one_client_sending_too_fast_is_told_to_slow_down(web_library):
    from chapter09.capstone.web.access import ClientLimiter

    now = [0.0]
    client = api_client(web_library, ClientLimiter(2, rate=1.0, burst=3, clock=lambda: now[0]))
    codes = [client.get("/search", params={"text": "a red circle", "k": 2}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get("/search", params={"text": "a red circle", "k": 2})
    assert refused.status_code == 429 and "slow down" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) >= 1
    assert client.get("/thumbnail/home/missing.png").status_code == 404  # files are not rate limited
    now[0] += 1.0  # a second later one token is back
    assert client.get("/search", params={"text": "a red circle", "k": 2}).status_code == 200


def test_serve_mounts_the_api_beside_the_page_behind_its_login(indexed, tmp_path):
    import httpx

    from chapter09.capstone.web.serve import serve
    from tests.test_capstone_serve import free_port

    port = free_port()
    app = serve(indexed["index"], port=port, settings=Settings("toy"), block=False, auth=[("ann", "s3cret")])
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/api/search?text=a+red+circle&k=3", timeout=30)
        assert refused.value.code == 401
        with httpx.Client(timeout=30) as http:
            answer = http.get(f"{url}/api/search", params={"text": "a red circle", "k": 3}, auth=("ann", "s3cret"))
            assert answer.status_code == 200 and len(answer.json()["hits"]) == 3
            thumb = http.get(url + answer.json()["hits"][0]["thumbnail"], auth=("ann", "s3cret"))
            assert thumb.status_code == 200 and thumb.headers["etag"]
            # the page's login form sets its session cookie, which the API takes too
            assert http.post(f"{url}/login", data={"username": "ann", "password": "s3cret"}).status_code == 200
            assert http.get(f"{url}/api/search", params={"text": "a red circle", "k": 3}).status_code == 200
            schema = http.get(f"{url}/api/openapi.json").json()
            assert {"/search", "/search/image", "/thumbnail/{relative}", "/original/{relative}"} <= set(schema["paths"])
            assert "/api/openapi.json" in http.get(f"{url}/api/docs").text
            assert http.get(f"{url}/").status_code == 200  # the page is still there
    finally:
        app.close()


def test_the_api_answers_from_the_servers_first_moment(indexed, monkeypatch):
    """The API is one of the server's routes when it starts: a client that reaches the page as soon as the server
    listens finds /api too (it was added after the start, a window in which /api answered 404)."""
    import gradio

    from chapter09.capstone.web.serve import serve
    from tests.test_capstone_serve import free_port

    port, seen = free_port(), []
    launch = gradio.Blocks.launch

    def launch_then_ask(self, *args, **kwargs):
        result = launch(self, *args, **kwargs)  # the server listens from here on
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?text=a+red+circle&k=1", timeout=30)
            seen.append(200)
        except urllib.error.HTTPError as error:
            seen.append(error.code)
        return result

    monkeypatch.setattr(gradio.Blocks, "launch", launch_then_ask)
    app = serve(indexed["index"], port=port, settings=Settings("toy"), block=False)
    app.close()
    assert seen == [200]


def test_searches_from_many_threads_at_once_answer_as_one_at_a_time(indexed, web_library):
    """Searches overlap (only the models' forward passes take turns): 8 threads searching at once, text and image
    terms mixed, get exactly the hits and scores each search gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from chapter09 import models
    from chapter09.capstone.search.library_search import SearchRequest, Term

    paths = sorted(indexed["scenes"])
    requests = [SearchRequest((Term("text", text),), 5) for text in
                ("a red circle", "a blue square", "a green triangle", "海边的斑马", "a zebra")] + \
               [SearchRequest((Term("indexed", path),), 5) for path in paths[:5]] + \
               [SearchRequest((Term("image", str(indexed["outside"] / "upload.png")),), 5)]

    def answer(request):
        result, _ = web_library.search(request)
        return [(h.path, round(h.score, 5)) for h in result.hits]
    models.clear_cache()  # the first searches load the models, at once (concurrent loads once broke every zh search)
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(answer, requests * 4))
    alone = [answer(request) for request in requests]
    assert together == alone * 4


@pytest.mark.unit
def test_the_shared_lock_lets_readers_overlap_and_a_writer_wait_for_them():
    import threading
    import time

    from chapter09.capstone.web.library import SharedLock

    lock, events = SharedLock(), []
    both_in = threading.Barrier(2, timeout=5)

    def reader(name):
        with lock.shared():
            events.append(f"{name} in")
            both_in.wait()  # the two readers are inside at once, or this times out
            time.sleep(0.05)
            events.append(f"{name} out")

    def writer():
        time.sleep(0.01)  # the readers hold it first
        with lock.exclusive():
            events.append("writer")
    threads = [threading.Thread(target=reader, args=(n,)) for n in ("a", "b")] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert events.index("writer") == 4 and sorted(events[:2]) == ["a in", "b in"]
    with lock.exclusive():  # free again: taken at once
        pass
