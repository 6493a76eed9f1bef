"""A first ``index`` beside rclip 3.3.0's, whole process timed, on the same photos and architecture (issue 22).

``python -m chapter09.capstone.bench.peer_rclip --images 512`` makes ``--images`` photo-sized JPEGs
(1600x1200, ``synthetic.make_photos``) and one ViT-B/32 with random weights (``synthetic.vit_b32_folder``,
224 px), exports that same model to rclip's ONNX layout (``$RCLIP_DATADIR/ViT-B-32-256-datacomp_s34b_b86k/
{visual,textual}.onnx``, input ``input``, output ``output``; OpenAI's BPE file from open-clip-torch as its
tokenizer) and times, each in a fresh process on a fresh index, one after the other in this one run:

* rclip (its own virtual environment, ``--rclip-python``; never a dependency of this repository:
  ``python -m venv /tmp/rclip-venv && /tmp/rclip-venv/bin/pip install rclip==3.3.0``), indexing the photo
  folder and answering one query, with its preprocessing constant set to 224 px (``rclip.utils.preprocess.
  IMAGE_SIZE``; it ships 256) so both encode the same 224 x 224 inputs;
* ``python -m chapter09.capstone index PHOTOS --index NEW --models real`` with ``CH09_MODEL_DIR_CLIP`` naming
  the checkpoint: ``--precision auto`` (the default), ``fp32``, ``int8``, and fp32 on torch
  (``CH09_FP32_RUNTIME=torch``: the runtime before issue 22), each with its phases (imports, model load, the
  precision check, encoding, finishing) timed inside the process by a thin wrapper.

Models are on disk for both before timing starts (rclip's files are exported, ours loaded once so the ONNX
conversions are cached), as they are for a user's second library. Also measured: the model alone on one
batch of ready tensors, torch fp32 against ONNX Runtime fp32 (and int8), the cosine between the two fp32
runtimes' vectors. Prints the table and the CPU's features; ``--json`` writes the report too.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ... import cpu
from ...clip import ClipEncoder
from ...model_outputs import feature_tensor
from ...models import Settings
from ...precision import unavailable_reason
from .options import missing_rclip
from .synthetic import make_photos, vit_b32_folder

RCLIP_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"
DEFAULT_RCLIP_PYTHON = "/tmp/rclip-venv/bin/python"
TARGET = 2.0  # ours with --precision auto at >= 2x rclip's images/s, whole process

# Runs rclip's CLI in its own interpreter at 224 px: the constant is read at call time by its preprocess().
RCLIP_RUN = """
import sys
import rclip.utils.preprocess as preprocess
preprocess.IMAGE_SIZE = 224
from rclip.main import main
sys.argv = ["rclip", "--filepath-only", "--top", "1", "a photo of a dog"]
main()
"""

# Our CLI with its phases timed: the wrapper patches timers around the functions that make each phase.
OURS_RUN = """
import json, sys, time
t0 = time.perf_counter()
phases = {}
import chapter09.capstone.__main__ as cli
from chapter09 import clip as clip_module
from chapter09.capstone.index import build as indexer
from chapter09.capstone.precision import library as library_precision
from chapter09.capstone.store import database as store
import torch, transformers, lancedb  # what a run imports anyway, counted as imports
phases["imports_s"] = time.perf_counter() - t0

def timed(owner, name, key):
    real = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            phases[key] = phases.get(key, 0.0) + time.perf_counter() - started
    setattr(owner, name, wrapper)

timed(clip_module.ClipEncoder, "__init__", "model_load_s")
timed(library_precision, "pick_for_index", "precision_check_s")
timed(indexer, "build_index", "build_index_s")
timed(indexer, "run_local", "encoding_s")
timed(store.Store, "finish", "compaction_s")
code = cli.main(sys.argv[2:])
phases["total_in_process_s"] = time.perf_counter() - t0
with open(sys.argv[1], "w") as out:
    json.dump({k: round(v, 2) for k, v in phases.items()}, out)
