"""The indexer's engines side by side: ``index --engine local`` and ``--engine ray`` on the same photos and checkpoint."""
from __future__ import annotations

import os
import time
from pathlib import Path


def engines_report(library, model_folder, precision: str = "bf16", work=None, batch_size: int = 32, log=print) -> dict:
    """Images/s of ``index --engine local`` and ``--engine ray`` on the same photos and checkpoint.

    Each engine indexes the photos into a fresh index; ``img_s`` counts from the first decode to
    the last row (for Ray: starting a local Ray on this machine's cores, the actor loading its
    model, then decode tasks + one encoding actor); ``wall_s`` is the whole ``build_index`` call.
    """
    import tempfile

    from ..indexer import build_index
    from .synthetic import load_encoder

    work = Path(work or tempfile.mkdtemp(prefix="ch09-bench-engines-"))
    encoder = load_encoder(Path(model_folder), precision)
    out = {"precision": precision, "batch_size": batch_size, "cpu_count": os.cpu_count()}
    for engine in ("local", "ray"):
        t = time.perf_counter()
        summary = build_index(library, work / f"index-{engine}", {"clip": encoder}, batch_size=batch_size,
                              progress=False, engine=engine, build_ann=False)
        wall = time.perf_counter() - t
        out["images"] = summary.added
        out[engine] = {"img_s": summary.images_per_s, "wall_s": round(wall, 2),
                       "wall_img_s": round(summary.added / wall, 2), "startup_s": summary.startup_s}
        log(f"  --engine {engine:<5} {summary.images_per_s:7.2f} img/s ({summary.added} photos, whole run "
            f"{wall:.1f} s" + (f", of which starting Ray {summary.startup_s} s" if engine == "ray" else "") + ")")
    out["ray_over_local"] = round(out["ray"]["img_s"] / max(out["local"]["img_s"], 1e-9), 3)
    return out
