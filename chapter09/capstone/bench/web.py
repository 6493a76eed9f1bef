"""The web UI's speed through its HTTP API: one client, then many at once.

    python -m chapter09.capstone.bench.web [--n 1000] [--clients 20] [--searches 5] [--transport all] [--page]
                                           [--json]

What it does, in order:

1. a toy library of ``--n`` images (``python -m chapter09.toyworld make --n N``, same scenes)
   and its index (toy CLIP), in ``--workdir`` (kept, and reused by the next run) or a
   temporary folder;
2. ``serve`` in a child process, as a user starts it (``--models toy``);
3. every thumbnail made once beforehand (as after a first browse of the library; the cold
   cost of a first search is reported on its own line);
4. for each transport -- the JSON API (``GET /api/search?text=...``: one plain request, ``web/api.py``),
   Gradio's REST route over plain HTTP (``POST /gradio_api/call/text_search``, then its event stream:
   what curl or a browser's fetch sends) and ``gradio_client`` (the Python client, which adds its own
   threads and polling) -- one client doing ``--single`` text
   searches in a row, each a different caption (half English, half Chinese), timed from call to
   answer, then ``--clients`` clients at once, each ``--searches`` searches (other captions
   again), started together: every request must succeed; requests/s = requests / wall time.

5. with ``--alternate N``, the JSON API and Gradio's REST route taking turns on one server, N searches each per
   language: the fair comparison of the two on a machine whose load changes (what each adds to the search);
6. with ``--page``, the page itself in headless Chromium (Debian's, driven by Playwright by path): the time
   from pressing Search to every thumbnail of the new results shown (loaded, decoded), over ``--page-searches``
   searches, timed in the browser.

The targets: for Gradio's transports (issue 13), p50 <= 150 ms for one client and >= 10 requests/s with 20
clients on 1000 images; for the JSON API (issue 34), p50 <= 30 ms and >= 50 requests/s on 10,000 images; for the
page, p50 <= 300 ms from Search to thumbnails. The figures depend on the machine and on what else runs on it: the report
prints the load average (``uptime``) before and after, and the CPU with its features. This is a benchmark
to run by hand, not a timed test.

The toy world, the index builder, the web UI's modules and the HTTP clients are imported inside the functions
that use them: ``bench`` loads this module for its web part only, the server runs in a child process, and the
soak's and the report's helpers are used without any of them.
"""
import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from ... import cpu
from ...cli import stop_process

TARGET_P50_MS = 150  # Gradio's transports (issue 13)
TARGET_RPS = 10
JSON_TARGET_P50_MS = 30  # the JSON API (issue 34), meant for a 10,000-image index
JSON_TARGET_RPS = 50
PAGE_TARGET_P50_MS = 300  # Search pressed to thumbnails shown


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def prepare(workdir: Path, n: int) -> tuple[Path, Path]:
    """The toy library and its index (made once per workdir)."""
    from ...clip import clip_encoder
    from ...models import Settings
    from ...toyworld import write_dataset
    from ..index.build import build_index

    library, index = workdir / "library", workdir / "index"
    if not (library / "captions.jsonl").exists() or len(list((library / "images").glob("*"))) != n:
        write_dataset(library, n=n, seed=1000, split="heldout")
    summary = build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    if summary.total != n:
        raise RuntimeError(f"index holds {summary.total} images, not {n}: {summary.text()}")
    return library, index


def make_thumbnails(library: Path, index: Path) -> float:
    from ..web.thumbnails import ensure_thumbnail

    started = time.perf_counter()
    for path in sorted((library / "images").iterdir()):
        ensure_thumbnail(index, path)
    return time.perf_counter() - started


def start_server(index: Path, port: int, log_path: Path, logins=()) -> subprocess.Popen:
    """``serve --models toy`` in a child process, once its page answers; ``logins``: (user, password) pairs it
    is started with (``$CH09_SERVE_AUTH``)."""
    from ..web.access import AUTH_ENV

    log = open(log_path, "w")
    env = {**os.environ, AUTH_ENV: ",".join(f"{user}:{password}" for user, password in logins)} if logins else None
    process = subprocess.Popen([sys.executable, "-m", "chapter09.capstone", "serve", "--index", str(index),
                                "--models", "toy", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env=env)

    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                if response.status == 200:
                    return process
        except urllib.error.HTTPError as error:  # behind a login the page answers 401 (or sends to /login)
            if error.code in (401, 403):
                return process
            time.sleep(0.5)
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"serve did not answer within 180 s; see {log_path}")


