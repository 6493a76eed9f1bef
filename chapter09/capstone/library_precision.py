"""Which precision encodes *this* library: fidelity measured on a sample of its own images.

``index --precision int8`` (or bf16) encodes a sample of the library (``SAMPLE_IMAGES``, spread
evenly over its sorted paths) and the library's own captions (``captions.jsonl`` beside the images,
as the toy data sets and ``eval`` folders have) or else ``DEFAULT_QUERIES``, at fp32 and at the
precision asked for, and reports the fidelity (``chapter09.fidelity``). ``--precision auto`` does
the same for every precision this machine runs and keeps the fastest one that passes the bar.

One precision serves every encoder of an index (with ``--chinese-clip``, auto keeps the fastest that
passes for both). The choice is written to ``precision.json`` in the index folder; the store itself
keys each vector table by checkpoint and precision (``tables.EncoderIdentity``), so another precision
re-encodes into a table of its own instead of mixing vectors. Re-running ``index`` (auto) on that
folder with the same models keeps the recorded choice (no re-measuring, no re-encoding). ``search``
and ``serve`` read the precision from the index's own table identity (``query_settings``), so queries
are encoded at the precision the images were.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ..errors import UsageError
from ..fidelity import FIDELITY_BAR, Fidelity, FidelityBar, choose_precision, fidelity_rows, format_fidelity
from ..precision import PRECISIONS, check_precision, numeric_format, precision_identity

SAMPLE_IMAGES = 256
SAMPLE_QUERIES = 64
SIDECAR = "precision.json"

# Fixed English queries for libraries without captions: everyday photo subjects, short like real queries.
DEFAULT_QUERIES = (
    "a dog", "a cat sleeping on a sofa", "a red car parked on the street", "a plate of food", "a birthday cake",
    "people at the beach", "a mountain landscape with snow", "a city skyline at night", "a child playing football",
    "a bowl of fruit", "a bicycle against a wall", "a sunset over the sea", "a bird on a branch", "a group photo",
    "a train at a station", "a cup of coffee", "flowers in a garden", "a laptop on a desk", "a rainy street",
    "a boat on a lake", "a portrait of a woman", "an old man smiling", "a forest path", "a kitchen", "a horse",
    "fireworks", "a bridge over a river", "a screenshot of text", "a wedding", "a snowy field", "a book",
    "a close-up of a flower", "a building with a clock tower", "a plane in the sky", "a baby", "a pizza",
    "a living room", "a desert road", "a fish in an aquarium", "a black and white photo",
)


def sample_evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over ``items`` (all of them when there are fewer), in order."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def library_images(root: Path) -> list[Path]:
    from ..images import IMAGE_SUFFIXES
    from .indexer import walk_library

    return [root / p for p in walk_library(root) if p.suffix.lower() in IMAGE_SUFFIXES]


def library_queries(root: Path, n: int = SAMPLE_QUERIES) -> tuple[list[str], str]:
    """Captions from ``captions.jsonl`` under the library (spread evenly), else ``DEFAULT_QUERIES``."""
    found = sorted(root.glob("captions.jsonl")) + sorted(root.glob("*/captions.jsonl"))
    captions = []
    for path in found:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                caption = json.loads(line).get("caption")
            except (ValueError, AttributeError):
                continue
            if isinstance(caption, str) and caption.strip():
                captions.append(caption.strip())
    if captions:
        return sample_evenly(sorted(set(captions)), n), f"{min(n, len(set(captions)))} of the library's captions"
    return list(DEFAULT_QUERIES), f"{len(DEFAULT_QUERIES)} fixed queries"


def sample_pixels(paths: list[Path], encoder):
    """Decode and preprocess ``paths`` the way indexing does (draft JPEG decode); unreadable files are skipped."""
    import torch

    from ..images import BadImageError, load_image

    processor, tensors = encoder.processor.image_processor, []
    for path in paths:
        try:
            image = load_image(path, min_side=encoder.image_side)
        except BadImageError:
            continue
        tensors.append(processor(images=[image], return_tensors="pt")["pixel_values"][0])
    if not tensors:
        raise UsageError("no readable image in the library sample: nothing to measure fidelity on")
    return torch.stack(tensors)


def measure_library(library, reference, precisions=("bf16", "int8"), sample: int = SAMPLE_IMAGES,
                    batch_size: int = 32) -> tuple[dict[str, Fidelity], str]:
    """Fidelity rows of ``precisions`` against the fp32 ``reference`` ClipEncoder on the library's sample."""
    root = Path(library).resolve()
    paths = sample_evenly(library_images(root), sample)
    if not paths:
        raise UsageError(f"no image files in {root}: nothing to measure fidelity on")
    queries, where = library_queries(root)
    pixels = sample_pixels(paths, reference)
    rows = fidelity_rows(reference, pixels, queries, precisions, batch_size)
    return rows, f"{len(pixels)} library images, {where}"


