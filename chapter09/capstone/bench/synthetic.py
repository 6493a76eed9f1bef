"""The bench's inputs, made on the spot: clustered unit vectors, photo-sized JPEGs, a ViT-B/32 with random weights.

Nothing here is timed. Speed does not depend on weight values or on what a photo shows, only on the
model's architecture and the photo's size and compressibility, so synthetic inputs measure what
real ones would (fidelity, which does depend on weights, is measured on the trained toy CLIP too).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
from PIL import Image

from ... import config
from ...clip import ClipEncoder
from ...models import Settings, quiet_loading

PHOTO_SIZE = (1600, 1200)


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


def make_photos(folder: Path, n: int, size=PHOTO_SIZE, seed: int = 0) -> list[Path]:
    """Photo-sized JPEGs: smooth colour gradients plus sensor-like noise, so they compress (and decode)
    like photos rather than like flat colour. One noise bank, shifted per photo, keeps this fast."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    noise = rng.normal(0, 12, (height + 64, width + 64, 3)).astype(np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    paths = []
    for i in range(n):
        channels = [(xs * rng.uniform(0.05, 0.2) + ys * rng.uniform(0.05, 0.2) + rng.uniform(0, 255)) % 255
                    for _ in range(3)]
        dy, dx = rng.integers(0, 64, 2)
        pixels = np.clip(np.stack(channels, axis=-1) + noise[dy:dy + height, dx:dx + width], 0, 255)
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(pixels.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _clip_bpe_tokenizer(folder: Path):
    """OpenAI CLIP's tokenizer (49,408 entries) from open-clip-torch's BPE file, or None if not installed.

    The standard conversion: 256 byte symbols, the same with ``</w>``, one entry per merge (lines
    1..48,894), then ``<|startoftext|>`` and ``<|endoftext|>``.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.origin:
        return None
    bpe = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    if not bpe.exists():
        return None
    from transformers import CLIPTokenizer  # heavy: transformers

    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    rest = [b for b in range(256) if b not in printable]
    symbols = [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1:1 + 49152 - 256 - 2]
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def vit_b32_folder(folder: Path, seed: int = 0) -> tuple[Path, str]:
    """A save_pretrained folder with the ViT-B/32 architecture (random weights) and a processor."""
    import torch  # heavy: torch, transformers
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _clip_bpe_tokenizer(folder / "bpe")
    which = "OpenAI CLIP BPE (open-clip-torch's vocabulary)"
    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(config.TOY_MODELS_DIR / "clip")
        which = "the toy CLIP's BPE (open-clip-torch not installed): query lengths differ from real CLIP's"

    torch.manual_seed(seed)
    with quiet_loading():  # no progress bar for one shard
        model = CLIPModel(CLIPConfig())
        model.save_pretrained(folder)
        CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return folder, which


def load_encoder(folder: Path, precision: str):
    return ClipEncoder("clip", Settings(mode="auto", device="cpu", precision=precision), local_dir=folder)
