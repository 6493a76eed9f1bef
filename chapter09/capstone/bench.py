"""Speed, measured side by side in one run: encoding with the real indexing code, the store, search, start-up.

1. Encoding (``bench_encoding``): the real ``index`` code (``indexer.build_index``) end to end on
   photo-sized JPEGs with the ViT-B/32 CLIP architecture, once per precision (fp32, bf16, int8),
   beside the model-alone ceiling at the same batch size and precision, the naive per-image fp32
   loop, text-query latency per precision, and the fidelity of bf16/int8 against fp32 on a sample
   of the bench library with what ``--precision auto`` picks from it.
2. Store and search (``bench_store``): appends through the LanceDB store API, and exact vs ANN
   search from the store on disk at each library size (clustered synthetic vectors, queries that
   are fresh draws from the same mixture, never library rows).
3. Start-up: ``search`` and ``serve`` in fresh processes on the bench's index with the models on
   disk: imports, index opening, model loading and the first answer, timed separately.

Timings depend on what else the machine runs: the report carries the load average before and
after, and every speed claim is a ratio of rows measured in this same run.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


class ClusteredVectors:
    """Unit vectors from a mixture of ``clusters`` Gaussian blobs (within-blob cosine about 0.5).

    Real CLIP embeddings are strongly clustered; uniform random vectors would be the worst case for
    any ANN index (no cell structure to exploit).
    """

    def __init__(self, dim: int = 512, clusters: int = 1000, spread: float = 1.0, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((clusters, dim)).astype(np.float32)
        self.spread = spread

    def sample(self, n: int, block: int = 50_000) -> np.ndarray:
        out = np.empty((n, self.centres.shape[1]), np.float32)
        for start in range(0, n, block):
            m = min(block, n - start)
            chunk = self.centres[self.rng.integers(0, len(self.centres), m)]
            chunk += self.spread * self.rng.standard_normal(chunk.shape, dtype=np.float32)
            out[start:start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        return out


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _startup(report: dict, log) -> dict:
    from .bench_encoding import search_startup, serve_startup
    from .library_precision import write_sidecar

    folder, index, auto = report["_folder"], report["_index"], report["auto"]["precision"]
    # what `index --precision auto` would have recorded, so search/serve open at the same precision
    write_sidecar(index, {"precision": auto, "reason": report["auto"]["reason"], "locations": {"clip": folder}})
    out = {"precision": auto}
    try:
        out["search"] = search_startup(index, folder)
        s = out["search"]
        log(f"  search, fresh process: imports {s['imports_s']} s, index open {s['index_open_s']} s, "
            f"model load {s['model_load_s']} s, first query {s['first_query_s']} s; "
            f"`search` command end to end {s['command_s']} s")
    except Exception as error:  # report, do not lose the rest of the bench
        out["search"] = {"error": f"{type(error).__name__}: {str(error)[-300:]}"}
        log(f"  search start-up not measured: {out['search']['error']}")
    try:
        out["serve"] = serve_startup(index, folder)
        s = out["serve"]
        log(f"  serve, fresh process: web UI answering after {s['ui_up_s']} s, first text search answered "
            f"after {s['first_answer_s']} s")
    except Exception as error:
        out["serve"] = {"error": f"{type(error).__name__}: {str(error)[-300:]}"}
        log(f"  serve start-up not measured: {out['serve']['error']}")
    return out


def run_bench(images: int = 512, sizes=(10_000, 100_000, 1_000_000), queries: int = 100,
              append_rows: int | None = None, batch_size: int = 64, naive_images: int | None = None,
              startup: bool = True, quiet: bool = False, engines: bool = True) -> dict:
    """Run the bench and print its tables (unless ``quiet``); returns the figures as a dict."""
    import torch

    from . import bench_store
    from .bench_encoding import encoding_report, format_encoding

    log = (lambda *a, **k: None) if quiet else (lambda message="": print(message, flush=True))
    started = time.time()
    report = {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "load_before": [round(x, 2) for x in os.getloadavg()]}
    log(f"bench on {report['cpu']} ({report['cpu_count']} cores, {report['torch_threads']} torch threads; "
        f"load average {report['load_before']})")
    if images > 0:
        log("\nencoding:")
        encoding = encoding_report(images, batch_size, naive_images, log=log)
        try:
            log("\n" + format_encoding(encoding))
            if startup:
                log("\nstart-up with the models on disk and the bench's index:")
                report["startup"] = _startup(encoding, log)
            if engines:
                log("\nindexing engines, the same photos and checkpoint (store.py/indexer.py, bench_store.engines):")
                report["engines"] = bench_store.engines(encoding["_library"], encoding["_folder"],
                                                        encoding["auto"]["precision"], Path(encoding["_tmp"]) / "engines",
                                                        batch_size, log=log)
        finally:
            shutil.rmtree(encoding["_tmp"], ignore_errors=True)
        report["encoding"] = {k: v for k, v in encoding.items() if not k.startswith("_")}
        # the plain keys the README and the tests quote
        for key in ("pipeline_img_s", "model_only_img_s", "efficiency", "int8_over_bf16", "speed_up"):
            report[key] = encoding.get(key)
    if sizes or append_rows:
        log("")
        with tempfile.TemporaryDirectory(prefix="ch09-bench-store-") as tmp:
            largest = max(sizes) if sizes else 0
            report.update(bench_store.run(Path(tmp), append_rows=largest if append_rows is None else append_rows,
                                          sizes=tuple(sizes), queries=queries, log=log))
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["seconds"] = round(time.time() - started, 1)
    log(f"\nbench finished in {report['seconds']} s; load average before {report['load_before']}, "
        f"after {report['load_after']}")
    return report