def queries(library: Path, languages: str = "both") -> list[str]:
    """Every stored caption, each used once: English and Chinese interleaved (``both``), or one language (``en``:
    no translation in the query's path; ``zh``: the auto strategy translates each, a generation per query)."""
    from ...toyworld import read_jsonl

    rows = read_jsonl(library / "captions.jsonl")
    english = [r["caption"] for r in rows if r["lang"] == "en"]
    chinese = [r["caption"] for r in rows if r["lang"] == "zh"]
    chosen = {"en": english, "zh": chinese, "both": [q for pair in zip(english, chinese) for q in pair]}[languages]
    return list(dict.fromkeys(chosen))


class GradioClientCaller:
    """Searches through gradio_client (what a Python user of the API runs)."""

    name = "gradio_client"
    targets = (TARGET_P50_MS, TARGET_RPS)

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, download_files=False, verbose=False)

    def __call__(self, query: str, k: int) -> tuple[float | None, list]:
        _gallery, note, hits = self.client.predict(query, "auto", k, api_name="/text_search")
        return note_ms(note), hits


class HttpCaller:
    """Searches through Gradio's REST route (POST /gradio_api/call/text_search, then read the event
    stream): what curl or a browser's fetch sends, with no client library in between."""

    name = "raw HTTP"
    targets = (TARGET_P50_MS, TARGET_RPS)

    def __init__(self, url: str):
        import httpx

        self.url = url
        self.http = httpx.Client(timeout=120)

    def __call__(self, query: str, k: int) -> tuple[str, list]:
        route = f"{self.url}/gradio_api/call/text_search"
        # every input, the six filters too: unlike gradio_client, the raw route fills in no defaults
        data = [query, "auto", k, "", "", "", "", [], 0]
        event_id = self.http.post(route, json={"data": data}).raise_for_status().json()["event_id"]
        event, data = None, None
        for line in self.http.get(f"{route}/{event_id}").raise_for_status().text.splitlines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = line.split(":", 1)[1].strip()
                break
        if event != "complete":
            raise RuntimeError(f"event {event}: {data}")
        _gallery, note, hits = json.loads(data)
        return note_ms(note), hits


class JsonCaller:
    """Searches through the JSON API (GET /api/search?text=...&k=...): one plain request, one JSON answer."""

    name = "JSON API"
    targets = (JSON_TARGET_P50_MS, JSON_TARGET_RPS)

    def __init__(self, url: str):
        import httpx

        self.url = f"{url}/api/search"
        self.http = httpx.Client(timeout=120)

    def __call__(self, query: str, k: int) -> tuple[float | None, list]:
        result = self.http.get(self.url, params={"text": query, "k": k}).raise_for_status().json()
        return result["ms"], result["hits"]


def note_ms(note: str) -> float | None:
    """The server's own search time, from the note under the results ("... · 1.2 ms · ...")."""
    return next((float(part.split()[0]) for part in note.split(" · ") if part.endswith(" ms")), None)


def is_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def by_language(queries_and_ms: list[tuple[str, float]]) -> dict:
    """p50 of English and of Chinese queries apart: with both in the pool the times are two clusters (a Chinese
    query is translated first), and one median of the mixture lands anywhere between them."""
    out = {}
    for language, chinese in (("en", False), ("zh", True)):
        times = [ms for query, ms in queries_and_ms if is_chinese(query) == chinese]
        if times:
            out[f"p50_ms_{language}"] = round(statistics.median(times), 1)
    return out


def timed_search(call, query: str, k: int) -> tuple[float, float | None, str | None]:
    """(seconds, the server's own search ms from the note, error or None)."""
    started = time.perf_counter()
    try:
        server_ms, hits = call(query, k)
    except Exception as error:  # counted, reported
        return time.perf_counter() - started, None, f"{type(error).__name__}: {error}"
    elapsed = time.perf_counter() - started
    if not hits:
        return elapsed, None, "no hits"
    return elapsed, server_ms, None


