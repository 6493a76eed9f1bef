"""Start-up of ``search`` and ``serve`` in fresh processes, on the bench's index with the models on disk.

Imports, index opening, model loading and the first answer are timed separately (``search``), and
``serve`` from launch until its web UI answers HTTP and until its first text search answers through it.

``cold_search`` (issue 34) times the whole ``search INDEX --text "a dog on the beach" --json`` process, median of
5, with the quick snapshot (``quick_search``; a warm search writes it first) and without (``CH09_QUICK_SEARCH=0``),
beside rclip's ``rclip -n`` query on the same photos and architecture when an interpreter with rclip is given
(``peer_rclip``'s export of the same checkpoint; its index built once before timing); and the same query in
Chinese (``COLD_QUERY_ZH``), which the quick snapshot answers through its saved translator (``quick_translator``)
once a full Chinese search has left one.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ... import config
from ...cli import stop_process
from ...language import has_chinese
from ..precision.library import write_sidecar
from .peer_rclip import RCLIP_RUN, export_rclip_models

_PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
from chapter09.models import Settings
from chapter09.capstone.precision.library import query_settings
from chapter09.capstone.search.library_search import LibrarySearch
from chapter09.clip import clip_encoder
import torch  # noqa: F401  (imported by the capstone anyway: counted in imports)
t1 = time.perf_counter()
settings = Settings(mode="auto", device="cpu", precision=sys.argv[2] if sys.argv[2] != "-" else None)
settings = query_settings(sys.argv[1], settings)  # as `search` does: the index's precision
searcher = LibrarySearch(sys.argv[1], settings)
t2 = time.perf_counter()
clip_encoder("clip", settings)
t3 = time.perf_counter()
result = searcher.by_text("a dog on the beach", 10, "clip")
t4 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "index_open_s": t2 - t1, "model_load_s": t3 - t2, "first_query_s": t4 - t3,
                  "hits": len(result["hits"])}))
"""


def _probe_env(folder: str) -> dict:
    env = dict(os.environ)
    env[config.ENV_MODEL_DIR_PREFIX + "CLIP"] = folder
    env["PYTHONPATH"] = str(config.REPO_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def search_startup(index_dir: str, folder: str, precision: str | None = None, timeout: float = 300) -> dict:
    """A fresh process: imports, index opening, model loading, first query, timed separately; and the
    ``search`` command's own wall clock from launch to printed answer."""
    env = _probe_env(folder)
    out = subprocess.run([sys.executable, "-c", _PROBE, index_dir, precision or "-"], env=env, capture_output=True,
                         text=True, timeout=timeout, cwd=config.REPO_DIR)
    if out.returncode:
        raise RuntimeError(f"search start-up probe failed:\n{out.stderr[-2000:]}")
    phases = {k: round(v, 2) if isinstance(v, float) else v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}
    started = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "chapter09.capstone", "search", "--index", index_dir, "--text",
                          "a dog on the beach", "--models", "auto", "--device", "cpu", "--json"],
                         env=env, capture_output=True, text=True, timeout=timeout, cwd=config.REPO_DIR)
    wall = time.perf_counter() - started
    if cli.returncode:
        raise RuntimeError(f"`search` failed:\n{cli.stderr[-2000:]}")
    return {**phases, "command_s": round(wall, 2)}


COLD_QUERY = "a dog on the beach"
COLD_QUERY_ZH = "海滩上的一只狗"  # the same query in Chinese: translated (opus-mt zh->en) before CLIP reads it
COLD_TARGET_S = 1.0  # rclip's cold query on the machine of issue 34
COLD_RUNS = 5


