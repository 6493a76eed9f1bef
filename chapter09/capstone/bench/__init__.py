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
  headless Chromium (``python -m chapter09.capstone.bench.web``: it needs a toy index and a running server of
  its own, so ``bench`` does not run it).

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

Timings depend on what else the machine runs: the report carries the load average before and
after and the CPU's relevant features (``chapter09.cpu.features()``), and every speed claim is a
ratio of rows measured in this same run.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from .synthetic import ClusteredVectors

__all__ = ["ClusteredVectors", "run_bench"]


def run_bench(images: int = 512, sizes=(10_000, 100_000, 1_000_000), queries: int = 100,
              append_rows: int | None = None, batch_size: int = 64, naive_images: int | None = None,
              startup: bool = True, quiet: bool = False, engines: bool = True, captioning: bool = True,
              caption_images: int = 8, caption_batch_sizes=(1, 4), caption_batch_size: int = 4,
              caption_tokens: int = 20, captioners=None) -> dict:
    """Run the bench and print its tables (unless ``quiet``); returns the figures as a dict."""
    import torch

    from ... import cpu
    from . import store_search
    from .encoding import encoding_report, format_encoding
    from .engines import engines_report
    from .startup import startup_report

    log = (lambda *a, **k: None) if quiet else (lambda message="": print(message, flush=True))
    started = time.time()
    report = {"cpu": cpu.cpu_name(), "cpu_features": cpu.features(), "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(),
              "load_before": [round(x, 2) for x in os.getloadavg()]}
    log(f"bench on {cpu.describe()}; {report['torch_threads']} torch threads; load average {report['load_before']}")
    if images > 0:
        log("\nencoding:")
        encoding = encoding_report(images, batch_size, naive_images, log=log)
        try:
            log("\n" + format_encoding(encoding))
            if startup:
                log("\nstart-up with the models on disk and the bench's index:")
                report["startup"] = startup_report(encoding, log)
            if engines:
                log("\nindexing engines, the same photos and checkpoint (bench.engines):")
                report["engines"] = engines_report(encoding["_library"], encoding["_folder"],
                                                   encoding["auto"]["precision"], Path(encoding["_tmp"]) / "engines",
                                                   batch_size, log=log)
        finally:
            shutil.rmtree(encoding["_tmp"], ignore_errors=True)
        report["encoding"] = {k: v for k, v in encoding.items() if not k.startswith("_")}
        # the plain keys the README and the tests quote
        for key in ("pipeline_img_s", "model_only_img_s", "decode_only_img_s", "limit_img_s", "efficiency_vs_limit",
                    "cpu_efficiency_vs_limit", "pipeline_over_model_only", "int8_over_bf16", "speed_up"):
            report[key] = encoding.get(key)
    if captioning:
        from .captioning import CAPTIONERS, captioning_report, format_captioning

        log("\ncaptioning (bench.captioning):")
        report["captioning"] = captioning_report(caption_images, tuple(caption_batch_sizes), caption_batch_size,
                                                 caption_tokens, tuple(captioners or CAPTIONERS), log=log)
        log("\n" + format_captioning(report["captioning"]))
    if sizes or append_rows:
        log("")
        with tempfile.TemporaryDirectory(prefix="ch09-bench-store-") as tmp:
            largest = max(sizes) if sizes else 0
            report.update(store_search.run(Path(tmp), append_rows=largest if append_rows is None else append_rows,
                                          sizes=tuple(sizes), queries=queries, log=log))
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.time() - started, 1)
    log(f"\nbench finished in {report['seconds']} s; load average before {report['load_before']}, "
        f"after {report['load_after']}")
    return report
