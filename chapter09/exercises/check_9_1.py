"""Checks for the 9.1 exercises: unit vectors, the cosine matrix, padding, pixel normalisation."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed, close, msg

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's processor (preprocessor_config.json)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ----------------------------------------------------------------------------- 9.1.1
def _verify_unit_rows(l2_normalize, vectors: np.ndarray) -> None:
    before = vectors.copy()
    got = l2_normalize(vectors)
    if not np.array_equal(vectors, before):
        raise Failed("9.1.input_changed", "9.1.input_changed.hint")
    got = np.asarray(got, dtype=np.float64)
    if got.shape != vectors.shape:
        raise Failed("9.1.unit_shape", got=got.shape, shape=vectors.shape)
    if np.isnan(got).any():
        raise Failed("9.1.zero_row_nan", "9.1.zero_row_nan.hint")
    lengths = np.linalg.norm(vectors.astype(np.float64), axis=1)
    nonzero = lengths > 0
    close(np.linalg.norm(got[nonzero], axis=1), np.ones(nonzero.sum()),
          msg("9.1.row_lengths", n=vectors.shape[0], d=vectors.shape[1]))
    close(got[~nonzero], np.zeros_like(got[~nonzero]), "9.1.zero_row")
    cosine = (got[nonzero] * vectors[nonzero]).sum(axis=1) / lengths[nonzero]
    close(cosine, np.ones(nonzero.sum()), "9.1.directions")


def check_l2_normalize(l2_normalize, rng):
    _verify_unit_rows(l2_normalize, np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]]))  # 2 x 3: rows, not columns
    _verify_unit_rows(l2_normalize, np.array([[3, 4], [0, 0], [1, 1]]))  # integers: a new float array
    _verify_unit_rows(l2_normalize, np.array([[1e-3, 0.0, 2e-3, 0.0], [0.0, 2e3, 0.0, 1e3]]))  # tiny and huge
    n, d = int(rng.integers(3, 9)), int(rng.integers(4, 40))
    vectors = rng.normal(scale=rng.uniform(0.1, 20), size=(n, d))
    vectors[int(rng.integers(n))] = 0.0
    _verify_unit_rows(l2_normalize, vectors)


# ----------------------------------------------------------------------------- 9.1.2
def _verify_cosines(cosine_similarity_matrix, images, texts) -> None:
    expected = (images / np.linalg.norm(images, axis=1, keepdims=True)) @ \
        (texts / np.linalg.norm(texts, axis=1, keepdims=True)).T
    got = cosine_similarity_matrix(images.copy(), texts.copy())
    close(got, expected, msg("9.1.cosine_matrix", n=len(images), m=len(texts)))


def check_cosine_matrix(cosine_similarity_matrix, rng):
    _verify_cosines(cosine_similarity_matrix, np.array([[3.0, 4.0, 0.0], [0.0, 0.5, 0.0]]),
                    np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]]))
    n, m, d = int(rng.integers(2, 6)), int(rng.integers(6, 10)), int(rng.integers(8, 33))  # n != m on purpose
    images = rng.normal(size=(n, d)) * rng.uniform(0.5, 30, size=(n, 1))
    texts = rng.normal(size=(m, d)) * rng.uniform(0.5, 30, size=(m, 1))
    _verify_cosines(cosine_similarity_matrix, images, texts)


# ----------------------------------------------------------------------------- 9.1.3
def _verify_padding(pad_batch, sequences: list[list[int]], pad_id: int) -> None:
    got = pad_batch([list(s) for s in sequences], pad_id)
    if not isinstance(got, tuple) or len(got) != 2:
        raise Failed("9.1.two_arrays")
    ids, mask = (np.asarray(x) for x in got)
    shape = (len(sequences), max(len(s) for s in sequences))
    if ids.shape != shape or mask.shape != shape:
        raise Failed("9.1.pad_shapes", "9.1.pad_shapes.hint", ids=ids.shape, mask=mask.shape, b=len(sequences),
                     lengths=[len(s) for s in sequences])
    for name, array in (("input_ids", ids), ("attention_mask", mask)):
        if array.dtype != np.int64:
            raise Failed("9.1.pad_dtype", "9.1.pad_dtype.hint", name=name, dtype=array.dtype)
    for row, sequence in enumerate(sequences):
        if list(ids[row, :len(sequence)]) != sequence:
            raise Failed("9.1.pad_tokens_first", row=row)
        if (ids[row, len(sequence):] != pad_id).any():
            raise Failed("9.1.pad_id", row=row, pad_id=pad_id)
        if list(mask[row]) != [1] * len(sequence) + [0] * (shape[1] - len(sequence)):
            raise Failed("9.1.pad_mask", row=row)


def check_pad_batch(pad_batch, rng):
    _verify_padding(pad_batch, [[9], [5, 6, 7], [8, 5]], pad_id=1)  # the largest list is not the longest
    pad_id = int(rng.integers(0, 5))
    lengths = [int(x) for x in rng.integers(1, 12, size=int(rng.integers(3, 7)))]
    lengths[int(rng.integers(len(lengths)))] = max(lengths) + 2  # one clear longest sequence
    _verify_padding(pad_batch, [[int(t) for t in rng.integers(5, 1000, size=n)] for n in lengths], pad_id)


# ----------------------------------------------------------------------------- 9.1.4
def _verify_pixels(normalize_pixels, image: np.ndarray) -> None:
    height, width = image.shape[:2]
    got = np.asarray(normalize_pixels(image.copy(), CLIP_MEAN, CLIP_STD))
    if got.shape != (3, height, width):
        raise Failed("9.1.pixel_shape", "9.1.pixel_shape.hint", got=got.shape, height=height, width=width)
    if got.dtype != np.float32:
        raise Failed("9.1.pixel_dtype", "9.1.pixel_dtype.hint", dtype=got.dtype)
    expected = (image.astype(np.float64).transpose(2, 0, 1) / 255.0 - np.reshape(CLIP_MEAN, (3, 1, 1))) / \
        np.reshape(CLIP_STD, (3, 1, 1))
    close(got, expected, msg("9.1.pixels", height=height, width=width), atol=1e-4, hint="9.1.pixels.hint")


def check_normalize_pixels(normalize_pixels, rng):
    fixed = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[0, 0, 0], [255, 255, 255], [128, 64, 32]]],
                     dtype=np.uint8)  # 2 x 3 x 3: red, green, blue, black, white, brown
    _verify_pixels(normalize_pixels, fixed)
    height, width = int(rng.integers(5, 17)), int(rng.integers(5, 17))
    while height == width:  # not square: layouts cannot hide
        width = int(rng.integers(5, 17))
    _verify_pixels(normalize_pixels, rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


CHECKS = [
    Check("9.1.1", "l2_normalize", check_l2_normalize, "9.1/3", "9.1.1.hint"),
    Check("9.1.2", "cosine_similarity_matrix", check_cosine_matrix, "9.1/4", "9.1.2.hint"),
    Check("9.1.3", "pad_batch", check_pad_batch, "9.1/1", "9.1.3.hint"),
    Check("9.1.4", "normalize_pixels", check_normalize_pixels, "9.1/2", "9.1.4.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    "9.1.input_changed": ("your function changed the input array", "你的函数改动了传入的数组"),
    "9.1.input_changed.hint": ("the caller still needs its own vectors: which of your operations writes into the "
                               "array it was given?",
                               "调用方还要用它自己的向量：你的哪一步运算直接写进了传入的数组？"),
    "9.1.unit_shape": ("shape {got} for a {shape} input: the output should have the input's shape",
                       "输入形状为 {shape}，输出却是 {got}：输出应与输入同形状"),
    "9.1.zero_row_nan": ("a row of zeros came back as NaN", "全零行变成了 NaN"),
    "9.1.zero_row_nan.hint": ("what is 0 / 0 in NumPy, and what could a zero row be divided by instead so that it "
                              "stays zero?",
                              "在 NumPy 里 0 / 0 得多少？全零行改除以什么，才能仍然是全零？"),
    "9.1.row_lengths": ("lengths of the rows of a {n} x {d} input after normalising",
                        "{n} x {d} 输入归一化后各行的长度"),
    "9.1.zero_row": ("the zero row", "全零行"),
    "9.1.directions": ("directions (each row should point where the input row points)",
                       "方向（每一行都应与对应的输入行同向）"),
    "9.1.cosine_matrix": ("cosine matrix of {n} images x {m} texts", "{n} 张图像 x {m} 条文本的余弦矩阵"),
    "9.1.two_arrays": ("return two arrays: (input_ids, attention_mask)", "请返回两个数组：(input_ids, attention_mask)"),
    "9.1.pad_shapes": ("shapes {ids} and {mask} for {b} sequences of lengths {lengths}: both should be b x L, "
                       "L the longest length",
                       "{b} 个序列（长度 {lengths}）得到的形状是 {ids} 和 {mask}：两者都应是 b x L，L 为最长序列的长度"),
    "9.1.pad_shapes.hint": ("what does Python's max() return for a list of lists, and is that what you want?",
                            "对一个由列表组成的列表，Python 的 max() 返回什么？那是你要的吗？"),
    "9.1.pad_dtype": ("{name} is {dtype}; the docstring asks for int64 (what the model's embedding lookup takes)",
                      "{name} 的 dtype 是 {dtype}；文档字符串要求 int64（模型的嵌入查表只收这种类型）"),
    "9.1.pad_dtype.hint": ("which dtype do np.zeros and np.ones make unless told otherwise?",
                           "不指定 dtype 时，np.zeros 和 np.ones 生成的是什么类型？"),
    "9.1.pad_tokens_first": ("row {row}: the real tokens should come first, in order (pad on the right)",
                             "第 {row} 行：真实词元应按原顺序排在前面（在右侧填充）"),
    "9.1.pad_id": ("row {row}: the positions after the sequence should hold pad_id (here {pad_id})",
                   "第 {row} 行：序列之后的位置应填 pad_id（这里是 {pad_id}）"),
    "9.1.pad_mask": ("row {row}: the attention mask should be 1 on real tokens and 0 on padding",
                     "第 {row} 行：注意力掩码在真实词元处应为 1，在填充处应为 0"),
    "9.1.pixel_shape": ("shape {got} for a {height} x {width} image, expected (3, {height}, {width}): channels first",
                        "{height} x {width} 的图像得到形状 {got}，应为 (3, {height}, {width})：通道在前"),
    "9.1.pixel_shape.hint": ("which axis of the input holds the channels, and where must it go?",
                             "输入的哪个轴是通道？它应该挪到哪里？"),
    "9.1.pixel_dtype": ("dtype {dtype}; the docstring asks for float32 (what the model's weights are)",
                        "dtype 是 {dtype}；文档字符串要求 float32（与模型权重一致）"),
    "9.1.pixel_dtype.hint": ("dividing a uint8 array by a Python float gives which dtype?",
                             "uint8 数组除以一个 Python 浮点数，得到的是什么 dtype？"),
    "9.1.pixels": ("normalised pixels of a {height} x {width} image", "{height} x {width} 图像归一化后的像素"),
    "9.1.pixels.hint": ("print one pixel of the input and of your output, and redo the three steps for it by hand: "
                        "is each value where it was (reshape and transpose differ), and is the order of the steps "
                        "right?",
                        "把输入和输出里的同一个像素打印出来，再手算一遍那三步：每个值还在原来的位置吗（reshape 和 "
                        "transpose 不是一回事）？三步的顺序对吗？"),
    "9.1.1.hint": ("a row's length is a norm taken along one axis only: which axis runs along a row? Try your "
                   "function on a 2 x 3 array by hand",
                   "一行的长度是只沿一个轴求的范数：沿着一行排开的是哪个轴？拿一个 2 x 3 的数组手算一遍，对照你的函数"),
    "9.1.2.hint": ("cosine similarity does not change when a vector gets longer: does your result? Scale one input "
                   "row by 10 and compare",
                   "向量变长，余弦相似度不变：你的结果变不变？把某一行输入放大 10 倍比一比"),
    "9.1.3.hint": ("check your output on [[9], [5, 6, 7]] with pad_id 1 by hand: its shape, both dtypes, where "
                   "the 1s of the mask sit",
                   "用 [[9], [5, 6, 7]]、pad_id 为 1 手工核对你的输出：形状、两个 dtype、掩码里的 1 落在哪里"),
    "9.1.4.hint": ("the mean and std are given for values between 0 and 1: what range do your values have when "
                   "you subtract them, and what dtype is the result?",
                   "给出的 mean 和 std 针对的是 0 到 1 之间的值：你减去它们时，数值在什么范围？结果又是什么 dtype？"),
}
