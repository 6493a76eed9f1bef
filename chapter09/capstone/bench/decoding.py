"""Decoding alone, measured two ways: through the indexer's own decode workers, and decoder by decoder.

1. ``decode_only``: the local engine's decode workers (``indexer.decode_loader``: the same DataLoader,
   worker count and prefetch as ``index``) read, hash, decode and preprocess the bench photos, and no
   model runs. On a machine where decoding and the model share the same cores, the indexer cannot beat
   ``limit = 1 / (1 / model_only + 1 / decode_only)`` images/s: each image costs the cores its model
   time plus its decoding time, so the pipeline is judged against that (``efficiency_vs_limit``).
2. ``compare_decoders``: the JPEG decoders that libjpeg-turbo offers through Python, side by side in one
   process on the same photos: Pillow's draft mode (what ``images.load_image(min_side=...)`` does),
   ``simplejpeg`` and ``PyTurboJPEG`` (each asked for the same DCT-domain downscale Pillow's draft picks;
   the report says why one is missing), and Pillow's full decode (the input of the published recipe).
   Reported per decoder: img/s decoding alone and decoding + the encoder's preprocessing; the largest
   difference from Pillow's draft pixels (grey levels); and how far the pixels fed to the model are from
   the published preprocessing (full decode + the processor's bicubic resize, which
   ``tests/test_real_preprocessing.py`` pins to 1e-6): max and mean absolute difference, normalised units
   (one grey level is about 0.015).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ...images import load_image
from ..index.decode import decode_loader

# A decoder replaces Pillow's draft (what the indexer uses) only if it gives the same pixels and is at least this
# much faster with preprocessing: below it the gain is within one run's noise on a shared machine, and not
# worth a dependency.
KEEP_SPEED_UP = 1.1


def _cpu_children_s() -> float:
    import resource  # POSIX only: resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def decode_only(library: Path, encoder, batch_size: int, workers: int | None = None) -> dict:
    """Images/s of the indexer's decode workers alone on every photo of ``library`` (worker start-up included,
    as in a pipeline run), and their CPU time per image."""
    root = Path(library).resolve()
    todo = sorted(str(p.relative_to(root)) for p in root.rglob("*.jpg"))
    cpu_before = _cpu_children_s()
    started = time.perf_counter()
    decoded = failed = 0
    for items in decode_loader(root, todo, {"clip": encoder}, batch_size, workers):
        decoded += sum(item["ok"] for item in items)
        failed += sum(not item["ok"] for item in items)
    seconds = time.perf_counter() - started
    if failed or decoded != len(todo):
        raise RuntimeError(f"decode-only run decoded {decoded} of {len(todo)} photos ({failed} failed)")
    return {"img_s": round(decoded / seconds, 2), "seconds": round(seconds, 2), "images": decoded,
            "cpu_ms_per_image": round(1000 * (_cpu_children_s() - cpu_before) / decoded, 2)}


def limit_img_s(model_only_img_s: float, decode_only_img_s: float) -> float:
    """The pipeline's ceiling when decoding and the model share the cores: their per-image times add up."""
    return 1.0 / (1.0 / model_only_img_s + 1.0 / decode_only_img_s)


# ----------------------------------------------------------------------------- decoders side by side
def _draft_size(path: Path, min_side: int) -> tuple[tuple[int, int], tuple[int, int], int]:
    """(full size, the size Pillow's draft decodes to, the scale denominator) for a JPEG: header only."""
    with Image.open(path) as image:
        full = image.size
        image.draft("RGB", (min_side, min_side))
        scaled = image.size
    return full, scaled, max(1, round(full[0] / scaled[0]))


def _pillow_draft(path: Path, min_side: int):
    return load_image(path, min_side=min_side)


def _pillow_full(path: Path, min_side: int):
    return load_image(path)


def _simplejpeg():
    import simplejpeg  # optional: simplejpeg

    def decode(path: Path, min_side: int):
        _full, (width, height), _scale = _draft_size(path, min_side)
        pixels = simplejpeg.decode_jpeg(path.read_bytes(), colorspace="RGB", min_width=width, min_height=height)
        return Image.fromarray(pixels)

    return decode


def _turbojpeg():
    import turbojpeg  # optional: turbojpeg

    codec = turbojpeg.TurboJPEG()  # raises when the libturbojpeg shared library is missing or too old

    def decode(path: Path, min_side: int):
        _full, _size, scale = _draft_size(path, min_side)
        return Image.fromarray(codec.decode(path.read_bytes(), pixel_format=turbojpeg.TJPF_RGB,
                                            scaling_factor=(1, scale)))

    return decode


def decoders() -> tuple[dict, dict]:
    """(name -> decode(path, min_side) -> PIL RGB image, name -> why it is missing)."""
    found = {"pillow-draft": _pillow_draft}
    missing = {}
    for name, make, install in (("simplejpeg", _simplejpeg, "pip install simplejpeg"),
                                ("pyturbojpeg", _turbojpeg, "pip install 'pyturbojpeg<2' + Debian libturbojpeg0")):
        try:
            found[name] = make()
        except (ImportError, OSError, RuntimeError) as error:
            missing[name] = f"not available ({type(error).__name__}: {str(error).splitlines()[0][:120]}; {install})"
    found["pillow-full"] = _pillow_full
    return found, missing


