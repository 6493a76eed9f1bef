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
        raise Failed("9.5.dict")
    expected = _what_tiny_vlm_feeds_its_lm(visual, words, attention_mask, labels)
    for key in ("inputs_embeds", "attention_mask", "labels"):
        if tuple(got[key].shape) != tuple(expected[key].shape):
            raise Failed("9.5.shape", "9.5.shape.hint", key=key, got=tuple(got[key].shape), b=b, n=n, t=t, h=h,
                         expected=tuple(expected[key].shape))
        if got[key].dtype != expected[key].dtype:
            raise Failed("9.5.dtype", "9.5.dtype.hint", key=key, got=got[key].dtype, expected=expected[key].dtype)
    close(got["inputs_embeds"], expected["inputs_embeds"], "9.5.inputs_embeds")
    if not torch.equal(got["attention_mask"], expected["attention_mask"]):
        raise Failed("9.5.mask", "9.5.mask.hint")
    if not torch.equal(got["labels"], expected["labels"]):
        raise Failed("9.5.labels", "9.5.labels.hint")


def check_build_vlm_inputs(build_vlm_inputs, rng):
    _verify_vlm_inputs(build_vlm_inputs, 2, 3, 4, 5, rng)
    _verify_vlm_inputs(build_vlm_inputs, int(rng.integers(2, 5)), int(rng.integers(3, 8)), int(rng.integers(4, 9)),
                       int(rng.integers(4, 12)), rng)


def _verify_caption_labels(caption_labels, input_ids, attention_mask) -> None:
    before = input_ids.clone()
    got = caption_labels(input_ids, attention_mask)
    if not torch.equal(input_ids, before):
        raise Failed("9.5.in_place", "9.5.in_place.hint")
    expected = before.masked_fill(attention_mask == 0, -100)
    got = torch.as_tensor(got)
    if tuple(got.shape) != tuple(expected.shape):
        raise Failed("9.5.label_shape", "9.5.label_shape.hint", got=tuple(got.shape), expected=tuple(expected.shape))
    if got.dtype != torch.long:
        raise Failed("9.5.label_dtype", dtype=got.dtype)
    if not torch.equal(got, expected):
        raise Failed("9.5.labels_differ", "9.5.labels_differ.hint")


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
        raise Failed("9.5.q_scale")
    q, scale = got
    if not torch.is_tensor(q) or q.dtype != torch.int8 or tuple(q.shape) != tuple(weight.shape):
        raise Failed("9.5.q_type", shape=tuple(weight.shape), dtype=getattr(q, "dtype", type(q).__name__),
                     got=tuple(getattr(q, "shape", ())))
    if int(q.min()) < -127 or int(q.max()) > 127:
        raise Failed("9.5.q_range")
    scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
    if scale.numel() != rows:
        raise Failed("9.5.scale_count", "9.5.scale_count.hint", rows=rows, scales=scale.numel())
    restored = q.float() * scale[:, None]
    if not torch.isfinite(restored).all():
        raise Failed("9.5.not_finite")
    step = weight.abs().amax(dim=1) / 127
    error = (restored - weight).abs().amax(dim=1)
    if (error > step / 2 + 1e-6 + 1e-4 * step).any():
        raise Failed("9.5.half_step", "9.5.half_step.hint", rows=rows, columns=columns)
    used = (q.abs().amax(dim=1) == 127) | (weight.abs().amax(dim=1) == 0)
    if not bool(used.all()):
        raise Failed("9.5.full_range", "9.5.full_range.hint")


def check_quantize_int8(quantize_int8, rng):
    _verify_int8(quantize_int8, torch.tensor([[0.5, -2.0, 1.0, 0.25, -0.1], [0.0] * 5,
                                              [1e-3, 2e-3, -3e-3, 0.0, 5e-4]]))  # its largest magnitude negative
    rows, columns = int(rng.integers(4, 9)), int(rng.integers(8, 33))
    magnitudes = 10.0 ** rng.uniform(-3, 1, size=(rows, 1))  # rows of very different sizes
    weight = torch.tensor(rng.normal(size=(rows, columns)) * magnitudes, dtype=torch.float32)
    weight[int(rng.integers(rows))] = 0.0
    _verify_int8(quantize_int8, weight)


