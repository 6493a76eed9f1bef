"""``onnx_runtime.weights_digest``: which ONNX exports a model shares. Remembered per model object, but never
past a change of its weights (a training step, ``load_state_dict``), and equal for equal weights."""
from __future__ import annotations

import pytest
import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

from chapter09.onnx_runtime import weights_digest

pytestmark = pytest.mark.unit


def _tiny(seed: int) -> CLIPModel:
    config = CLIPConfig(text_config=CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                   num_attention_heads=2, vocab_size=100, bos_token_id=0,
                                                   eos_token_id=1, pad_token_id=1),
                        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                       num_attention_heads=2, image_size=32, patch_size=16),
                        projection_dim=16)
    torch.manual_seed(seed)
    return CLIPModel(config)


def test_the_digest_follows_the_weights_not_the_object():
    a, twin, other = _tiny(0), _tiny(0), _tiny(1)
    first = weights_digest(a)
    assert weights_digest(a) == first == weights_digest(twin)  # asked again, and the same weights elsewhere
    assert weights_digest(other) != first
    with torch.no_grad():
        next(a.parameters()).add_(1.0)  # an in-place step: the remembered digest must not be served
    stepped = weights_digest(a)
    assert stepped != first
    twin.load_state_dict(a.state_dict())
    assert weights_digest(twin) == stepped
    a.config.projection_dim = 8  # another architecture is another digest, whatever the weights
    assert weights_digest(a) != stepped
