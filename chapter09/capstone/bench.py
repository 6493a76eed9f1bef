"""Speed, measured side by side in one run: encoding pipeline and search.

1. Encoding photos with the real ViT-B/32 CLIP architecture (``CLIPConfig()``
   defaults, random weights: speed does not depend on weight values):
   the naive loop the original projects used (decode the full JPEG, preprocess,
   one fp32 forward per image) against the capstone's pipeline (JPEG draft-mode
   decoding in DataLoader worker processes, overlapped with batched bf16 forwards).
2. Search latency per query (p50/p95) for 10k, 100k and 1M unit vectors of
   dimension 512: exact (BLAS) vs ANN (FAISS IVF-Flat, built and tuned exactly as
   ``search`` does it), with ANN recall@10 against exact search.

The vectors are synthetic and *clustered* (a mixture of Gaussian blobs on the sphere),
and queries are fresh draws from the same mixture, as real queries land near library
content. Uniform random vectors would be the worst case for any ANN index (no cell
structure to exploit); real CLIP embeddings are strongly clustered. ``nprobe`` is tuned
on 200 separate queries; the recall printed is measured on the timed queries.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def make_photos(folder: Path, n: int, size=(1600, 1200)) -> list[Path]:
    """Photo-sized JPEGs with smooth gradients and noise (compress like photos, not like flat colour)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    for i in range(n):
        base = np.stack([(xx * rng.uniform(0.05, 0.2) + yy * rng.uniform(0.05, 0.2) + rng.uniform(0, 255)) % 255
                         for _ in range(3)], axis=-1)
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(noisy).save(path, quality=90)
        paths.append(path)
    return paths


def vit_b32():
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(0)
    return CLIPModel(CLIPConfig()).eval(), CLIPImageProcessor()  # 224 px, patch 32, 512-d projection


def naive_encode(model, processor, paths) -> float:
    import torch
    from PIL import Image

    started = time.perf_counter()
    for path in paths:
        image = Image.open(path).convert("RGB")
        pixels = processor(images=image, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            model.get_image_features(pixel_values=pixels)
    return len(paths) / (time.perf_counter() - started)


class _Photos:
    def __init__(self, paths, processor):
        self.paths, self.processor = paths, processor

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from ..images import load_image

        image = load_image(self.paths[i], min_side=224)
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


def pipeline_encode(model, processor, paths, batch_size: int = 32, workers: int = 2) -> float:
    import torch
    from torch.utils.data import DataLoader

    from ..models import cpu_supports_bf16

    dtype = torch.bfloat16 if cpu_supports_bf16() else torch.float32
    fast = model.to(dtype)
    loader = DataLoader(_Photos(paths, processor), batch_size=batch_size, num_workers=workers, prefetch_factor=2)
    started = time.perf_counter()
    with torch.inference_mode():
        for pixels in loader:
            fast.get_image_features(pixel_values=pixels.to(dtype))
    rate = len(paths) / (time.perf_counter() - started)
    model.to(torch.float32)
    return rate


class ClusteredVectors:
    """Unit vectors from a mixture of ``clusters`` Gaussian blobs (within-blob cosine about 0.5)."""

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


def _percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(seconds, 50)) * 1000, 3), round(float(np.percentile(seconds, 95)) * 1000, 3)


