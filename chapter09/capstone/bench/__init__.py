"""Speed, measured side by side in one run: encoding with the real indexing code, the store, search, start-up.

``python -m chapter09.capstone bench`` runs ``run_bench`` (below), the one entry point; each part
lives in a module of its own, and none of them imports this one:

* ``synthetic``: the inputs (clustered unit vectors, photo-sized JPEGs, a ViT-B/32 with random weights);
* ``encoding``: the indexer per precision against its decode-aware limit, the naive loop, fidelity;
* ``decoding``: the indexer's decode workers alone, and the JPEG decoders libjpeg-turbo offers, side by side;
* ``store_search``: appends to the LanceDB store, exact vs ANN search from the store on disk;
* ``engines``: ``index --engine local`` against ``--engine ray`` on the same photos;
* ``startup``: ``search`` and ``serve`` in fresh processes;
* ``captioning``: the real-architecture captioners, model alone against ``caption --index`` end to end;
* ``web``: the web UI through its JSON API, Gradio's route and gradio_client, and with ``--page`` the page in
  headless Chromium (``python -m chapter09.capstone.bench.web``); ``bench --web-images N`` runs its JSON API and
  page timings on a toy index of N images (``web_report``);
* ``peer_rclip``: a first index beside rclip 3.3.0's, whole processes (``bench --rclip-python PYTHON``);
* ``soak``: the JSON API soaked by 20 clients (``--soak-s N``, default 0: skipped, with the reason in the report).

1. Encoding (``encoding``): the real ``index`` code (``indexer.build_index``) end to end on
   photo-sized JPEGs with the ViT-B/32 CLIP architecture, once per precision (fp32, bf16, int8),
   beside the model alone and the indexer's decode workers alone at the same batch size (their
   combined limit on shared cores), the JPEG decoders side by side, the naive per-image fp32 loop, text-query latency per precision, and the fidelity of bf16/int8 against fp32 on a sample
   of the bench library with what ``--precision auto`` picks from it.
2. Store and search (``store_search``): appends through the LanceDB store API, and exact vs ANN
   search from the store on disk at each library size (clustered synthetic vectors, queries that
   are fresh draws from the same mixture, never library rows).
3. Engines (``engines``): the local and the Ray engine on the same photos and checkpoint.
4. Start-up (``startup``): ``search`` and ``serve`` in fresh processes on the bench's index with the models on
   disk: imports, index opening, model loading and the first answer, timed separately.
5. Captioning (``captioning``, JSON key ``captioning``; ``--no-captioning`` skips it): BLIP-base's and
   ViT-GPT2's architectures (random weights, a fixed token count) per precision, the model alone per batch size
   beside ``caption --index`` end to end with decode workers on and off, and the caption+translate route's split.
6. Web (``web``, only with ``--web-images N``): the JSON API's p50 for one client and requests/s for 20, and the
   page's time from Search to thumbnails in headless Chromium, on a toy index of N images.
7. First index beside rclip (``peer_rclip``, only with ``--rclip-python PYTHON``): rclip's whole run and ours per
   precision and runtime on ``--peer-images`` photos, with our phases.
8. Soak (``soak``, JSON key ``soak``; only with ``--soak-s N``): ``serve --models toy`` on a toy index of
   ``--soak-images`` images in a child process, 20 clients for N seconds (``web.soak_report``): every request
   answered, latency per window, the server's memory growth.

Each part runs guarded: what it needs is checked first (a part that cannot run is skipped with the reason and
the install line), a part that fails is recorded under ``failed`` while the others go on, and with ``--out FILE``
the report is rewritten after every part, so an interruption loses nothing measured. Each part's module is
imported inside its guard, so a part whose dependencies are missing costs nothing and the others still run.

Timings depend on what else the machine runs: the report carries the load average before and
after and the CPU's relevant features (``chapter09.cpu.features()``), and every speed claim is a
ratio of rows measured in this same run.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from .options import BenchOptions, missing_rclip
from .synthetic import ClusteredVectors

__all__ = ["BenchOptions", "ClusteredVectors", "run_bench"]

# what each part imports beyond the runtime, and the line that installs it
_NEEDS = {
    "encoding": (("torch", "transformers", "lancedb"), "pip install -r requirements.txt"),
    "engines": (("ray",), "pip install -r requirements-scale.txt"),
    "captioning": (("torch", "transformers"), "pip install -r requirements.txt"),
    "store_search": (("lancedb", "faiss"), "pip install -r requirements.txt"),
    "soak": (("torch", "transformers", "lancedb", "faiss", "gradio", "httpx"), "pip install -r requirements.txt"),
    "web": (("torch", "transformers", "lancedb", "faiss", "gradio", "httpx", "playwright"),
            "pip install -r requirements-test.txt and apt-get install chromium"),
    "peer_rclip": (("torch", "transformers", "lancedb", "onnxruntime"), "pip install -r requirements.txt"),
}
SOAK_OFF = "--soak-s 0 (the default): pass --soak-s 600 for issue 34's soak of the JSON API"
WEB_OFF = "--web-images 0 (the default): pass --web-images 10000 for issue 34's JSON API and page timings"


def missing_for(part: str) -> str | None:
    """Why ``part`` cannot run here (the missing modules and the install line), or None when it can."""
    modules, install = _NEEDS.get(part, ((), ""))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"needs {', '.join(missing)}: {install}" if missing else None


class _Report(dict):
    """The bench's figures, with each part run guarded and the file rewritten as soon as a part ends."""

    def __init__(self, options: BenchOptions, log):
        super().__init__(skipped={}, failed={})
        self.options, self.log = options, log

    def save(self) -> None:
        if self.options.out is not None:
            partial = Path(f"{self.options.out}.partial")
            partial.write_text(json.dumps(self, indent=2, default=str))
            partial.replace(self.options.out)  # whole file or the previous one, never half of one

    @contextmanager
    def part(self, name: str, off: str | None = None):
        """Run one part: skipped with its reason when it cannot run or is ``off`` (the reason), recorded under
        ``failed`` when it raises."""
        reason = off or ("left out" if name in self.options.skip else missing_for(name))
        if reason:
            self["skipped"][name] = reason
            self.log(f"\n{name}: skipped ({reason})")
            yield False
            return
        try:
            yield True
        except Exception as error:  # one part's failure must not lose the others' figures
            self["failed"][name] = f"{type(error).__name__}: {error}"
            self.log(f"\n{name} FAILED: {type(error).__name__}: {error}\n{traceback.format_exc(limit=3)}")
        finally:
            self.save()