def measure(caller_class, url: str, pool: list[str], args) -> dict:
    """One client in a row, then ``args.clients`` at once, through one kind of caller."""
    caller = caller_class(url)
    for _ in range(args.warmup):
        timed_search(caller, pool.pop(), args.k)
    asked = [pool.pop() for _ in range(args.single)]
    single = [timed_search(caller, query, args.k) for query in asked]
    times = [1000 * s for s, _, e in single if e is None]
    server = [m for _, m, e in single if m is not None]
    out = {"transport": caller_class.name, "single": {
        "requests": args.single, "ok": len(times), "errors": [e for _, _, e in single if e][:5],
        "p50_ms": round(statistics.median(times), 1) if times else None,
        "p90_ms": round(_percentile(times, 0.9), 1) if times else None,
        "p95_ms": round(_percentile(times, 0.95), 1) if times else None,
        "server_search_p50_ms": round(statistics.median(server), 1) if server else None,
        **by_language([(query, 1000 * s) for query, (s, _, e) in zip(asked, single) if e is None])}}
    callers = [caller_class(url) for _ in range(args.clients)]
    work = [[pool.pop() for _ in range(args.searches)] for _ in range(args.clients)]
    results: list[list] = [[] for _ in range(args.clients)]
    barrier = threading.Barrier(args.clients + 1)

    def worker(i):
        barrier.wait()
        for query in work[i]:
            results[i].append(timed_search(callers[i], query, args.k))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    flat = [r for rs in results for r in rs]
    ok = [1000 * s for s, _, e in flat if e is None]
    out["concurrent"] = {"clients": args.clients, "searches_each": args.searches, "requests": len(flat),
                         "ok": len(ok), "errors": [e for _, _, e in flat if e][:5], "wall_s": round(wall, 2),
                         "requests_per_s": round(len(ok) / wall, 1),
                         "p50_ms": round(statistics.median(ok), 1) if ok else None,
                         "p90_ms": round(_percentile(ok, 0.9), 1) if ok else None,
                         "p95_ms": round(_percentile(ok, 0.95), 1) if ok else None}
    single, burst = out["single"], out["concurrent"]
    p50_target, rps_target = caller_class.targets
    out["targets"] = {
        f"single_p50_ms<={p50_target}": single["p50_ms"] is not None and single["p50_ms"] <= p50_target,
        "concurrent_all_ok": burst["ok"] == burst["requests"],
        f"requests_per_s>={rps_target}": burst["requests_per_s"] >= rps_target}
    return out


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# In the browser: press Search, then poll (every 2 ms) until the results changed (the note's text, which carries the
# search's own ms, or the thumbnails' addresses) and every thumbnail is loaded and decoded; the milliseconds from
# the press, or null after 30 s.
PRESS_AND_WAIT = """async () => {
  // the note's text alone: its status tracker ("processing | 0.1s") changes at once, before any result
  const note = () => (document.querySelector('#search-note [data-testid="markdown"]') || {}).innerText || '';
  const images = () => [...document.querySelectorAll('#results img')];
  const sources = () => images().map(img => img.src).join('|');
  const [noteBefore, sourcesBefore] = [note(), sources()];
  const pressed = performance.now();
  document.querySelector('#search-button').click();
  while (performance.now() - pressed < 30000) {
    await new Promise(resolve => setTimeout(resolve, 2));
    const shown = images();
    if ((note() !== noteBefore || sources() !== sourcesBefore) && shown.length &&
        shown.every(img => img.complete && img.naturalWidth > 0)) return performance.now() - pressed;
  }
  return null;
}"""


def measure_page(url: str, texts: list[str]) -> dict:
    """The page in headless Chromium (Debian's, by path): for each text, Search pressed to its thumbnails shown
    (the results slider at its default, 8), timed in the browser; the first two searches warm the page and are not
    counted."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    times, timed, errors = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(url, timeout=120_000)
        page.locator("#search-button").wait_for(timeout=120_000)
        for i, text in enumerate(texts):
            page.locator("#query textarea, #query input").first.fill(text)
            page.wait_for_timeout(50)  # the page takes the typed value before Search is pressed
            elapsed = page.evaluate(PRESS_AND_WAIT)
            if i < 2:
                continue
            if elapsed is None:
                errors.append(f"{text!r}: no new thumbnails within 30 s")
            else:
                times.append(elapsed)
                timed.append((text, elapsed))
        browser.close()
    p50 = round(statistics.median(times), 1) if times else None
    return {"searches": len(texts) - 2, "ok": len(times), "errors": errors[:5], "p50_ms": p50,
            "p95_ms": round(_percentile(times, 0.95), 1) if times else None, **by_language(timed),
            "target_met": p50 is not None and p50 <= PAGE_TARGET_P50_MS and not errors}


def alternate(url: str, pool: list[str], k: int, rounds: int) -> dict:
    """The JSON API and Gradio's REST route on one server taking turns, query by query, ``rounds`` each per
    language: on a shared machine the load changes from one minute to the next, so only searches this close in
    time compare; per transport the server's own search time and what the transport adds around it."""
    callers = {"json": JsonCaller(url), "http": HttpCaller(url)}
    out = {}
    for language in ("en", "zh"):
        texts = [q for q in pool if is_chinese(q) == (language == "zh")]
        if len(texts) < 2 * rounds:
            continue
        timed: dict[str, list[tuple[float, float]]] = {name: [] for name in callers}
        errors = []
        for _ in range(rounds):
            for name, call in callers.items():
                query = texts.pop()
                pool.remove(query)
                seconds, server_ms, error = timed_search(call, query, k)
                if error or server_ms is None:
                    errors.append(f"{name}: {error}")
                else:
                    timed[name].append((1000 * seconds, server_ms))
        out[language] = {name: {"ok": len(pairs),
                                "total_p50_ms": round(statistics.median(t for t, _ in pairs), 1),
                                "server_search_p50_ms": round(statistics.median(m for _, m in pairs), 1),
                                "added_p50_ms": round(statistics.median(t - m for t, m in pairs), 1)}
                         for name, pairs in timed.items() if pairs}
        out[language]["errors"] = errors[:5]
    return out