def search_latency(n: int, queries: int = 100, dim: int = 512) -> dict:
    from .search import build_ivf, exact_search, recall_against, tune_nprobe

    mixture = ClusteredVectors(dim, seed=n)
    vectors = mixture.sample(n)
    tuning, timed = mixture.sample(200), mixture.sample(queries)  # queries are never library rows
    exact_s, exact_ids = [], []
    for q in timed:
        t = time.perf_counter()
        exact_ids.append(exact_search(vectors, q[None], 10)[1][0])
        exact_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    index = build_ivf(vectors)
    build_s = time.perf_counter() - t
    nprobe, tuning_recall = tune_nprobe(index, vectors, tuning)
    ann_s, ann_ids = [], []
    for q in timed:
        t = time.perf_counter()
        ann_ids.append(index.search(q[None], 10)[1][0])
        ann_s.append(time.perf_counter() - t)
    exact_ms, ann_ms = _percentiles_ms(exact_s), _percentiles_ms(ann_s)
    return {"vectors": n, "ann": f"IVF-Flat {index.nlist} cells", "nprobe": nprobe,
            "exact_p50_ms": exact_ms[0], "exact_p95_ms": exact_ms[1], "ann_p50_ms": ann_ms[0], "ann_p95_ms": ann_ms[1],
            "ann_build_s": round(build_s, 1), "ann_recall_at_10": round(recall_against(ann_ids, exact_ids), 3),
            "tuning_recall_at_10": round(tuning_recall, 3)}


def run_bench(images: int = 48, sizes=(10_000, 100_000, 1_000_000), queries: int = 100, quiet: bool = False) -> dict:
    """Run the bench and print its tables (unless ``quiet``); returns the figures as a dict."""
    import faiss
    import torch

    from .search import ANN_THRESHOLD, IVF_TARGET_RECALL

    started = time.time()
    threads = torch.get_num_threads()
    faiss.omp_set_num_threads(threads)
    report = {"cpu_threads": threads, "cpu_count": os.cpu_count()}
    if images > 0:
        model, processor = vit_b32()
        with tempfile.TemporaryDirectory() as tmp:
            paths = make_photos(Path(tmp), images)
            naive_encode(model, processor, paths[:4])  # warm-up
            naive = naive_encode(model, processor, paths)
            pipelined = pipeline_encode(model, processor, paths)
        report["encoding"] = {"images": len(paths), "photo_size": "1600x1200 JPEG",
                              "naive_fp32_img_s": round(naive, 2), "pipeline_img_s": round(pipelined, 2),
                              "speed_up": round(pipelined / naive, 2)}
    if not quiet and images > 0:
        e = report["encoding"]
        print(f"encoding {e['images']} {e['photo_size']} with ViT-B/32 ({threads} threads):\n"
              f"  naive per-image fp32 loop   {e['naive_fp32_img_s']:8.2f} images/s\n"
              f"  pipeline (draft decode + workers + batched bf16) {e['pipeline_img_s']:8.2f} images/s"
              f"   -> {e['speed_up']:.2f}x", flush=True)
    if not quiet:
        print(f"\nsearch latency per query, 512-d clustered vectors (queries: fresh draws, not library rows):\n"
              f"  {'vectors':>9} {'exact p50':>10} {'p95':>8} | {'IVF-Flat':>12} {'nprobe':>6} {'p50':>8} {'p95':>8} "
              f"{'recall@10':>10} {'build s':>8}", flush=True)
    report["search"] = []
    for n in sizes:
        row = search_latency(n, queries)
        row["search_auto_uses"] = "ann" if n >= ANN_THRESHOLD else "exact"
        report["search"].append(row)
        if not quiet:
            print(f"  {n:>9,} {row['exact_p50_ms']:>8.2f}ms {row['exact_p95_ms']:>6.2f}ms | "
                  f"{row['ann'].split()[1] + ' cells':>12} {row['nprobe']:>6} {row['ann_p50_ms']:>6.3f}ms "
                  f"{row['ann_p95_ms']:>6.3f}ms {row['ann_recall_at_10']:>10.3f} {row['ann_build_s']:>8.1f}"
                  f"   search uses {row['search_auto_uses']}", flush=True)
    report["seconds"] = round(time.time() - started, 1)
    report["ann_threshold"] = ANN_THRESHOLD
    if not quiet:
        print(f"\n`search` goes exact below {ANN_THRESHOLD:,} vectors and IVF-Flat above (nprobe: smallest reaching recall@10 "
              f">= {IVF_TARGET_RECALL} on the library, doubled).\nbench finished in {report['seconds']} s")
    return report