def _median_wall(command: list[str], env: dict, cwd, runs: int = COLD_RUNS, timeout: float = 300) -> float:
    """The median whole-process wall time of ``runs`` fresh runs of ``command``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
        times.append(time.perf_counter() - started)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command[:4])} failed:\n{done.stderr[-2000:]}")
    return round(statistics.median(times), 2)


def rclip_cold(python: str, photos: Path, checkpoint: Path, work: Path, runs: int = COLD_RUNS) -> float:
    """rclip's ``-n`` (no re-indexing) query on ``photos``, median whole-process wall time, after one run that
    indexes them with ``checkpoint`` exported to its layout (``peer_rclip``)."""
    datadir = work / "rclip-cold"
    if not (datadir / "tokenizer").is_dir():
        export_rclip_models(checkpoint, datadir)
    env = {**os.environ, "RCLIP_DATADIR": str(datadir)}
    index_run = RCLIP_RUN.replace('"a photo of a dog"', repr(COLD_QUERY))
    subprocess.run([python, "-c", index_run], cwd=photos, env=env, capture_output=True, timeout=3600, check=True)
    query_run = index_run.replace('"--filepath-only"', '"-n", "--filepath-only"')
    return _median_wall([python, "-c", query_run], env, photos, runs)


def rclip_cold_or_reason(rclip_python: str | None, photos: str | None, folder: str, work: Path) -> float | str:
    """``rclip -n``'s cold query in seconds, or why it was not measured (never raises: a peer's failure loses
    nothing of ours). ``rclip_python`` comes from ``bench --rclip-python`` only."""
    if rclip_python is None:
        return "not measured (no --rclip-python: pass an interpreter with rclip==3.3.0)"
    if not photos or not Path(rclip_python).exists():
        return f"not measured (no interpreter with rclip at {rclip_python})"
    try:
        return rclip_cold(rclip_python, Path(photos), Path(folder), work)
    except Exception as error:  # rclip is a peer measured beside ours
        return f"not measured ({type(error).__name__}: {str(error)[-200:]})"


def _translator_named(stderr: str) -> str:
    """Which translator a Chinese search ran, from its banner (the toy twin's, or a real checkpoint's)."""
    said = [line for line in stderr.splitlines() if "translator_zh_en" in line]
    return said[0][:200] if said else "not announced"


def cold_search(index_dir: str, folder: str, rclip_python: str | None = None, photos: str | None = None,
                work: str | None = None, query: str = COLD_QUERY) -> dict:
    """Whole-process wall time of a cold ``search --json``: with the quick snapshot, without it, and rclip's
    (English only: rclip reads no Chinese; a Chinese ``query`` names the translator that read it instead)."""
    env = _probe_env(folder)
    command = [sys.executable, "-m", "chapter09.capstone", "search", "--index", index_dir, "--text", query,
               "--models", "auto", "--device", "cpu", "--json"]
    warm = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=config.REPO_DIR,
                          check=True)  # the full search, which leaves the snapshot
    out = {"query": query, "runs": COLD_RUNS, "target_s": COLD_TARGET_S,
           "quick_s": _median_wall(command, env, config.REPO_DIR),
           "full_s": _median_wall(command, {**env, "CH09_QUICK_SEARCH": "0"}, config.REPO_DIR)}
    if has_chinese(query):
        out["translator"] = _translator_named(warm.stderr)
        out["rclip_s"] = "not measured (rclip reads English queries only)"
    else:
        out["rclip_s"] = rclip_cold_or_reason(rclip_python, photos, folder, Path(work or index_dir).parent)
    out["misses_target_by_s"] = round(max(0.0, out["quick_s"] - COLD_TARGET_S), 2)
    return out


def serve_startup(index_dir: str, folder: str, timeout: float = 300) -> dict:
    """``serve`` in a fresh process: seconds until the web UI answers HTTP, and until the first text search
    answers through it (Gradio's HTTP API, as the page calls it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = _probe_env(folder)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "chapter09.capstone", "serve", "--index", index_dir,
                                "--port", str(port), "--models", "auto", "--device", "cpu"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               cwd=config.REPO_DIR)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{process.stderr.read()[-2000:]}")
            if time.perf_counter() - started > timeout:
                raise TimeoutError("serve did not answer in time")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        up = time.perf_counter() - started
        first = None
        try:
            from gradio_client import Client  # heavy: gradio_client

            client = Client(url, verbose=False, download_files=False)
            client.predict("a dog on the beach", "clip", 10, api_name="/text_search")
            first = round(time.perf_counter() - started, 2)  # from launch, as a user waits for it
        except Exception as error:  # the UI's API is not ours to fix here: report what happened
            first = f"not measured ({type(error).__name__}: {str(error)[:120]})"
        return {"ui_up_s": round(up, 2), "first_answer_s": first}
    finally:
        stop_process(process, 10)


def _verdict(cold: dict) -> str:
    return f"missed by {cold['misses_target_by_s']} s" if cold["misses_target_by_s"] > 0 else "met"


def _measure(out: dict, key: str, what: str, measure, log, line) -> None:
    """``out[key]`` = ``measure()``, logged by ``line``; or the error it raised, logged as not measured: one part's
    failure loses no other figure of the bench."""
    try:
        out[key] = measure()
        log(line(out[key]))
    except Exception as error:  # report, do not lose the rest of the bench
        out[key] = {"error": f"{type(error).__name__}: {str(error)[-300:]}"}
        log(f"  {what} not measured: {out[key]['error']}")


def startup_report(report: dict, log, rclip_python: str | None = None) -> dict:
    """``search`` and ``serve`` started fresh on the encoding part's index; rclip's cold query beside ours when
    ``rclip_python`` (``bench --rclip-python``, the one place that names it; None: not measured) has rclip."""
    folder, index, auto = report["_folder"], report["_index"], report["auto"]["precision"]
    # what `index --precision auto` would have recorded, so search/serve open at the same precision
    write_sidecar(index, {"precision": auto, "reason": report["auto"]["reason"], "locations": {"clip": folder}})
    out = {"precision": auto}
    _measure(out, "search", "search start-up", lambda: search_startup(index, folder), log, lambda s: (
        f"  search, fresh process: imports {s['imports_s']} s, index open {s['index_open_s']} s, "
        f"model load {s['model_load_s']} s, first query {s['first_query_s']} s; "
        f"`search` command end to end {s['command_s']} s"))
    _measure(out, "cold_search", "cold search", lambda: cold_search(index, folder, rclip_python, report.get("_library")),
             log, lambda c: (f"  cold `search --json`, whole process, median of {c['runs']}: quick snapshot "
                             f"{c['quick_s']} s, full search (CH09_QUICK_SEARCH=0) {c['full_s']} s, rclip -n "
                             f"{c['rclip_s']}; target {c['target_s']} s ({_verdict(c)})"))
    _measure(out, "cold_search_zh", "cold Chinese search", lambda: cold_search(index, folder, query=COLD_QUERY_ZH),
             log, lambda c: (f"  cold Chinese `search --json` ({c['query']}), whole process, median of {c['runs']}: "
                             f"quick snapshot {c['quick_s']} s, full search {c['full_s']} s; target {c['target_s']} s "
                             f"({_verdict(c)}); translator: {c['translator']}"))
    _measure(out, "serve", "serve start-up", lambda: serve_startup(index, folder), log, lambda s: (
        f"  serve, fresh process: web UI answering after {s['ui_up_s']} s, first text search answered "
        f"after {s['first_answer_s']} s"))
    return out
