"""Checks for the 9.5 exercises: the VLM's input sequence and labels, caption labels, int8 weights."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch  # imported here, so that a check runs on one torch thread (core._one_torch_thread)

from .core import Check, Failed, close


def _what_tiny_vlm_feeds_its_lm(visual, words, attention_mask, labels):
    """Run the library's own ``TinyVLM.forward`` with stand-ins that record what it hands the LM."""
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


def _verify_vlm_inputs(build_vlm_inputs, b: int, n: int, t: int, h: int, rng) -> None:
    visual = torch.tensor(rng.normal(size=(b, n, h)), dtype=torch.float32)
    words = torch.tensor(rng.normal(size=(b, t, h)), dtype=torch.float32)
    lengths = rng.integers(1, t + 1, size=b)
    lengths[0], lengths[-1] = t, max(1, t // 2)  # one full caption, one padded
    attention_mask = torch.tensor(np.arange(t)[None, :] < lengths[:, None], dtype=torch.long)
    labels = torch.tensor(rng.integers(5, 100, size=(b, t)), dtype=torch.long).masked_fill(attention_mask == 0, -100)
    got = build_vlm_inputs(visual.clone(), words.clone(), attention_mask.clone(), labels.clone())
    if not isinstance(got, dict) or not {"inputs_embeds", "attention_mask", "labels"} <= set(got):
        raise Failed('return a dict with "inputs_embeds", "attention_mask" and "labels"')
    expected = _what_tiny_vlm_feeds_its_lm(visual, words, attention_mask, labels)
    for key in ("inputs_embeds", "attention_mask", "labels"):
        if tuple(got[key].shape) != tuple(expected[key].shape):
            raise Failed(f"{key}: shape {tuple(got[key].shape)} for b={b}, n={n} image tokens, t={t}, h={h}; "
                         f"expected {tuple(expected[key].shape)}", "which axis is the sequence, the one that "
                         "grows when image tokens are put in front?")
        if got[key].dtype != expected[key].dtype:
            raise Failed(f"{key}: dtype {got[key].dtype}, expected {expected[key].dtype} (as given)",
                         "torch.ones and torch.zeros make float32 unless told otherwise; torch.cat of a float "
                         "and a long tensor gives float")
    close(got["inputs_embeds"], expected["inputs_embeds"], "inputs_embeds (which comes first, image or words?)")
    if not torch.equal(got["attention_mask"], expected["attention_mask"]):
        raise Failed("attention_mask: the image positions and the caption's own mask are not where they belong",
                     "an image token the model may not attend to is of no use to it")
    if not torch.equal(got["labels"], expected["labels"]):
        raise Failed("labels: the image positions must be ignored (-100) and the caption's labels kept as given",
                     "can the model be asked to predict an image token? What label does cross-entropy skip?")


def check_build_vlm_inputs(build_vlm_inputs, rng):
    _verify_vlm_inputs(build_vlm_inputs, 2, 3, 4, 5, rng)
    _verify_vlm_inputs(build_vlm_inputs, int(rng.integers(2, 5)), int(rng.integers(3, 8)), int(rng.integers(4, 9)),
                       int(rng.integers(4, 12)), rng)


def _verify_caption_labels(caption_labels, input_ids, attention_mask) -> None:
    before = input_ids.clone()
    got = caption_labels(input_ids, attention_mask)
    if not torch.equal(input_ids, before):
        raise Failed("input_ids was changed in place; return a new tensor",
                     "which torch methods end in an underscore, and what does indexed assignment write into?")
    expected = before.masked_fill(attention_mask == 0, -100)
    got = torch.as_tensor(got)
    if tuple(got.shape) != tuple(expected.shape):
        raise Failed(f"labels of shape {tuple(got.shape)} for input_ids of shape {tuple(expected.shape)}: one label "
                     "per input position", "the language model shifts labels by one itself; should you?")
    if got.dtype != torch.long:
        raise Failed(f"labels are {got.dtype}: token ids are long integers")
    if not torch.equal(got, expected):
        raise Failed("labels differ: real tokens keep their id, padding positions get -100",
                     "which positions are padding is what the attention mask says; the pad id may also be a "
                     "real token")


def check_caption_labels(caption_labels, rng):
    _verify_caption_labels(caption_labels, torch.tensor([[0, 7, 8, 0], [0, 5, 0, 0], [9, 0, 6, 4]]),
                           torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]))  # id 0 is also a real token
    b, t = int(rng.integers(2, 6)), int(rng.integers(4, 12))
    input_ids = torch.tensor(rng.integers(3, 500, size=(b, t)), dtype=torch.long)
    lengths = rng.integers(1, t + 1, size=b)
    attention_mask = torch.tensor(np.arange(t)[None, :] < lengths[:, None], dtype=torch.long)
    input_ids[attention_mask == 0] = 0  # the pad id ...
    input_ids[:, 0] = 0  # ... is also a real token's id here, so only the mask tells padding apart
    _verify_caption_labels(caption_labels, input_ids, attention_mask)