sys.exit(code)
"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def export_rclip_models(checkpoint: Path, datadir: Path) -> None:
    """Our checkpoint's two towers in rclip's layout (visual.onnx: pixels -> embedding; textual.onnx: 77 token
    ids -> embedding), and OpenAI's BPE file as its tokenizer."""
    import torch  # heavy: torch, transformers
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(checkpoint).eval()
    folder = datadir / RCLIP_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)

    class Tower(torch.nn.Module):  # the model as a submodule, so the tracer sees its weights as parameters
        def __init__(self, image: bool):
            super().__init__()
            self.model, self.image = model, image

        def forward(self, x):
            out = self.model.get_image_features(pixel_values=x) if self.image else self.model.get_text_features(
                input_ids=x)
            return feature_tensor(out)

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Tower(True), (torch.randn(2, 3, 224, 224),), folder / "visual.onnx", opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
        ids = torch.randint(1, 49000, (2, 77))
        ids[:, 5] = 49407
        torch.onnx.export(Tower(False), (ids,), folder / "textual.onnx", opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, dynamo=False)
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.origin:
        raise RuntimeError("open-clip-torch's BPE file is needed for rclip's tokenizer: "
                         "pip install --no-deps -r requirements-real-artifacts.txt")
    (datadir / "tokenizer").mkdir(exist_ok=True)
    shutil.copy(Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz", datadir / "tokenizer")


def time_rclip(python: str, photos: Path, models: Path, work: Path) -> dict:
    datadir = work / "rclip-data"
    shutil.rmtree(datadir, ignore_errors=True)
    datadir.mkdir(parents=True)
    for entry in models.iterdir():  # the models, never the database: a fresh index every run
        (datadir / entry.name).symlink_to(entry)
    env = {**os.environ, "RCLIP_DATADIR": str(datadir)}
    before, started = load(), time.perf_counter()
    done = subprocess.run([python, "-c", RCLIP_RUN], cwd=photos, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"rclip failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"seconds": round(seconds, 2), "load_before": before, "load_after": load()}


def time_ours(photos: Path, checkpoint: Path, cache: Path, work: Path, name: str, args: list[str],
              env_extra: dict | None = None) -> dict:
    index, phases_file = work / f"index-{name}", work / f"phases-{name}.json"
    shutil.rmtree(index, ignore_errors=True)
    env = {**os.environ, "CH09_MODEL_DIR_CLIP": str(checkpoint), "CH09_CACHE": str(cache), **(env_extra or {})}
    command = [sys.executable, "-c", OURS_RUN, str(phases_file), "index", str(photos), "--index", str(index),
               "--models", "real", "--no-progress", "--json", *args]
    before, started = load(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"index ({name}) failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    phases = json.loads(phases_file.read_text())
    phases["interpreter_start_s"] = round(seconds - phases["total_in_process_s"], 2)
    return {"seconds": round(seconds, 2), "load_before": before, "load_after": load(), "phases": phases,
            "precision": report["precision"]["precision"], "identity": report["precision"].get("identity"),
            "reason": report["precision"]["reason"], "encoding_img_s": report["images_per_s"],
            "added": report["added"], "notes": report["notes"]}


def model_alone(checkpoint: Path, cache: Path, batch: int = 32) -> dict:
    """torch fp32, ONNX Runtime fp32 and int8, and bf16 on torch and on OpenVINO where this CPU has native bf16, on
    the same ready tensors, alternated twice (best of two)."""
    import torch  # heavy: torch

    os.environ["CH09_CACHE"] = str(cache)
    ort = ClipEncoder("clip", Settings(mode="auto", device="cpu", precision="fp32"), local_dir=checkpoint)
    variants = {"torch fp32": ort.at_precision("fp32", runtime="torch"), "onnxruntime fp32": ort,
                "onnxruntime int8": ort.at_precision("int8")}
    if unavailable_reason("bf16") is None:
        variants["torch bf16"] = ort.at_precision("bf16", runtime="torch")
        if importlib.util.find_spec("openvino") is not None:
            variants["openvino bf16"] = ort.at_precision("bf16", runtime="openvino")
    pixels = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rates = {name: 0.0 for name in variants}
    for _ in range(2):
        for name, encoder in variants.items():
            encoder.encode_pixels(pixels[:4])
            started = time.perf_counter()
            encoder.encode_pixels(pixels)
            rates[name] = max(rates[name], round(batch / (time.perf_counter() - started), 2))
    a, b = variants["torch fp32"].encode_pixels(pixels), ort.encode_pixels(pixels)
    return {"img_s": rates, "batch": batch, "load": load(),
            "fp32_runtimes_min_cosine": round(float(np.sum(a * b, axis=1).min()), 6)}


def default_rows() -> str:
    """Our rows by default: every precision this CPU runs natively, and fp32 on torch (rclip's runtime's rival)."""
    return "auto,fp32,int8" + (",bf16" if unavailable_reason("bf16") is None else "") + ",torch-fp32"


def peer_report(images: int, rclip_python: str, work: Path | None = None, ours: str | None = None,
                log=print) -> dict:
    """rclip's first index beside ours per precision and runtime, whole processes on the same photos (module doc)."""
    ours = ours or default_rows()
    missing = missing_rclip(rclip_python)
    if missing:
        raise RuntimeError(missing)
    work = Path(work) if work else Path(tempfile.mkdtemp(prefix="ch09-peer-"))
    log(f"CPU: {cpu.describe()}")
    started = time.perf_counter()
    photos, checkpoint, rclip_models, cache = (work / f"photos{images}", work / "vit-b32", work / "rclip-models",
                                               work / "cache")
    if len(list(photos.glob("*.jpg"))) != images:
        make_photos(photos, images)
    if not (checkpoint / "config.json").exists():
        vit_b32_folder(checkpoint)
    if not (rclip_models / RCLIP_SUBDIR / "visual.onnx").exists():
        export_rclip_models(checkpoint, rclip_models)
    report = {"cpu": cpu.features(), "cpu_line": cpu.describe(), "images": images,
              "photo_size": "1600x1200", "model": "ViT-B/32 (CLIPConfig() defaults, random weights), 224 px"}
    report["model_alone"] = model_alone(checkpoint, cache)  # also caches our ONNX conversions before timing
    log(f"model alone, batch {report['model_alone']['batch']} (load {report['model_alone']['load']}): "
        + ", ".join(f"{k} {v} img/s" for k, v in report["model_alone"]["img_s"].items())
        + f"; fp32 torch vs ONNX Runtime min cosine {report['model_alone']['fp32_runtimes_min_cosine']}")
    rows = {"rclip 3.3.0 (fp32 ONNX Runtime)": time_rclip(rclip_python, photos, rclip_models, work)}
    log(f"rclip: {rows['rclip 3.3.0 (fp32 ONNX Runtime)']}")
    labels = {"auto": ("index --precision auto (default)", []), "fp32": ("index --precision fp32", ["--precision", "fp32"]),
              "int8": ("index --precision int8", ["--precision", "int8"]),
              "bf16": ("index --precision bf16", ["--precision", "bf16"]),
              "torch-fp32": ("index --precision fp32, CH09_FP32_RUNTIME=torch", ["--precision", "fp32"])}
    for key in [k.strip() for k in ours.split(",") if k.strip()]:
        label, extra = labels[key]
        env = {"CH09_FP32_RUNTIME": "torch"} if key == "torch-fp32" else None
        rows[label] = time_ours(photos, checkpoint, cache, work, key, extra, env)
        log(f"{label}: {json.dumps(rows[label])}")
    peer = rows["rclip 3.3.0 (fp32 ONNX Runtime)"]["seconds"]
    for row in rows.values():
        row["img_s"] = round(images / row["seconds"], 2)
        row["vs_rclip"] = round(peer / row["seconds"], 2)
    report["rows"] = rows
    auto = rows.get("index --precision auto (default)")
    if auto:
        report["target"] = {"want": f">= {TARGET}x rclip's images/s with --precision auto", "got": auto["vs_rclip"],
                            "met": auto["vs_rclip"] >= TARGET,
                            "missed_by": None if auto["vs_rclip"] >= TARGET else round(TARGET / auto["vs_rclip"], 2)}
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.capstone.bench.peer_rclip", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--rclip-python", default=DEFAULT_RCLIP_PYTHON,
                        help=f"python of a venv with rclip==3.3.0 (default {DEFAULT_RCLIP_PYTHON})")
    parser.add_argument("--work", default=None, help="folder for photos, models and indexes (default: a temporary one)")
    parser.add_argument("--ours", default=None,
                        help="our rows: comma list of auto, fp32, int8, bf16, torch-fp32 (default: "
                             "auto, fp32, int8, bf16 where native, torch-fp32)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the report here")
    args = parser.parse_args(argv)
    missing = missing_rclip(args.rclip_python)
    if missing:
        parser.error(missing)
    report = peer_report(args.images, args.rclip_python, args.work, args.ours,
                         log=lambda message: print(message, flush=True))
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def format_report(report: dict) -> str:
    lines = [f"CPU: {report['cpu_line']}",
             f"{report['images']} JPEGs {report['photo_size']}, {report['model']}; whole process, fresh index",
             f"  {'':<48} {'seconds':>8} {'img/s':>7} {'vs rclip':>8} {'encoding img/s':>15}  precision  load"]
    for label, row in report["rows"].items():
        lines.append(f"  {label:<48} {row['seconds']:>8.1f} {row['img_s']:>7.2f} {row['vs_rclip']:>7.2f}x "
                     f"{row.get('encoding_img_s', '') or '':>15}  {row.get('identity') or 'fp32':<9}  "
                     f"{row['load_before']}->{row['load_after']}")
    lines.append("  phases (s): imports, model load, precision check, encoding, compaction, interpreter start")
    for label, row in report["rows"].items():
        if "phases" in row:
            p = row["phases"]
            lines.append(f"    {label:<46} " + ", ".join(f"{p.get(k, 0):.1f}" for k in (
                "imports_s", "model_load_s", "precision_check_s", "encoding_s", "compaction_s", "interpreter_start_s")))
    if "target" in report:
        t = report["target"]
        lines.append(f"  target {t['want']}: {'met' if t['met'] else 'MISSED'} ({t['got']}x"
                     + ("" if t["met"] else f"; {t['missed_by']}x short") + ")")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