def run_bench(options: BenchOptions | None = None, quiet: bool = False) -> dict:
    """Run the bench and print its tables (unless ``quiet``); returns the figures as a dict, whose ``failed``
    names each part that raised (the others still ran) and ``skipped`` each part that could not run here."""
    from ... import cpu

    options = options or BenchOptions()
    log = (lambda *a, **k: None) if quiet else (lambda message="": print(message, flush=True))
    started = time.time()
    report = _Report(options, log)
    report.update(cpu=cpu.cpu_name(), cpu_features=cpu.features(), cpu_count=os.cpu_count(),
                  load_before=[round(x, 2) for x in os.getloadavg()])
    log(f"bench on {cpu.describe()}; load average {report['load_before']}")
    report.save()
    if options.images > 0:
        _encoding_parts(report, options, log)
    if options.captioning:
        with report.part("captioning") as runs:
            if runs:
                from .captioning import captioning_report, format_captioning

                log("\ncaptioning (bench.captioning):")
                report["captioning"] = captioning_report(options.caption_images, options.caption_batch_sizes,
                                                         options.caption_batch_size, options.caption_tokens,
                                                         options.captioners, log=log)
                log("\n" + format_captioning(report["captioning"]))
    if options.sizes or options.append_rows:
        with report.part("store_search") as runs:
            if runs:
                _store_search(report, options, log)
    with report.part("web", off=None if options.web_images else WEB_OFF) as runs:
        if runs:
            from .web import web_report

            log(f"\nthe JSON API and the page (bench.web) on a {options.web_images:,}-image toy index:")
            with tempfile.TemporaryDirectory(prefix="ch09-bench-web-") as tmp:
                report["web"] = web_report(options.web_images, Path(tmp), log)
    with report.part("peer_rclip", off=_peer_off(options)) as runs:
        if runs:
            from .peer_rclip import format_report, peer_report

            log(f"\na first index beside rclip 3.3.0 (bench.peer_rclip), {options.peer_images} photos:")
            with tempfile.TemporaryDirectory(prefix="ch09-bench-peer-") as tmp:
                report["peer_rclip"] = peer_report(options.peer_images, options.rclip_python, Path(tmp), log=log)
            log(format_report(report["peer_rclip"]))
    with report.part("soak", off=None if options.soak_s > 0 else SOAK_OFF) as runs:
        if runs:
            _soak(report, options, log)
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.time() - started, 1)
    report.save()
    log(f"\nbench finished in {report['seconds']} s; load average before {report['load_before']}, "
        f"after {report['load_after']}" + (f"; FAILED parts: {', '.join(report['failed'])}" if report["failed"] else ""))
    return report