def read_sidecar(index_dir) -> dict:
    path = Path(index_dir) / SIDECAR
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_sidecar(index_dir, report: dict) -> None:
    """Record the precision an index's images were encoded at (atomically: write, then rename)."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=".precision-", suffix=".json", dir=index_dir)
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump({**report, "identity": precision_identity(report["precision"]),
                   "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S")}, out, indent=2, ensure_ascii=False)
    os.replace(tmp, index_dir / SIDECAR)


def recorded_precision(index_dir, locations: dict[str, str] | None = None) -> str | None:
    """The precision ``index_dir`` records (None if none, or if it was measured for other models)."""
    data = read_sidecar(index_dir)
    if data.get("precision") not in PRECISIONS:
        return None
    if locations is not None and any(data.get("locations", {}).get(role) != where for role, where in locations.items()):
        return None
    return data["precision"]


def _combined(per_role: dict[str, dict[str, Fidelity]]) -> dict[str, Fidelity]:
    """One row per precision over several encoders: the worst fidelity, and the images/s of running them all."""
    if len(per_role) == 1:
        return next(iter(per_role.values()))
    combined = {}
    for precision in next(iter(per_role.values())):
        rows = [rows[precision] for rows in per_role.values()]
        missing = next((row.unavailable for row in rows if row.unavailable), None)
        rate = 1 / sum(1 / max(row.img_s, 1e-9) for row in rows) if not missing else 0.0
        combined[precision] = Fidelity(precision, min(r.images for r in rows), min(r.queries for r in rows),
                                       min(r.mean_cosine for r in rows), min(r.min_cosine for r in rows),
                                       min(r.text_mean_cosine for r in rows), min(r.top10_agreement for r in rows),
                                       rows[0].k, round(rate, 2), missing)
    return combined


def pick_for_index(library, index_dir, roles, settings, requested: str, sample: int = SAMPLE_IMAGES,
                   bar: FidelityBar = FIDELITY_BAR, batch_size: int = 32, log=None) -> dict:
    """Decide the one precision ``index`` encodes every role in ``roles`` at; returns a JSON-ready report.

    fp32: nothing to measure. bf16/int8: fidelity measured and reported (kept even if it misses the
    bar, with a warning). auto: measured for every precision available here; the fastest that passes
    for every role is kept, unless ``index_dir`` already records a choice for the same models.
    The choice is recorded in ``index_dir`` for ``search`` and ``serve``.
    """
    from ..clip import ClipEncoder
    from ..models import resolve

    log = log or (lambda message: print(message, file=sys.stderr))
    check_precision(requested, allow_auto=True)
    locations = {role: resolve(role, settings).location for role in roles}
    if requested == "auto":
        kept = recorded_precision(index_dir, locations)
        if kept:
            data = read_sidecar(index_dir)
            reason = (f"auto keeps {kept}, chosen for this index on {data.get('recorded_at')} "
                      f"(--precision fp32, bf16 or int8 changes it, and re-encodes)")
            log(f"[index] {reason}")
            return {key: data[key] for key in ("precision", "locations", "fidelity", "bar", "sample") if key in data} \
                | {"reason": reason}
        from .store import held_precision  # an index built without a record (API, older version): keep it

        held = held_precision(index_dir, locations) if Path(index_dir).exists() else None
        if held in PRECISIONS:
            reason = (f"auto keeps {held}, the precision this index's vectors were encoded at "
                      f"(--precision fp32, bf16 or int8 changes it, and re-encodes)")
            log(f"[index] {reason}")
            report = {"precision": held, "reason": reason, "locations": locations}
            write_sidecar(index_dir, report)
            return report
    if requested == "fp32":
        report = {"precision": "fp32", "reason": "fp32 as asked (the reference: nothing to measure)",
                  "locations": locations}
        write_sidecar(index_dir, report)
        return report
    candidates = [p for p in PRECISIONS if p != "fp32"] if requested == "auto" else [requested]
    per_role, where = {}, ""
    for role in roles:
        log(f"[index] {role}: measuring {', '.join(candidates)} against fp32 on a sample of the library ...")
        reference = ClipEncoder(role, settings.with_(precision="fp32"))
        per_role[role], where = measure_library(library, reference, candidates, sample, batch_size)
        log(f"[index] {role}: fidelity against fp32 ({where}):\n{format_fidelity(per_role[role])}")
        del reference
    choice = choose_precision(requested, _combined(per_role), bar)
    log(f"[index] {choice.reason}" + (f" (worst over {', '.join(roles)})" if len(per_role) > 1 else ""))
    if requested != "auto" and not choice.rows[requested].passes(bar):
        log(f"[index] warning: {requested} misses the fidelity bar on this library; consider --precision auto")
    report = {"precision": choice.precision, "reason": choice.reason, "locations": locations, "sample": where,
              "bar": {"min_mean_cosine": bar.min_mean_cosine, "min_top10_agreement": bar.min_top10_agreement},
              "fidelity": {role: {p: row.to_json() for p, row in rows.items()} for role, rows in per_role.items()}}
    write_sidecar(index_dir, report)
    return report


def index_precision(args_precision: str | None, settings, library, index_dir, roles, log=None) -> tuple[object, dict]:
    """``index``'s --precision: (settings to encode with, the report). No flag and an explicit --dtype: the
    dtype decides (nothing measured); no flag otherwise: auto."""
    if args_precision is None and settings.dtype:
        from ..models import pick_device, resolve

        precision = numeric_format(settings.with_(precision=None), pick_device(settings.device)).precision
        report = {"precision": precision, "reason": f"--dtype {settings.dtype} decides (nothing measured)",
                  "locations": {role: resolve(role, settings).location for role in roles}}
        write_sidecar(index_dir, report)
        return settings.with_(precision=None), report
    report = pick_for_index(library, index_dir, roles, settings, args_precision or "auto", log=log)
    return settings.with_(precision=report["precision"]), report


def query_settings(index, settings):
    """Settings for the text side of ``search``/``serve``: with --precision auto (or none), the precision the
    index's images were encoded at, read from its table identity, so queries and images match what was
    measured. ``index``: an index folder or an open ``store.Store``."""
    from .store import Store

    if settings.precision not in (None, "auto"):
        return settings
    store = index if isinstance(index, Store) else Store.open(index)
    held = store.identity(store.roles[0]).base_precision if store.roles else None
    return settings.with_(precision=held) if held in PRECISIONS else settings