CHECKS = [
    Check("9.5.1", "build_vlm_inputs", check_build_vlm_inputs, "9.5/2", "9.5.1.hint"),
    Check("9.5.2", "caption_labels", check_caption_labels, "9.5/2", "9.5.2.hint"),
    Check("9.5.3", "quantize_int8", check_quantize_int8, "9.5/4", "9.5.3.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    "9.5.dict": ('return a dict with "inputs_embeds", "attention_mask" and "labels"',
                 '请返回含 "inputs_embeds"、"attention_mask" 和 "labels" 的 dict'),
    "9.5.shape": ("{key}: shape {got} for b={b}, n={n} image tokens, t={t}, h={h}; expected {expected}",
                  "{key}：b={b}、n={n} 个图像词元、t={t}、h={h} 时形状为 {got}，应为 {expected}"),
    "9.5.shape.hint": ("which axis is the sequence, the one that grows when image tokens are put in front?",
                       "哪个轴是序列轴，也就是把图像词元放到前面后会变长的那个轴？"),
    "9.5.dtype": ("{key}: dtype {got}, expected {expected} (as given)", "{key}：dtype 是 {got}，应与输入一样是 {expected}"),
    "9.5.dtype.hint": ("torch.ones and torch.zeros make float32 unless told otherwise; torch.cat of a float and a "
                       "long tensor gives float",
                       "不指定 dtype 时 torch.ones 和 torch.zeros 生成 float32；把浮点张量和 long 张量 torch.cat "
                       "到一起，结果是浮点"),
    "9.5.inputs_embeds": ("inputs_embeds (which comes first, image or words?)", "inputs_embeds（图像在前还是文字在前？）"),
    "9.5.mask": ("attention_mask: the image positions and the caption's own mask are not where they belong",
                 "attention_mask：图像位置和描述文字自己的掩码没有放对地方"),
    "9.5.mask.hint": ("an image token the model may not attend to is of no use to it",
                      "模型不能关注的图像词元，对它毫无用处"),
    "9.5.labels": ("labels: the image positions must be ignored (-100) and the caption's labels kept as given",
                   "labels：图像位置必须忽略（-100），描述文字的标签原样保留"),
    "9.5.labels.hint": ("can the model be asked to predict an image token? What label does cross-entropy skip?",
                        "能要求模型预测图像词元吗？交叉熵会跳过哪个标签值？"),
    "9.5.in_place": ("input_ids was changed in place; return a new tensor", "input_ids 被原地修改了；请返回一个新张量"),
    "9.5.in_place.hint": ("which torch methods end in an underscore, and what does indexed assignment write into?",
                          "哪些 torch 方法以下划线结尾？按索引赋值写进的是哪个张量？"),
    "9.5.label_shape": ("labels of shape {got} for input_ids of shape {expected}: one label per input position",
                        "input_ids 的形状是 {expected}，labels 却是 {got}：每个输入位置对应一个标签"),
    "9.5.label_shape.hint": ("the language model shifts labels by one itself; should you?",
                             "语言模型自己会把标签错开一位；你还要再错开吗？"),
    "9.5.label_dtype": ("labels are {dtype}: token ids are long integers", "labels 的类型是 {dtype}：词元 id 应为 long 整数"),
    "9.5.labels_differ": ("labels differ: real tokens keep their id, padding positions get -100",
                          "labels 不对：真实词元保留原 id，填充位置设为 -100"),
    "9.5.labels_differ.hint": ("which positions are padding is what the attention mask says; the pad id may also be "
                               "a real token",
                               "哪些位置是填充，要看注意力掩码；填充 id 也可能是某个真实词元"),
    "9.5.q_scale": ("return (q, scale)", "请返回 (q, scale)"),
    "9.5.q_type": ("q should be an int8 tensor of shape {shape}, got {dtype} {got}",
                   "q 应是形状为 {shape} 的 int8 张量，得到的是 {dtype} {got}"),
    "9.5.q_range": ("q should stay within -127..127 (symmetric: -128 is left unused)",
                    "q 应在 -127..127 之内（对称量化：不用 -128）"),
    "9.5.scale_count": ("one scale per output row: {rows} rows, {scales} scales",
                        "每个输出行一个 scale：共 {rows} 行，却有 {scales} 个 scale"),
    "9.5.scale_count.hint": ("a Linear weight is out x in: which axis is a row?", "Linear 的权重是 out x in：哪个轴是行？"),
    "9.5.not_finite": ("q * scale is not finite (a zero row?)", "q * scale 出现了非有限值（有全零行？）"),
    "9.5.half_step": ("on a {rows} x {columns} weight, q * scale is off by more than half a step on some row",
                      "在 {rows} x {columns} 的权重上，某一行的 q * scale 偏差超过了半个量化步长"),
    "9.5.half_step.hint": ("take the row [0.5, -2.0, 1.0]: which value must become +-127, and is each value rounded "
                           "to the nearest step?",
                           "以 [0.5, -2.0, 1.0] 这一行为例：哪个值必须变成 +-127？每个值都四舍五入到最近的步长了吗？"),
    "9.5.full_range": ("some rows do not use the full range -127..127: their scale is larger than it needs to be",
                       "有些行没有用满 -127..127 的范围：它们的 scale 取大了"),
    "9.5.full_range.hint": ("a row of tiny weights next to a row of large ones: does each get its own step?",
                            "一行权重很小，旁边一行很大：它们各有自己的步长吗？"),
    "9.5.1.hint": ("draw the sequence for one caption of 4 tokens after 3 image tokens: for each of the 7 positions, "
                   "what does the model read, may it attend there, and what should it predict?",
                   "画出 3 个图像词元后接 4 个词元的描述文字组成的序列：这 7 个位置上，模型各读到什么？能否关注？"
                   "应该预测什么？"),
    "9.5.2.hint": ("which tensor tells a padding position from a real token whose id happens to equal the pad id?",
                   "一个真实词元的 id 恰好等于填充 id 时，靠哪个张量把它和填充位置区分开？"),
    "9.5.3.hint": ("quantise the row [0.5, -2.0, 1.0] by hand, then a row of zeros: what scale does each need?",
                   "手工量化 [0.5, -2.0, 1.0] 这一行，再量化一行全零：它们各需要多大的 scale？"),
}