def _peer_off(options: BenchOptions) -> str | None:
    """Why the comparison with rclip is not run (None: it runs)."""
    if options.rclip_python is None:
        return "no --rclip-python (the default): pass an interpreter with rclip==3.3.0 to time a first index beside it"
    return missing_rclip(options.rclip_python)


def _encoding_parts(report: _Report, options: BenchOptions, log) -> None:
    """Encoding, then the parts that reuse its photos and index (start-up, engines)."""
    encoding = None
    with report.part("encoding") as runs:
        if runs:
            import torch

            from .encoding import encoding_report, format_encoding

            report["torch_threads"] = torch.get_num_threads()
            log("\nencoding:")
            encoding = encoding_report(options.images, options.batch_size, options.naive_images, log=log)
            log("\n" + format_encoding(encoding))
            report["encoding"] = {k: v for k, v in encoding.items() if not k.startswith("_")}
            # the plain keys the README and the tests quote
            for key in ("pipeline_img_s", "model_only_img_s", "decode_only_img_s", "limit_img_s",
                        "efficiency_vs_limit", "cpu_efficiency_vs_limit", "pipeline_over_model_only",
                        "int8_over_bf16", "speed_up"):
                report[key] = encoding.get(key)
    if encoding is None:
        return
    try:
        if options.startup:
            with report.part("startup") as runs:
                if runs:
                    from .startup import startup_report

                    log("\nstart-up with the models on disk and the bench's index:")
                    report["startup"] = startup_report(encoding, log, options.rclip_python)
        if options.engines:
            with report.part("engines") as runs:
                if runs:
                    from .engines import engines_report

                    log("\nindexing engines, the same photos and checkpoint (bench.engines):")
                    report["engines"] = engines_report(encoding["_library"], encoding["_folder"],
                                                       encoding["auto"]["precision"],
                                                       Path(encoding["_tmp"]) / "engines", options.batch_size,
                                                       log=log)
    finally:
        shutil.rmtree(encoding["_tmp"], ignore_errors=True)


def _store_search(report: _Report, options: BenchOptions, log) -> None:
    from . import store_search

    log("")
    with tempfile.TemporaryDirectory(prefix="ch09-bench-store-") as tmp:
        largest = max(options.sizes) if options.sizes else 0
        rows = largest if options.append_rows is None else options.append_rows
        report.update(store_search.run(Path(tmp), append_rows=rows, sizes=options.sizes,
                                       queries=options.queries, log=log))


def _soak(report: _Report, options: BenchOptions, log) -> None:
    from .soak import SoakOptions
    from .web import soak_report

    log(f"\nsoak of the JSON API (bench.soak), {options.soak_s:g} s on {options.soak_images:,} images:")
    with tempfile.TemporaryDirectory(prefix="ch09-bench-soak-") as tmp:
        report["soak"] = soak_report(options.soak_images, Path(tmp), SoakOptions(seconds=options.soak_s), log)
