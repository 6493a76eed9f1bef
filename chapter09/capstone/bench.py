"""Speed, measured side by side in one run: encoding pipeline and search.

1. Encoding photos with the real ViT-B/32 CLIP architecture (``CLIPConfig()``
   defaults, random weights: speed does not depend on weight values):
   the naive loop the original projects used (decode the full JPEG, preprocess,
   one fp32 forward per image) against the capstone's pipeline (JPEG draft-mode
   decoding in DataLoader worker processes, overlapped with batched bf16 forwards).
2. Search latency per query (p50/p95) for 10k, 100k and 1M unit vectors of
   dimension 512: exact (BLAS) vs ANN (FAISS HNSW, IVF at 1M), with ANN recall@10.
"""
from __future__ import annotations

import json
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
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from ..clip_utils import quiet_transformers

    quiet_transformers()
    import torch

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
        from .library import decode_image

        image = decode_image(self.paths[i], min_side=224)
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


def clustered_vectors(n: int, dim: int = 512, clusters: int = 2000, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres, like real embeddings (uniform random ones are no test of ANN)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = centres[rng.integers(0, clusters, m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def search_latency(n: int, queries: int = 100) -> dict:
    from .search import IVF_ABOVE, build_ann, exact_search

    vectors = clustered_vectors(n)
    query_vectors = clustered_vectors(queries, seed=1)
    timings = {"exact": [], "ann": []}
    exact_ids = []
    for q in query_vectors:
        t = time.perf_counter()
        exact_ids.append(exact_search(vectors, q[None], 10)[1][0])
        timings["exact"].append(time.perf_counter() - t)
    t = time.perf_counter()
    index = build_ann(vectors)
    build_s = time.perf_counter() - t
    ann_ids = []
    for q in query_vectors:
        t = time.perf_counter()
        ann_ids.append(index.search(q[None], 10)[1][0])
        timings["ann"].append(time.perf_counter() - t)
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ann_ids, exact_ids)]))
    ms = {k: (round(float(np.percentile(v, 50)) * 1000, 3), round(float(np.percentile(v, 95)) * 1000, 3))
          for k, v in timings.items()}
    return {"vectors": n, "ann": "IVF-Flat" if n >= IVF_ABOVE else "HNSW", "exact_p50_ms": ms["exact"][0],
            "exact_p95_ms": ms["exact"][1], "ann_p50_ms": ms["ann"][0], "ann_p95_ms": ms["ann"][1],
            "ann_build_s": round(build_s, 1), "ann_recall_at_10": round(recall, 3)}


def main(args) -> dict:
    import torch

    started = time.time()
    threads = torch.get_num_threads()
    report = {"cpu_threads": threads, "cpu_count": os.cpu_count()}
    model, processor = vit_b32()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp), args.images)
        naive_encode(model, processor, paths[:4])  # warm-up
        naive = naive_encode(model, processor, paths)
        pipelined = pipeline_encode(model, processor, paths)
    report["encoding"] = {"images": len(paths), "photo_size": "1600x1200 JPEG", "naive_fp32_img_s": round(naive, 2),
                          "pipeline_img_s": round(pipelined, 2), "speed_up": round(pipelined / naive, 2)}
    if not args.json:
        e = report["encoding"]
        print(f"encoding {e['images']} {e['photo_size']} with ViT-B/32 ({threads} threads):\n"
              f"  naive per-image fp32 loop   {e['naive_fp32_img_s']:8.2f} images/s\n"
              f"  pipeline (draft decode + workers + batched bf16) {e['pipeline_img_s']:8.2f} images/s"
              f"   -> {e['speed_up']:.2f}x", flush=True)
        print(f"\nsearch latency per query, 512-d vectors:\n  {'vectors':>9} {'exact p50':>10} {'p95':>8} "
              f"{'ANN':>9} {'p50':>8} {'p95':>8} {'recall@10':>10} {'build s':>8}", flush=True)
    report["search"] = []
    for n in [int(s) for s in args.sizes.split(",")]:
        row = search_latency(n)
        report["search"].append(row)
        if not args.json:
            print(f"  {n:>9,} {row['exact_p50_ms']:>8.2f}ms {row['exact_p95_ms']:>6.2f}ms {row['ann']:>9} "
                  f"{row['ann_p50_ms']:>6.3f}ms {row['ann_p95_ms']:>6.3f}ms {row['ann_recall_at_10']:>10.3f} "
                  f"{row['ann_build_s']:>8.1f}", flush=True)
    report["seconds"] = round(time.time() - started, 1)
    if not args.json:
        print(f"\nbench finished in {report['seconds']} s")
    return report
