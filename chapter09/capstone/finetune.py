"""Contrastive fine-tuning of CLIP on your own image-caption pairs, measured before and after.

Symmetric InfoNCE (each image picks its caption in the batch and each caption its
image), linear warm-up then cosine decay, AdamW with weight decay on weight
matrices only, and CLIP's learnable temperature (``logit_scale``) trained too.
Held-out recall is measured on images never trained on, before and after.
"""
from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from ..clip import ClipEncoder
from ..images import as_rgb
from ..models import Settings
from ..training import LossLog, adamw_cosine, clip_contrastive_loss, decay_groups, optimizer_step
from .evaluate import PairedData, load_dataset, retrieval_recall


def split_by_image(data: PairedData, val_fraction: float = 0.2, seed: int = 0) -> tuple[PairedData, PairedData]:
    images = list(range(len(data.images)))
    random.Random(seed).shuffle(images)
    val_images = set(images[: max(1, int(len(images) * val_fraction))])

    def subset(chosen):
        order = sorted(chosen)
        new = {old: i for i, old in enumerate(order)}
        rows = [t for t, owners in enumerate(data.text_images) if owners & chosen]
        return PairedData(data.name, [data.images[i] for i in order], [data.texts[t] for t in rows],
                          [{new[i] for i in data.text_images[t] if i in new} for t in rows],
                          [data.text_langs[t] for t in rows])

    return subset(set(images) - val_images), subset(val_images)


def measure(encoder, data: PairedData) -> dict:
    recall = retrieval_recall(encoder.encode_images(data.images), encoder.encode_texts(data.texts), data.text_images)
    return {"text_to_image": recall["text_to_image"], "image_to_text": recall["image_to_text"]}


def finetune(dataset, out_dir, val=None, steps: int = 200, lr: float = 5e-5, batch_size: int = 64,
             warmup_fraction: float = 0.1, weight_decay: float = 0.1, settings: Settings | None = None,
             seed: int = 0, log=print) -> dict:
    """Fine-tune CLIP on ``dataset`` and save it to ``out_dir``; trains in fp32 unless ``settings.dtype`` says
    otherwise (optimiser states in bf16 lose the small updates fine-tuning makes)."""
    import torch  # heavy: torch


    settings = settings or Settings()
    torch.manual_seed(seed)
    data = load_dataset(dataset)
    train, held_out = (data, load_dataset(val)) if val else split_by_image(data, seed=seed)
    encoder = ClipEncoder("clip", settings.with_(dtype=settings.dtype or "float32"))
    before = measure(encoder, held_out)
    log(f"held-out before: text->image R@1 {before['text_to_image']['R@1']:.3f} R@5 {before['text_to_image']['R@5']:.3f}")

    images = [as_rgb(image) for image in train.images]
    pixels = torch.cat([encoder.processor(images=images[i:i + 256], return_tensors="pt")["pixel_values"]
                        for i in range(0, len(images), 256)]).to(encoder.device, encoder.dtype)
    pairs = [(t, next(iter(owners))) for t, owners in enumerate(train.text_images) if owners]
    model = encoder.model.train()
    optimizer, schedule = adamw_cosine(decay_groups(model, weight_decay), lr, steps,
                                       max(1, int(steps * warmup_fraction)))
    rng = random.Random(seed)
    started = time.time()
    loss_log = LossLog(steps, 25, printer=log)
    for step in range(steps):
        batch, seen = [], set()
        for t, i in rng.sample(pairs, min(len(pairs), batch_size * 2)):
            if i not in seen:  # one caption per image, or InfoNCE would punish a correct match
                seen.add(i)
                batch.append((t, i))
            if len(batch) == batch_size:
                break
        tokens = encoder.tokenize([train.texts[t] for t, _ in batch]).to(encoder.device)
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                    pixel_values=pixels[[i for _, i in batch]])
        loss = clip_contrastive_loss(out.image_embeds, out.text_embeds, model.logit_scale)
        loss_log.add(optimizer_step(loss, optimizer, schedule, model.parameters()),
                     f"temperature {1 / model.logit_scale.exp().item():.4f}")
    model.eval()
    after = measure(encoder, held_out)
    log(f"held-out after:  text->image R@1 {after['text_to_image']['R@1']:.3f} R@5 {after['text_to_image']['R@5']:.3f}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    encoder.processor.save_pretrained(out_dir)
    return {"out": str(out_dir), "steps": steps, "seconds": round(time.time() - started, 1),
            "train_pairs": len(pairs), "held_out_images": len(held_out.images),
            "loss_first": round(float(np.mean(loss_log.losses[:10])), 4),
            "loss_last": round(float(np.mean(loss_log.losses[-10:])), 4),
            "temperature": round(1 / model.logit_scale.exp().item(), 4), "before": before, "after": after}