def compare_decoders(paths, processor, min_side: int, rounds: int = 3, log=print) -> dict:
    """Each decoder on the same ``paths`` in this process, ``rounds`` interleaved rounds (median img/s)."""
    paths = [Path(p) for p in paths]
    found, missing = decoders()

    def fed(image):
        return processor(images=[image], return_tensors="np")["pixel_values"][0].astype(np.float64)

    recipe = [fed(_pillow_full(p, min_side)) for p in paths]
    draft = [np.asarray(_pillow_draft(p, min_side)) for p in paths]
    out = {"photos": len(paths), "min_side": min_side, "rounds": rounds, "missing": missing, "decoders": {}}
    rates = {name: {"decode": [], "with_preprocessing": []} for name in found}
    for _ in range(rounds):
        for name, decode in found.items():
            decode(paths[0], min_side)  # warm
            started = time.perf_counter()
            for path in paths:
                decode(path, min_side)
            rates[name]["decode"].append(len(paths) / (time.perf_counter() - started))
            started = time.perf_counter()
            for path in paths:
                fed(decode(path, min_side))
            rates[name]["with_preprocessing"].append(len(paths) / (time.perf_counter() - started))
    for name, decode in found.items():
        images = [decode(p, min_side) for p in paths]
        arrays = [np.asarray(image) for image in images]
        same_size = all(a.shape == d.shape for a, d in zip(arrays, draft))
        grey = max(int(np.abs(a.astype(np.int16) - d.astype(np.int16)).max()) for a, d in zip(arrays, draft)) \
            if same_size else None
        differences = [np.abs(fed(image) - r) for image, r in zip(images, recipe)]
        out["decoders"][name] = {
            "decoded_size": f"{arrays[0].shape[1]}x{arrays[0].shape[0]}",
            "decode_img_s": round(statistics.median(rates[name]["decode"]), 1),
            "with_preprocessing_img_s": round(statistics.median(rates[name]["with_preprocessing"]), 1),
            "max_grey_levels_vs_pillow_draft": grey,
            "fed_vs_recipe_max": round(max(float(d.max()) for d in differences), 6),
            "fed_vs_recipe_mean": round(float(np.mean([d.mean() for d in differences])), 6)}
    draft_row = out["decoders"]["pillow-draft"]
    same = [name for name, row in out["decoders"].items() if row["max_grey_levels_vs_pillow_draft"] == 0]
    out["fastest_with_draft_pixels"] = max(same, key=lambda n: out["decoders"][n]["with_preprocessing_img_s"])
    out["draft_speed_ratio"] = {name: round(row["with_preprocessing_img_s"] / draft_row["with_preprocessing_img_s"], 3)
                                for name, row in out["decoders"].items()}
    best = out["fastest_with_draft_pixels"]
    if best != "pillow-draft" and out["draft_speed_ratio"][best] >= KEEP_SPEED_UP:
        out["kept"], out["kept_reason"] = best, (f"same pixels as Pillow's draft and {out['draft_speed_ratio'][best]:.2f}x "
                                                 f"its speed with preprocessing (>= {KEEP_SPEED_UP}x)")
    else:
        out["kept"], out["kept_reason"] = "pillow-draft", (
            f"no decoder giving the same pixels is >= {KEEP_SPEED_UP}x faster with preprocessing "
            f"(best: {best}, {out['draft_speed_ratio'][best]:.2f}x)")
    return out


def format_decoders(report: dict) -> str:
    lines = [f"  JPEG decoders side by side ({report['photos']} photos, one process, median of {report['rounds']} "
             f"rounds; draft scale for a {report['min_side']}-px model):",
             f"    {'decoder':<13} {'decoded':>9} {'decode img/s':>13} {'+ preprocess':>13} {'vs draft':>9} "
             f"{'grey levels vs draft':>21} {'fed vs recipe max':>18} {'mean':>9}"]
    for name, row in report["decoders"].items():
        grey = "-" if row["max_grey_levels_vs_pillow_draft"] is None else row["max_grey_levels_vs_pillow_draft"]
        lines.append(f"    {name:<13} {row['decoded_size']:>9} {row['decode_img_s']:>13.1f} "
                     f"{row['with_preprocessing_img_s']:>13.1f} {report['draft_speed_ratio'][name]:>8.2f}x "
                     f"{grey:>21} {row['fed_vs_recipe_max']:>18.4f} {row['fed_vs_recipe_mean']:>9.5f}")
    lines += [f"    {name}: {why}" for name, why in report["missing"].items()]
    lines.append(f"    fastest giving Pillow draft's pixels: {report['fastest_with_draft_pixels']}; "
                 f"the indexer's decoder: {report['kept']} ({report['kept_reason']})")
    return "\n".join(lines)
