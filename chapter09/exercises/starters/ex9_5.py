"""Exercises for 9.5 Lightweight VLMs. Fill in each function, then run

    python -m chapter09.exercises check 9.5

torch throughout. Keep each function's signature.
"""


def build_vlm_inputs(visual_tokens, word_embeddings, attention_mask, labels) -> dict:
    """Exercise 9.5.1. The sequence a VLM's language model reads, and what it is trained to predict.

    ``visual_tokens``: b x n x h (the projector's output for the image), ``word_embeddings``: b x t x h
    (the caption's token embeddings), ``attention_mask``: b x t (1 = real token), ``labels``: b x t.
    Return {"inputs_embeds": b x (n+t) x h, "attention_mask": b x (n+t), "labels": b x (n+t)} with the
    image first. Every image position is attended to, and none is a prediction target (label -100, the
    value cross-entropy ignores). Each output keeps the dtype of the input it extends.
    """
    raise NotImplementedError


def caption_labels(input_ids, attention_mask):
    """Exercise 9.5.2. Training labels for padded captions: the token ids, with -100 wherever the
    attention mask is 0 (padding is not something to predict): a long tensor of the same shape. Do not
    change ``input_ids``."""
    raise NotImplementedError


def quantize_int8(weight):
    """Exercise 9.5.3. Symmetric int8 quantisation of a Linear layer's weight (out x in), one scale per
    output row, as dynamic int8 does for weights.

    Return (q, scale): q an int8 tensor of the weight's shape with values in -127..127, scale a float
    tensor of shape (out,), such that q * scale[:, None] is the weight rounded to the nearest step.
    A row of zeros must not give NaN.
    """
    raise NotImplementedError
