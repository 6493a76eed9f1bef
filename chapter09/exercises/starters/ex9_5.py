"""Exercises for 9.5 Lightweight VLMs. Fill in each function, then run

    python -m chapter09.exercises check 9.5

torch throughout. Keep each function's signature.

9.5 轻量级视觉语言模型练习。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.5 --lang zh

全部用 torch。不要改动函数签名。
"""


def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels) -> dict:
    """Exercise 9.5.1. The sequence a VLM's language model reads, and what it is trained to predict.

    ``visual_tokens``: b x n x h (the projector's output for the image), ``word_embeddings``: b x t x h
    (the caption's token embeddings), ``attention_mask``: b x t (1 = real token), ``labels``: b x t.
    Return {"inputs_embeds": b x (n+t) x h, "attention_mask": b x (n+t), "labels": b x (n+t)} with the
    image first. Every image position is attended to, and none is a prediction target (label -100, the
    value cross-entropy ignores). Each output keeps the dtype of the input it extends.

    练习 9.5.1：视觉语言模型中语言模型读入的序列，以及训练时要它预测的目标。

    ``visual_tokens``：b x n x h（投影层对图像的输出），``word_embeddings``：b x t x h（描述文字的词元嵌入），
    ``attention_mask``：b x t（1 表示真实词元），``labels``：b x t。
    返回 {"inputs_embeds": b x (n+t) x h, "attention_mask": b x (n+t), "labels": b x (n+t)}，图像在前。
    每个图像位置都要被关注，但都不作为预测目标（标签为 -100，交叉熵会忽略这个值）。
    每个输出的 dtype 与它所扩展的输入相同。
    """
    raise NotImplementedError


def caption_labels(input_ids, attention_mask):
    """Exercise 9.5.2. Training labels for padded captions: the token ids, with -100 wherever the
    attention mask is 0 (padding is not something to predict): a long tensor of the same shape. Do not
    change ``input_ids``.

    练习 9.5.2：为填充过的描述文字生成训练标签：取词元 id，注意力掩码为 0 的位置改成 -100（填充不是
    要预测的内容），得到同形状的 long 张量。不要改动 ``input_ids``。
    """
    raise NotImplementedError


def quantize_int8(weight):
    """Exercise 9.5.3. Symmetric int8 quantisation of a Linear layer's weight (out x in), one scale per
    output row, as dynamic int8 does for weights.

    Return (q, scale): q an int8 tensor of the weight's shape with values in -127..127, scale a float
    tensor of shape (out,), such that q * scale[:, None] is the weight rounded to the nearest step.
    A row of zeros must not give NaN.

    练习 9.5.3：对 Linear 层的权重（out x in）做对称 int8 量化，每个输出行一个 scale，
    与动态 int8 量化处理权重的方式相同。

    返回 (q, scale)：q 是与权重同形状、取值在 -127..127 的 int8 张量，scale 是形状为 (out,) 的浮点张量，
    使 q * scale[:, None] 等于把权重四舍五入到最近的量化步长。全零行不能得到 NaN。
    """
    raise NotImplementedError
