"""One batch of captioning, shared by the engines of ``caption_index``: a file read and checked against its
indexed bytes (``CaptionDecoded``), captions for a decoded batch (``caption_decoded``), and what an engine hands
back (``CaptionBatch``). Its own module so the Ray engine (``caption_ray``) and ``caption_index``, which picks
the engine, both import it without importing each other."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...translation import translator
from ..index.decode import decode_one


@dataclass
class CaptionBatch:
    """What an engine hands back per batch: captioned records, failures, and where its time went."""

    done: list[tuple[dict, dict[str, str]]]  # (record {"path", "sha1"}, {lang: caption})
    failed: list[dict]  # {"path", "reason"}
    generate_s: float = 0.0
    translate_s: float = 0.0


class CaptionDecoded:
    """DataLoader dataset: one indexed file read, checked against its indexed bytes, decoded and preprocessed."""

    def __init__(self, root: Path, records: list[dict], image_processor, min_side: int):
        self.root, self.records, self.image_processor, self.min_side = root, records, image_processor, min_side

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        record = self.records[i]
        item = decode_one(self.root, record["path"], {"captioner": self.image_processor}, self.min_side)
        if item["ok"] and item["sha1"] != record["sha1"]:
            # the caption would describe bytes the index does not hold: `index` first re-encodes the file
            item.update(ok=False, reason="changed since it was indexed: run `index`, then `caption --index` again")
        return {"record": record, "ok": item["ok"], "reason": item["reason"],
                "pixels": item["pixels"]["captioner"] if item["ok"] else None}


def caption_decoded(items: list[dict], captioner, langs: list[str], settings, generation: dict) -> CaptionBatch:
    """Captions for one batch of decoded items: the captioner once per batch (per language if it is bilingual),
    the translator once per batch for Chinese."""
    import torch  # heavy: torch

    ok = [item for item in items if item["ok"]]
    failed = [{"path": item["record"]["path"], "reason": item["reason"]} for item in items if not item["ok"]]
    batch = CaptionBatch([], failed)
    if not ok:
        return batch
    pixels = torch.from_numpy(np.stack([item["pixels"] for item in ok]))
    by_lang = {}
    started = time.perf_counter()
    for lang in (langs if captioner.bilingual else ["en"]):
        by_lang[lang] = captioner.decode_ids(captioner.generate_ids(pixels, lang, **generation))
    batch.generate_s = time.perf_counter() - started
    if "zh" in langs and not captioner.bilingual:
        started = time.perf_counter()
        by_lang["zh"] = translator("en_zh", settings).translate(by_lang["en"], batch_size=len(ok))
        batch.translate_s = time.perf_counter() - started
    batch.done = [(item["record"], {lang: by_lang[lang][i] for lang in langs}) for i, item in enumerate(ok)]
    return batch
