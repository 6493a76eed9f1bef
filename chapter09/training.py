"""The parts every trainer in this chapter shares: loss, optimiser, step and log.

The toy twins (``toyworld/train_*.py``), the tiny VLM and the capstone's ``finetune`` all train
the same way: AdamW, a linear warm-up then a cosine decay, gradients clipped to norm 1,
and a line of mean loss every few steps. Each piece lives here once.
"""
from __future__ import annotations

import math
import os
import random
import time

from .config import ENV_DEVICE


def clip_contrastive_loss(image_features, text_features, logit_scale):
    """Symmetric InfoNCE: each image must pick its caption among the batch, and vice versa."""
    import torch
    import torch.nn.functional as F

    image_features = F.normalize(image_features.float(), dim=-1)
    text_features = F.normalize(text_features.float(), dim=-1)
    logits = logit_scale.exp().clamp(max=100) * image_features @ text_features.T
    labels = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def grouped_batch(rng, n_items: int, batch_size: int, group: int = 1) -> list[int]:
    """A random batch of whole groups: items ``group*g ... group*g+group-1`` always come together.

    Contrastive trainers keep hard negatives (a scene and its shape twins) in one batch this
    way; ``group=1`` is a plain random batch.
    """
    return [group * g + j for g in rng.sample(range(n_items // group), batch_size // group) for j in range(group)]


def cosine_schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then half a cosine down to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def decay_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only; biases, norms and embeddings are left alone."""
    decay, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 and "embed" not in name else rest).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def adamw_cosine(params, lr: float, steps: int, warmup: int | None = None, **adamw_options):
    """AdamW and its warm-up/cosine schedule; ``warmup`` defaults to 5 % of the steps."""
    import torch

    warmup = max(1, steps // 20) if warmup is None else warmup
    optimizer = torch.optim.AdamW(params, lr=lr, **adamw_options)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_schedule(step, steps, warmup))
    return optimizer, schedule


def optimizer_step(loss, optimizer, schedule, clip_params=None, max_norm: float = 1.0) -> float:
    """Backward, clip the gradients of ``clip_params`` (if given), step; returns the loss as a float."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip_params is not None:
        torch.nn.utils.clip_grad_norm_(clip_params, max_norm)
    optimizer.step()
    schedule.step()
    return loss.item()


class LossLog:
    """Keeps every step's loss and, every ``every`` steps, prints the mean since the last line."""

    def __init__(self, steps: int, every: int, name: str = "", metric: str = "loss", digits: int = 3,
                 printer=None):
        self.steps, self.every, self.metric, self.digits = steps, every, metric, digits
        self.prefix = f"[{name}] " if name else ""
        self.printer = printer or (lambda line: print(line, flush=True))
        self.losses: list[float] = []  # one per step
        self.means: list[float] = []  # one per printed line
        self.started = time.time()

    def add(self, loss: float, extra: str = "") -> bool:
        """Record one step's loss; True when this step printed a line (``extra`` is appended to it)."""
        self.losses.append(loss)
        step = len(self.losses)
        if not self.every or step % self.every:
            return False
        self.means.append(sum(self.losses[-self.every:]) / self.every)
        self.printer(f"{self.prefix}step {step:>5}/{self.steps}  {self.metric} {self.means[-1]:.{self.digits}f}"
                     f"{'  ' + extra if extra else ''}  {time.time() - self.started:.0f} s")
        return True
def autocast(device: str = "cpu"):
    """bf16 autocast where the CPU has bf16 units (several times faster matmuls), else a no-op."""
    import contextlib

    import torch

    from .cpu import has_native_bf16

    if device == "cpu" and has_native_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_device() -> str:
    """Where the trainers run: ``$CH09_DEVICE`` (``cuda`` trains the twins in minutes), else the CPU."""
    return os.environ.get(ENV_DEVICE) or "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch alike, so a trainer's run is reproducible."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
