"""Checks for the 9.5 exercises: the VLM's input sequence and labels, caption labels, int8 weights."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .core import Check, Failed, close


def _what_tiny_vlm_feeds_its_lm(visual, words, attention_mask, labels):
    """Run the library's own ``TinyVLM.forward`` with stand-ins that record what it hands the LM."""
    import torch

    from ..vlm.tiny import TinyVLM

    seen = {}

    def lm(**inputs):
        seen.update(inputs)
        return SimpleNamespace(loss=None)

    lm.get_input_embeddings = lambda: (lambda ids: words)
    fake = SimpleNamespace(visual_tokens=lambda features: features, projector=[torch.nn.Linear(1, 1)], lm=lm)
    input_ids = torch.zeros(labels.shape, dtype=torch.long)
    TinyVLM.forward(fake, input_ids, attention_mask, labels, image_features=visual)
    return seen


def check_build_vlm_inputs(build_vlm_inputs, rng):
    import torch

    b, n, t, h = int(rng.integers(2, 5)), int(rng.integers(3, 8)), int(rng.integers(4, 9)), int(rng.integers(4, 12))
    visual = torch.tensor(rng.normal(size=(b, n, h)), dtype=torch.float32)
    words = torch.tensor(rng.normal(size=(b, t, h)), dtype=torch.float32)
    lengths = rng.integers(1, t + 1, size=b)
    lengths[0] = t
    attention_mask = torch.tensor(np.arange(t)[None, :] < lengths[:, None], dtype=torch.long)
    labels = torch.tensor(rng.integers(5, 100, size=(b, t)), dtype=torch.long).masked_fill(attention_mask == 0, -100)
    got = build_vlm_inputs(visual.clone(), words.clone(), attention_mask.clone(), labels.clone())
    if not isinstance(got, dict) or not {"inputs_embeds", "attention_mask", "labels"} <= set(got):
        raise Failed('return a dict with "inputs_embeds", "attention_mask" and "labels"')
    expected = _what_tiny_vlm_feeds_its_lm(visual, words, attention_mask, labels)
    for key in ("inputs_embeds", "attention_mask", "labels"):
        if tuple(got[key].shape) != tuple(expected[key].shape):
            raise Failed(f"{key}: shape {tuple(got[key].shape)}, expected {tuple(expected[key].shape)}")
    close(got["inputs_embeds"], expected["inputs_embeds"], "inputs_embeds (which comes first, image or words?)")
    if not torch.equal(got["attention_mask"].long(), expected["attention_mask"].long()):
        raise Failed("attention_mask: the image positions and the caption's own mask are not where they belong")
    if not torch.equal(got["labels"].long(), expected["labels"].long()):
        raise Failed("labels: the image positions must be ignored (-100) and the caption's labels kept as given")


def check_caption_labels(caption_labels, rng):
    import torch

    b, t = int(rng.integers(2, 6)), int(rng.integers(4, 12))
    input_ids = torch.tensor(rng.integers(3, 500, size=(b, t)), dtype=torch.long)
    lengths = rng.integers(1, t + 1, size=b)
    attention_mask = torch.tensor(np.arange(t)[None, :] < lengths[:, None], dtype=torch.long)
    input_ids[attention_mask == 0] = 0  # the pad id ...
    input_ids[:, 0] = 0  # ... is also a real token's id here, so only the mask tells padding apart
    before = input_ids.clone()
    got = caption_labels(input_ids, attention_mask)
    if not torch.equal(input_ids, before):
        raise Failed("input_ids was changed in place; return a new tensor")
    expected = before.masked_fill(attention_mask == 0, -100)
    if tuple(got.shape) != tuple(expected.shape) or not torch.equal(torch.as_tensor(got).long(), expected):
        raise Failed("labels differ: real tokens keep their id, padding positions get -100")


def check_quantize_int8(quantize_int8, rng):
    import torch

    rows, columns = int(rng.integers(4, 9)), int(rng.integers(8, 33))
    magnitudes = 10.0 ** rng.uniform(-3, 1, size=(rows, 1))  # rows of very different sizes
    weight = torch.tensor(rng.normal(size=(rows, columns)) * magnitudes, dtype=torch.float32)
    weight[int(rng.integers(rows))] = 0.0
    got = quantize_int8(weight.clone())
    if not isinstance(got, tuple) or len(got) != 2:
        raise Failed("return (q, scale)")
    q, scale = got
    if q.dtype != torch.int8 or tuple(q.shape) != tuple(weight.shape):
        raise Failed(f"q should be int8 of shape {tuple(weight.shape)}, got {q.dtype} {tuple(q.shape)}")
    if int(q.min()) < -127 or int(q.max()) > 127:
        raise Failed("q should stay within -127..127 (symmetric: -128 is left unused)")
    scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
    if scale.numel() != rows:
        raise Failed(f"one scale per output row: {rows} scales, got {scale.numel()}")
    restored = q.float() * scale[:, None]
    if not torch.isfinite(restored).all():
        raise Failed("q * scale is not finite (a zero row?)")
    step = weight.abs().amax(dim=1) / 127
    error = (restored - weight).abs().amax(dim=1)
    if (error > step / 2 + 1e-6 + 1e-4 * step).any():
        raise Failed("the error of q * scale is more than half a step on some row: is each row's scale its own "
                     "largest magnitude / 127, and is q rounded (not truncated)?")
    used = (q.abs().amax(dim=1) == 127) | (weight.abs().amax(dim=1) == 0)
    if not bool(used.all()):
        raise Failed("some rows do not use the full range -127..127: the scale is larger than it needs to be")


CHECKS = [
    Check("9.5.1", "build_vlm_inputs", check_build_vlm_inputs,
          "concatenate along the sequence axis (dim 1), image first; new image positions need a mask and labels "
          "of their own"),
    Check("9.5.2", "caption_labels", check_caption_labels,
          "which positions are padding is what the attention mask says; the pad id may also be a real token"),
    Check("9.5.3", "quantize_int8", check_quantize_int8,
          "each row needs its own scale, set by its largest magnitude; round rather than truncate; an all-zero row needs care"),
]
