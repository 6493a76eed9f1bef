"""A scripted session through the capstone's command line, dumped as JSON with timings and paths normalised.

Proof that a refactoring changed nothing a user sees: run it on two trees and diff the outputs.

    PYTHONPATH=/path/to/tree python tests/capstone_session.py OUT.json

Not a test (no ``test_`` prefix): it takes a minute or two on the toy models. It covers indexing (fp32 with
Chinese-CLIP, a second run with nothing to do, int8 into another index, an excluded folder, a broken and a
non-image file; cameras and GPS positions in EXIF), every search strategy, each filter (places too), exact and
ANN search, an int8 query encoder, combined terms, image search (a file and an indexed path),
caption text alone and hybrid, paths-only, captioning an index and single files, match, eval (retrieval, every
strategy, captions), dedup, ``index --watch`` (a file added, one changed, one deleted: each batch's report and the
rows afterwards), ``serve``'s JSON API over HTTP (searches, an upload, thumbnails, originals, refusals), and the
error cases (exit code and message). Each run starts with empty caches (``$CH09_CACHE``, ``$XDG_CACHE_HOME`` in its
temporary folder), so a run never finds what an earlier one remembered.

It uses only what a user has: the command line (``__main__.main`` in process, or ``python -m chapter09.capstone``
for the long-running ``index --watch`` and ``serve``) and HTTP, never a module path, so the same script runs on a
tree before and after modules move. ``tests/compare_sessions.py OLD_TREE NEW_TREE`` runs it on both and diffs.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TIMING_KEYS = re.compile(r"(^|_)(ms|s|seconds|per_s)$|_ms$|_s$|^images_per_s$|^refreshed$|^commits$")  # commits: on time
DAY = 86_400
BASE = 1_700_000_000
# A thumbnail's ETag is "SIZE-MTIME_NS-NAME" of the cached JPEG, made when first asked for: its time is the run's.
THUMBNAIL_ETAG_TIME = re.compile(r'^(W/)?"([0-9a-f]+)-[0-9a-f]+-([0-9a-f]+)"$')
# A watch batch's counts: a batch in which none is non-zero changed nothing (see watch_steps).
# The first trip photos' cameras and places: Hangzhou's West Lake, Beijing, Paris.
PLACES = (("Canon", "EOS R6", 30.2587, 120.1315), ("Canon", "EOS 5D", 39.9042, 116.4074),
          ("SONY", "ILCE-7M3", 48.8566, 2.3522))
WATCH_COUNTS = ("added", "updated", "moved", "copied", "touched", "removed")


def make_library(work: Path) -> tuple[Path, Path]:
    """(library, data set): 30 toy scenes in folders, formats and dates; a copy, a broken file, a text file."""
    from PIL import Image

    from chapter09.toyworld import write_dataset

    source = write_dataset(work / "src", n=30, seed=4242, split="heldout")
    library = work / "lib"
    for i, image_path in enumerate(sorted((source / "images").iterdir())):
        folder = "trip" if i < 12 else "home"
        (library / folder).mkdir(parents=True, exist_ok=True)
        if i < 12:
            target = library / folder / f"{image_path.stem}.jpg"
            picture = Image.open(image_path).convert("RGB").resize((256, 256) if i < 6 else (128, 128))
            picture.save(target, quality=95, **({"exif": camera_exif(*PLACES[i])} if i < len(PLACES) else {}))
        else:
            target = library / folder / image_path.name
            shutil.copy(image_path, target)
        when = BASE + (30 * DAY + i * DAY if i < 12 else i)
        os.utime(target, (when, when))
    shutil.copy(library / "home" / sorted(os.listdir(library / "home"))[0], library / "home" / "copy.png")
    (library / "broken.jpg").write_bytes(b"not a jpeg at all")
    (library / "notes.txt").write_text("not an image")
    (library / "raw").mkdir()
    shutil.copy(library / "home" / "copy.png", library / "raw" / "left_out.png")
    for path in library.rglob("*"):
        if path.is_file() and not BASE <= path.stat().st_mtime < BASE + 60 * DAY:  # not dated above: a fixed date
            os.utime(path, (BASE, BASE))
    return library, source


def camera_exif(make: str, model: str, lat: float, lon: float) -> bytes:
    """EXIF naming the camera and the GPS position (degrees, minutes, seconds), for --camera, --place, --near."""
    from PIL import Image

    def dms(degrees: float) -> tuple:
        degrees = abs(degrees)
        whole, minutes = int(degrees), int((degrees - int(degrees)) * 60)
        return float(whole), float(minutes), round((degrees - whole - minutes / 60) * 3600, 4)

    exif = Image.Exif()
    exif.update({0x010F: make, 0x0110: model})
    exif.get_ifd(0x8825).update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)})
    return exif.tobytes()


def normalise(value, paths: dict[str, str]):
    if isinstance(value, dict):
        return {normalise(k, paths): ("<timing>" if TIMING_KEYS.search(k) and isinstance(v, (int, float, bool))
                                      else normalise(v, paths)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, paths) for v in value]
    if isinstance(value, float):
        return value if not math.isfinite(value) else round(value, 4)
    if isinstance(value, str):
        for real, name in paths.items():
            value = value.replace(real, name)
        return re.sub(r"\d+(\.\d+)? (ms|s)\b", "<t> \\2", value)
    return value


def run(argv: list[str], paths: dict[str, str]) -> dict:
    from chapter09.capstone.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*argv, "--models", "toy"])
        except SystemExit as exit_:  # argparse refusing a flag
            code = exit_.code
    text = out.getvalue()
    try:
        result = json.loads(text)
    except ValueError:
        result = text
    errors = [line for line in err.getvalue().splitlines() if line.startswith(("error", "usage", "warning"))
              or ": error:" in line]
    return {"argv": normalise(argv, paths), "code": code, "out": normalise(result, paths),
            "errors": normalise(errors, paths)}


def session(work: Path) -> list[dict]:
    library, data = make_library(work)
    fp32, int8 = work / "idx32", work / "idx8"
    import chapter09

    tree = str(Path(chapter09.__file__).resolve().parents[1])  # the models' folders name the tree under test
    paths = {str(work.resolve()): "<work>", str(work): "<work>", tree: "<tree>"}
    image = str(library / "home" / "copy.png")
    steps = []

    def step(*argv):
        steps.append(run([str(a) for a in argv], paths))

    idx = ["--index", fp32]
    common = ["--workers", "0", "--no-progress", "--json", "--exclude", "raw"]
    step("index", library, *idx, "--precision", "fp32", "--chinese-clip", *common)
    step("index", library, *idx, "--precision", "fp32", "--chinese-clip", *common)
    step("index", library, "--index", int8, "--precision", "int8", *common)
    for strategy in ("auto", "clip", "translate", "multilingual", "chinese_clip"):
        step("search", *idx, "--text", "a red circle", "--strategy", strategy, "--json")
        step("search", *idx, "--text", "红色圆形", "--strategy", strategy, "--json")
    step("search", "--index", int8, "--text", "a blue square", "--json")
    for flag, value in (("--folder", "trip"), ("--taken-after", "2023-12-01"), ("--taken-before", "2023-12-01"),
                        ("--camera", "canon"), ("--type", "png"), ("--min-size", "200"), ("--min-width", "200"),
                        ("--min-height", "100"), ("--place", "Hangzhou"), ("--place", "杭州"),
                        ("--place", "France"), ("--near", "39.9,116.4,50"), ("--camera", "sony")):
        step("search", *idx, "--text", "a green triangle", flag, value, "--json")
    step("search", *idx, "--text", "2:a red circle", "--add", "a blue square", "--subtract", "a green triangle",
         "--json")
    step("search", *idx, "--image", image, "--json")
    step("search", *idx, "--image", "home/copy.png", "--k", "3", "--json")
    step("search", *idx, "--text", "a red circle", "--add", "home/copy.png", "--search", "exact", "--json")
    step("search", *idx, "--text", "a red circle", "--search", "ann", "--json")
    step("search", *idx, "--text", "a red circle", "--precision", "int8", "--k", "5", "--json")
    step("search", *idx, "--text", "a red circle", "--paths-only")
    step("search", *idx, "--text", "a red circle", "--k", "3")
    step("caption", "--index", fp32, "--lang", "en,zh", "--precision", "fp32", "--no-progress", "--json")
    step("caption", "--index", fp32, "--lang", "en,zh", "--precision", "fp32", "--no-progress", "--json")
    step("search", *idx, "--caption-text", "circle", "--json")
    step("search", *idx, "--caption-text", "圆形", "--json")
    step("search", *idx, "--text", "a red circle", "--caption-text", "circle", "--hybrid", "--json")
    step("search", *idx, "--text", "a red circle", "--hybrid", "--k", "4")
    step("caption", image, "--lang", "en,zh", "--json")
    step("match", image, "a red circle", "a blue square", "红色圆形", "--json")
    step("dedup", *idx, "--json")
    step("dedup", *idx)
    step("eval", "--dataset", data, "--json")
    step("eval", "--dataset", data, "--strategy", "all", "--json")
    step("eval", "--dataset", data, "--captions", "--limit", "5", "--json")
    # the error cases: exit code and the one-line message
    step("search", "--index", work / "nowhere", "--text", "a red circle")
    step("search", *idx, "--image", work / "missing.jpg")
    step("search", *idx, "--text", "a red circle", "--taken-after", "yesterday")
    step("search", *idx, "--text", "a red circle", "--type", "docx")
    step("search", *idx, "--text", "a red circle", "--folder", "../elsewhere")
    step("search", *idx, "--text", "a red circle", "--near", "91,0,5")
    step("search", *idx, "--text", "a red circle", "--place", "x" * 101)
    step("search", *idx)
    step("index", library, "--index", work / "idx-bad", "--batch-size", "0", "--precision", "fp32", "--no-progress")
    step("index", work / "no-library", "--index", work / "idx-bad", "--precision", "fp32", "--no-progress")
    step("index", library, "--index", work / "idx-bad", "--exclude", " ", "--precision", "fp32", "--no-progress")
    step("caption", image, "--index", fp32)
    step("caption")
    step("caption", "--index", fp32, "--engine", "spark")
    step("serve", "--index", fp32, "--host", "0.0.0.0")
    step("serve", "--index", fp32, "--no-auth", "--auth", "ann:pw")
    step("eval", "--dataset", work / "nothing")
    step("dedup", "--index", work / "nowhere")
    step("match", work / "missing.jpg", "a red circle")
    steps += watch_steps(work, library, paths)
    steps += api_steps(work, fp32, image, paths)
    return steps


def child_env() -> dict:
    """The environment of ``python -m chapter09.capstone`` children: the tree under test first on the path."""
    import chapter09

    tree = str(Path(chapter09.__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in (tree, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": python_path, "CH09_MODELS": "toy", "PYTHONWARNINGS": "ignore"}


def start_cli(argv: list) -> tuple[subprocess.Popen, queue.Queue, list]:
    """``python -m chapter09.capstone ARGV`` in a child: (the child, its stdout lines as they come, its stderr)."""
    child = subprocess.Popen([sys.executable, "-m", "chapter09.capstone", *map(str, argv), "--models", "toy"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    lines, stderr = queue.Queue(), []
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()
    threading.Thread(target=lambda: stderr.extend(child.stderr), daemon=True).start()
    return child, lines, stderr


def stop_cli(child: subprocess.Popen, stderr: list) -> int:
    """Ctrl-C (SIGINT) and the exit code; killed if it has not stopped within 30 s."""
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    try:
        return child.wait(timeout=30)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        raise RuntimeError(f"{child.args[3:5]} ignored Ctrl-C for 30 s; stderr: {''.join(stderr)[-2000:]}") from None


def toy_photo(path: Path, seed: int, when: int) -> None:
    """A small random image written beside the library, dated, then renamed in: one file-system event."""
    import numpy as np
    from PIL import Image

    staging = path.parent.parent / f"staging-{path.name}"
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(staging)
    os.utime(staging, (when, when))
    os.replace(staging, path)


def watch_steps(work: Path, library: Path, paths: dict) -> list[dict]:
    """``index --watch`` on a copy of the library's trip folder: add a file, change one, delete one.

    Each change is one event (made beside the folder and renamed in) and waits for its batch before the next, so
    the batches do not depend on timing. Recorded: every batch's report with a non-zero count (a quiet batch,
    nothing changed, can come from an event landing either side of the debounce: timing, not behaviour; its
    number goes too, since quiet ones would shift it), the exit code and whether it said it stopped, and the
    index's rows afterwards (``search --json``, every row)."""
    watched, index = work / "watched" / "lib", work / "watched" / "idx"
    shutil.copytree(library / "trip", watched)
    argv = ["index", watched, "--index", index, "--watch", "--json", "--precision", "fp32", "--workers", "0",
            "--no-progress", "--debounce-s", "0.5", "--rescan-s", "0"]
    child, lines, stderr = start_cli(argv)
    reports: list[dict] = []

    def wait_for(count: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                report = json.loads(lines.get(timeout=1.0))
            except queue.Empty:
                if child.poll() is not None:
                    break
                continue
            if any(report.get(key) for key in WATCH_COUNTS):
                reports.append({k: v for k, v in report.items() if k != "batch"})
            if report.get(count):
                return
        raise RuntimeError(f"index --watch: no batch with {count} within {timeout:g} s; "
                           f"stderr: {''.join(stderr)[-2000:]}")

    first = sorted(watched.iterdir())
    try:
        wait_for("added", timeout=300)  # the start: the first full run
        deadline = time.monotonic() + 60
        while not any("watching" in line for line in stderr) and time.monotonic() < deadline:
            time.sleep(0.1)
        toy_photo(watched / "added.png", seed=1, when=BASE + 5 * DAY)
        wait_for("added")
        toy_photo(first[0], seed=2, when=BASE + 6 * DAY)  # other bytes, another date, same name
        wait_for("updated")
        first[1].unlink()
        wait_for("removed")
    finally:
        code = stop_cli(child, stderr)
    watch = {"argv": normalise(list(map(str, argv)), paths), "code": code, "out": normalise(reports, paths),
             "errors": ["stopping" if any("stopping" in line for line in stderr) else "no 'stopping' said"]}
    rows = run(["search", "--index", str(index), "--text", "a red circle", "--k", "50", "--json"], paths)
    return [watch, rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer(response, paths: dict) -> dict:
    """An HTTP answer as the session records it: status, the headers a client relies on, the JSON or the bytes."""
    headers = {key: response.headers[key] for key in ("content-type", "cache-control", "etag")
               if key in response.headers}
    if "etag" in headers and response.request.url.path.startswith("/api/thumbnail/"):
        headers["etag"] = THUMBNAIL_ETAG_TIME.sub(r'\1"\2-<mtime>-\3"', headers["etag"])
    if headers.get("content-type", "").startswith("application/json"):
        body = normalise(response.json(), paths)
    else:
        body = {"bytes": len(response.content), "sha1": hashlib.sha1(response.content).hexdigest()}
    return {"status": response.status_code, "headers": headers, "body": body}


def api_steps(work: Path, index: Path, upload: str, paths: dict) -> list[dict]:
    """``serve`` on a free loopback port, and its JSON API asked what the README's table lists."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    paths = {**paths, url: "<server>"}
    child, _, stderr = start_cli(["serve", "--index", index, "--port", port, "--lang", "en"])
    steps = []
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            deadline = time.monotonic() + 300
            # Started once the API answers a search: the models load first, and /api is mounted only after
            # Gradio's server runs (web/serve.py), so for a moment the port answers 404 {"detail": "Not Found"}.
            while True:
                try:
                    if http.get("/api/search", params={"text": "warm up", "k": 1}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start; stderr: {''.join(stderr)[-2000:]}")
                time.sleep(0.5)

            def ask(method: str, route: str, **request):
                response = http.request(method, route, **request)
                asked = {k: v for k, v in request.items() if k != "files"}  # an upload: its bytes are the file's
                if "If-None-Match" in asked.get("headers", {}):  # the ETag just answered, recorded in that answer
                    asked["headers"] = {"If-None-Match": "<the ETag answered before>"}
                record = {"argv": [method, route, normalise(asked, paths)], "code": response.status_code,
                          "out": answer(response, paths), "errors": []}
                steps.append(record)
                return response

            for params in ({"text": "a red circle", "k": 5},
                           {"text": "红色圆形", "k": 6, "strategy": "translate"},
                           {"text": "a red circle", "strategy": "chinese_clip", "k": 4},
                           {"text": "a green triangle", "folder": "trip", "k": 8},
                           {"text": "a blue square", "type": "png,jpeg", "taken_after": "2023-12-01"},
                           {"text": "a blue square", "min_width": 200, "k": 20},
                           {"text": "a blue square", "place": "杭州", "camera": "canon"},
                           {"text": "a blue square", "near": "39.9,116.4,50", "taken_before": "2024-01-01"},
                           {"image": "home/copy.png", "k": 3},
                           {"text": "2:a red circle", "add": ["home/copy.png", "a blue square"],
                            "subtract": ["0.5:a green triangle"], "k": 7, "folder": "home"},
                           {"caption_text": "circle", "k": 5},
                           {"caption_text": "圆形", "k": 5},
                           {"text": "a red circle", "hybrid": "true", "k": 5}):
                found = ask("GET", "/api/search", params=params)
            with open(upload, "rb") as image:
                ask("POST", "/api/search/image", params={"k": 6, "folder": "home"},
                    files={"image": ("upload.png", image.read(), "image/png")})
            ask("POST", "/api/search/image", files={"image": ("notes.png", b"not an image at all", "image/png")})
            hit = found.json()["hits"][0]
            thumbnail = ask("GET", hit["thumbnail"])
            ask("GET", hit["thumbnail"], headers={"If-None-Match": thumbnail.headers.get("etag", "")})
            ask("GET", f"/api/thumbnail/{hit['path']}")
            original = ask("GET", hit["original"])
            ask("GET", hit["original"], headers={"If-None-Match": original.headers.get("etag", "")})
            for params in ({"text": ""}, {"text": "a red circle", "k": 0}, {"text": "x" * 501}, {},
                           {"text": "a red circle", "taken_after": "yesterday"}, {"image": "home/missing.png"},
                           {"text": "a red circle", "strategy": "guess"}):
                ask("GET", "/api/search", params=params)
            for route in ("/api/thumbnail/home/missing.png", "/api/original/%2e%2e/%2e%2e/etc/passwd", "/api/nowhere"):
                ask("GET", route)
    finally:
        code = stop_cli(child, stderr)
    steps.append({"argv": ["serve", "stopped by Ctrl-C"], "code": code, "out": "", "errors": []})
    return steps


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("CH09_MODELS", "toy")
    with tempfile.TemporaryDirectory(prefix="ch09-session-") as work:
        # Caches of this machine (ONNX exports, remembered precision verdicts, serve's thumbnails) in the session's
        # folder: every run starts from none, else a second run reports "remembered" where the first "measured".
        os.environ["CH09_CACHE"] = str(Path(work) / "cache")
        os.environ["XDG_CACHE_HOME"] = str(Path(work) / "xdg-cache")
        steps = session(Path(work))
    text = json.dumps(steps, indent=1, ensure_ascii=False, sort_keys=True)
    if argv:
        Path(argv[0]).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