def _verify_int8(quantize_int8, weight) -> None:
    rows, columns = weight.shape
    got = quantize_int8(weight.clone())
    if not isinstance(got, tuple) or len(got) != 2:
        raise Failed("return (q, scale)")
    q, scale = got
    if not torch.is_tensor(q) or q.dtype != torch.int8 or tuple(q.shape) != tuple(weight.shape):
        raise Failed(f"q should be an int8 tensor of shape {tuple(weight.shape)}, got "
                     f"{getattr(q, 'dtype', type(q).__name__)} {tuple(getattr(q, 'shape', ()))}")
    if int(q.min()) < -127 or int(q.max()) > 127:
        raise Failed("q should stay within -127..127 (symmetric: -128 is left unused)")
    scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
    if scale.numel() != rows:
        raise Failed(f"one scale per output row: {rows} rows, {scale.numel()} scales",
                     "a Linear weight is out x in: which axis is a row?")
    restored = q.float() * scale[:, None]
    if not torch.isfinite(restored).all():
        raise Failed("q * scale is not finite (a zero row?)")
    step = weight.abs().amax(dim=1) / 127
    error = (restored - weight).abs().amax(dim=1)
    if (error > step / 2 + 1e-6 + 1e-4 * step).any():
        raise Failed(f"on a {rows} x {columns} weight, q * scale is off by more than half a step on some row",
                     "take the row [0.5, -2.0, 1.0]: which value must become +-127, and is each value rounded "
                     "to the nearest step?")
    used = (q.abs().amax(dim=1) == 127) | (weight.abs().amax(dim=1) == 0)
    if not bool(used.all()):
        raise Failed("some rows do not use the full range -127..127: their scale is larger than it needs to be",
                     "a row of tiny weights next to a row of large ones: does each get its own step?")


def check_quantize_int8(quantize_int8, rng):
    _verify_int8(quantize_int8, torch.tensor([[0.5, -2.0, 1.0, 0.25, -0.1], [0.0] * 5,
                                              [1e-3, 2e-3, -3e-3, 0.0, 5e-4]]))  # its largest magnitude negative
    rows, columns = int(rng.integers(4, 9)), int(rng.integers(8, 33))
    magnitudes = 10.0 ** rng.uniform(-3, 1, size=(rows, 1))  # rows of very different sizes
    weight = torch.tensor(rng.normal(size=(rows, columns)) * magnitudes, dtype=torch.float32)
    weight[int(rng.integers(rows))] = 0.0
    _verify_int8(quantize_int8, weight)


CHECKS = [
    Check("9.5.1", "build_vlm_inputs", check_build_vlm_inputs,
          "lesson 9.5, step 2 (Build your own: vision encoder + projector + language model)",
          "draw the sequence for one caption of 4 tokens after 3 image tokens: for each of the 7 positions, "
          "what does the model read, may it attend there, and what should it predict?"),
    Check("9.5.2", "caption_labels", check_caption_labels,
          "lesson 9.5, step 2 (Build your own: vision encoder + projector + language model)",
          "which tensor tells a padding position from a real token whose id happens to equal the pad id?"),
    Check("9.5.3", "quantize_int8", check_quantize_int8,
          "lesson 9.5, step 4 (fp32 vs bf16 vs dynamic int8 vs ONNX Runtime, measured here)",
          "quantise the row [0.5, -2.0, 1.0] by hand, then a row of zeros: what scale does each need?"),
]