CALLERS = {"json": JsonCaller, "http": HttpCaller, "gradio_client": GradioClientCaller}


def soak_report(n: int, workdir: Path | None, options, log=print) -> dict:
    """The soak (``bench/soak.py``, ``SoakOptions``) on a toy index of ``n`` images served by ``serve --models toy``
    in a child process, its thumbnails made first; with ``options.logins`` the server gets one login per client."""
    from .soak import format_soak, run_soak, soak_logins

    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench_soak_"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"[soak] library and index of {n} images in {workdir} ...")
    library, index = prepare(workdir, n)
    english, chinese = queries(library, "en"), queries(library, "zh")
    logins = soak_logins(options.clients) if options.logins else None
    port = _free_port()
    server = start_server(index, port, workdir / "serve.log", logins or ())
    try:
        thumbnails_s = make_thumbnails(library, index)
        log(f"[soak] {options.clients} clients for {options.seconds:g} s against {index} ...")
        report = run_soak(f"http://127.0.0.1:{port}", server.pid, english, chinese, options, logins)
    finally:
        stop_process(server, 20)
    report.update(images=n, thumbnails_made_s=round(thumbnails_s, 1), cpus=os.cpu_count(), machine=cpu.describe())
    log(f"{n}-image toy index on {report['machine']}\n" + format_soak(report))
    return report


def run(args) -> dict:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench_web_"))
    workdir.mkdir(parents=True, exist_ok=True)
    report = {"images": args.n, "k": args.k, "queries": args.queries, "cpus": os.cpu_count(), "cpu": cpu.describe(),
              "cpu_features": cpu.features(), "load_before": _load()}
    print(f"[bench_web] library and index in {workdir} ...", file=sys.stderr)
    library, index = prepare(workdir, args.n)
    pool = queries(library, args.queries)
    transports = list(CALLERS) if args.transport == "all" else [args.transport]
    needed = 1 + len(transports) * (args.warmup + args.single + args.clients * args.searches) + \
        (args.page_searches + 2 if args.page else 0) + 4 * args.alternate
    if len(pool) < needed:
        raise RuntimeError(f"{len(pool)} distinct captions, {needed} needed: raise --n")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(index, port, workdir / "serve.log")
    try:
        # cold: the first search after start, its thumbnails not made yet
        cold_s, _, error = timed_search(HttpCaller(url), pool.pop(), args.k)
        report["cold_first_search_ms"] = round(1000 * cold_s, 1)
        report["thumbnails_made_s"] = round(make_thumbnails(library, index), 1)
        report["runs"] = [measure(CALLERS[name], url, pool, args) for name in transports]
        if args.alternate:
            report["alternate"] = alternate(url, pool, args.k, args.alternate)
        if args.page:
            report["page"] = measure_page(url, [pool.pop() for _ in range(args.page_searches + 2)])
    finally:
        stop_process(server, 20)
    report["load_after"] = _load()
    return report


def _languages(part: dict) -> str:
    said = [f"{language} {part[f'p50_ms_{language}']} ms" for language in ("en", "zh") if f"p50_ms_{language}" in part]
    return f"\n      p50 by query language: {', '.join(said)}" if len(said) > 1 else ""


