"""What transformers' models hand back, read one way whichever transformers version is installed.

Below ``clip`` and ``onnx_int8``, which both read CLIP's embeddings (and above nothing).
"""
from __future__ import annotations


def feature_tensor(output):
    """get_*_features return a tensor in transformers 4 and an output object in 5: take the embedding."""
    return output if hasattr(output, "dim") else output.pooler_output