def format_report(r: dict) -> str:
    lines = [f"web UI text search through the HTTP API, {r['images']}-image toy index, k={r['k']}, queries: "
             f"{r['queries']}, {r['cpus']} CPUs",
             f"  CPU: {r['cpu']}",
             f"  load before: {r['load_before']}",
             f"  cold first search (models loaded, thumbnails not made): {r['cold_first_search_ms']} ms; "
             f"then all thumbnails made in {r['thumbnails_made_s']} s"]
    for run in r["runs"]:
        s, c = run["single"], run["concurrent"]
        lines += [f"  [{run['transport']}]",
                  f"    1 client, {s['requests']} searches: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms "
                  f"(of which server-side search p50 {s['server_search_p50_ms']} ms); {s['ok']}/{s['requests']} ok"
                  + _languages(s),
                  f"    {c['clients']} clients x {c['searches_each']} searches: {c['ok']}/{c['requests']} ok in "
                  f"{c['wall_s']} s = {c['requests_per_s']} requests/s; p50 {c['p50_ms']} ms, p95 {c['p95_ms']} ms",
                  "    targets: " + ", ".join(f"{name} {'met' if met else 'MISSED'}"
                                              for name, met in run["targets"].items())]
        lines += [f"    error: {e}" for part in (s, c) for e in part["errors"]]
    if "page" in r:
        page = r["page"]
        lines += ["  [page in headless Chromium]",
                  f"    Search pressed to thumbnails shown (k=8), {page['searches']} searches: p50 {page['p50_ms']} ms, "
                  f"p95 {page['p95_ms']} ms; {page['ok']}/{page['searches']} ok" + _languages(page),
                  f"    target p50 <= {PAGE_TARGET_P50_MS} ms {'met' if page['target_met'] else 'MISSED'}"]
        lines += [f"    error: {e}" for e in page["errors"]]
    for language, runs in r.get("alternate", {}).items():
        lines.append(f"  [JSON API and Gradio's route taking turns, {language} queries]")
        lines += [f"    {name:>4}: {t['ok']} ok, server-side search p50 {t['server_search_p50_ms']} ms, added by the "
                  f"transport p50 {t['added_p50_ms']} ms, total p50 {t['total_p50_ms']} ms"
                  for name, t in runs.items() if name != "errors"]
        lines += [f"    error: {e}" for e in runs["errors"]]
    lines.append(f"  load after: {r['load_after']}")
    return "\n".join(lines)


def web_report(n: int, workdir: Path | None = None, log=print) -> dict:
    """``bench``'s web part: the JSON API (1 client, then 20) and the page in headless Chromium on a toy index of
    ``n`` images, as ``python -m chapter09.capstone.bench.web --n N --transport json --page`` runs them."""
    args = _parser().parse_args(["--n", str(n), "--transport", "json", "--page"]
                                + (["--workdir", str(workdir)] if workdir else []))
    report = run(args)
    log(format_report(report))
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chapter09.capstone.bench.web", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images in the toy library (default 1000)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--searches", type=int, default=5, help="searches per concurrent client")
    parser.add_argument("--single", type=int, default=50, help="sequential searches for the one-client p50")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--k", type=int, default=8, help="results per search (the UI's default)")
    parser.add_argument("--workdir", help="keep the library and index here (reused by the next run)")
    parser.add_argument("--transport", choices=("all", *CALLERS), default="all",
                        help="json (the JSON API), http (Gradio's REST route), gradio_client, or all (default)")
    parser.add_argument("--queries", choices=("both", "en", "zh"), default="both",
                        help="the stored captions searched: English and Chinese interleaved (default), or one language")
    parser.add_argument("--page", action="store_true",
                        help="also time the page in headless Chromium: Search pressed to thumbnails shown")
    parser.add_argument("--page-searches", type=int, default=20, help="searches the --page part times")
    parser.add_argument("--alternate", type=int, default=0, metavar="N",
                        help="then N searches per language through the JSON API and Gradio's route, taking turns")
    parser.add_argument("--soak", type=float, default=0, metavar="SECONDS",
                        help="instead of the timings: the soak, --clients clients for SECONDS (600: issue 34's), "
                             "with the server's memory sampled (bench/soak.py)")
    parser.add_argument("--soak-logins", action="store_true",
                        help="the soak logs each client in as its own user, so the per-client limiter is on")
    parser.add_argument("--json", action="store_true")
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)

    if args.soak:
        return soak_main(args)

    # with --json, stdout carries the JSON alone: model banners and notes go to stderr
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        report = run(args)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
    met = all(all(run["targets"].values()) for run in report["runs"]) and report.get("page", {}).get("target_met", 1)
    return 0 if met else 1


def soak_main(args) -> int:
    """``--soak``: the soak's figures (text, or JSON with --json); 0 when every request was answered and none
    failed (the limiter's 429s are not failures)."""
    from ...errors import ChapterError
    from .soak import SoakOptions

    try:
        options = SoakOptions(seconds=args.soak, clients=args.clients, k=args.k, logins=args.soak_logins)
    except ChapterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    report = soak_report(args.n, args.workdir, options, log)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0 if report["unanswered"] == 0 and report["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
