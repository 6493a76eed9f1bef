"""Numeric precision of a CLIP encoder: the vocabulary, and the one place a ``Settings`` becomes a numeric format.

* ``fp32``  the reference: every other precision is compared with it.
* ``bf16``  weights and activations in bfloat16 (fast on CPUs with AVX-512 BF16 or AMX, and on GPUs); CLIP's
            towers run it on OpenVINO there (``chapter09.openvino_runtime``), elsewhere on torch.
* ``int8``  dynamic quantisation of both towers by ONNX Runtime (``chapter09.onnx_int8``): int8
            weights for every Linear layer, the patch-embedding convolution and the embedding
            tables, activations quantised per batch on the fly (VNNI kernels on x86); layer norms,
            softmax and the attention products (activation x activation) stay fp32. CPU only.

``TORCH_INT8`` names the other int8 this chapter measures, torch's own ``quantize_dynamic`` of every
``nn.Linear`` (lesson 9.5's variant, ``measure.torch_int8``); the capstone's encoders use ONNX
Runtime's, and ``onnx_int8`` says why.

``numeric_format(settings, device)`` decides, for the encoder, the indexer and the query side alike,
which dtype the weights load in and which precision the encoder then runs at. A precision changes
the vectors a little, so an index records ``precision_identity`` with its encoder: opening it at
another precision re-encodes rather than mixing vectors of two kinds. How little, and which precision
``auto`` takes: ``fidelity``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .errors import UsageError
from .onnx_int8 import INT8_METHOD, Int8Clip
from .onnx_runtime import ORT_FP32_METHOD, OrtClip, fp32_runtime
from .openvino_runtime import OV_BF16_METHOD, OvBf16Clip, bf16_runtime

PRECISIONS = ("fp32", "bf16", "int8")
PRECISION_CHOICES = ("auto", *PRECISIONS)
TORCH_INT8 = "int8-dynamic"


def check_precision(precision: str, allow_auto: bool = False) -> str:
    allowed = PRECISION_CHOICES if allow_auto else PRECISIONS
    if precision not in allowed:
        raise ValueError(f"precision must be one of {', '.join(allowed)}, not {precision!r}")
    return precision


def precision_of_dtype(dtype) -> str:
    """torch dtype -> the name an index records (``fp16`` exists for CUDA runs that pick it by --dtype)."""
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def load_dtype(precision: str) -> str:
    """The dtype to load weights in before ``apply_precision`` (int8 quantises fp32 weights)."""
    return "bfloat16" if check_precision(precision) == "bf16" else "float32"


def input_dtype(precision: str, runtime: str = "torch"):
    """The dtype inputs (pixel values) must have for a model at ``precision`` on ``runtime`` (another runtime than
    torch takes fp32 inputs, whatever it computes in)."""
    import torch

    return torch.bfloat16 if check_precision(precision) == "bf16" and runtime == "torch" else torch.float32


@dataclass(frozen=True)
class NumericFormat:
    """How an encoder's weights load and what it runs at, decided once from ``Settings`` and the device."""

    load_dtype: object  # the torch dtype ``from_pretrained`` loads the weights in
    precision: str  # fp32 | bf16 | int8 (or fp16, when --dtype picks it on CUDA)
    convert: bool  # True: an explicit precision, so ``apply_precision`` runs after loading; False: the dtype decides


def numeric_format(settings, device: str) -> NumericFormat:
    """``settings.precision`` (fp32 | bf16 | int8) wins over ``settings.dtype``; None or auto: the dtype decides
    (``models.pick_dtype``: bf16 on CPUs with native bf16, fp16 on CUDA, else fp32)."""
    from .models import pick_dtype

    precision = settings.precision if settings.precision not in (None, "auto") else None
    if precision:
        return NumericFormat(pick_dtype(device, load_dtype(precision)), precision, True)
    dtype = pick_dtype(device, settings.dtype)
    return NumericFormat(dtype, precision_of_dtype(dtype), False)


def unavailable_reason(precision: str, device: str = "cpu") -> str | None:
    """Why ``precision`` cannot run (or cannot be fast) on ``device``; None when it can. int8 runs on ONNX Runtime
    (CLIP's towers, ``Int8Clip``; a captioner's image encoder, ``onnx_captioner``)."""
    from .cpu import has_native_bf16

    check_precision(precision)
    if precision == "int8":
        if device != "cpu":
            return f"int8 dynamic quantisation runs on the CPU only (device {device})"
        if importlib.util.find_spec("onnxruntime") is None:
            return "int8 needs onnxruntime (pip install -r requirements.txt)"
    if precision == "bf16" and device == "cpu" and not has_native_bf16():
        return "this CPU has no native bf16 (AVX-512 BF16 / AMX): bf16 would be slower than fp32"
    return None


def runtime_of(precision: str, device: str = "cpu", is_toy: bool = False, fp32_on: str | None = None,
               bf16_on: str | None = None) -> str:
    """Where a model at ``precision`` runs (its image encoder, for a captioner): int8 on ONNX Runtime, fp16 on
    torch, fp32 on ``fp32_on`` when given, else where ``onnx_runtime.fp32_runtime`` says; bf16 on ``bf16_on`` when
    given (a captioner's is torch), else where ``openvino_runtime.bf16_runtime`` says."""
    if precision == "fp32":
        return fp32_on or fp32_runtime(device, is_toy)
    if precision == "bf16":
        return bf16_on or bf16_runtime(device, is_toy)
    return "onnxruntime" if precision == "int8" else "torch"


def apply_precision(model, precision: str, device: str = "cpu", runtime: str = "torch"):
    """``model`` (loaded at ``load_dtype(precision)`` or fp32) converted to ``precision``, in place where possible.

    Returns the model to use: for int8 an ``onnx_int8.Int8Clip`` (ONNX Runtime sessions with the same
    ``get_image_features`` / ``get_text_features``); fp32 with ``runtime`` "onnxruntime" an
    ``onnx_runtime.OrtClip`` (``onnx_runtime.fp32_runtime`` decides where it runs). bf16 on a CPU without native support and int8
    on a GPU are left out by ``auto`` (``unavailable_reason``); asked for explicitly, bf16 runs anyway
    (slowly) and int8 on a GPU raises.
    """
    import torch

    check_precision(precision)
    if precision == "bf16" and runtime == "torch":
        return model.to(torch.bfloat16).eval()
    model = model.float().eval()  # every other runtime starts from the fp32 weights (their one export)
    if precision == "bf16":
        return OvBf16Clip(model)
    if precision == "fp32":
        return OrtClip(model) if runtime == "onnxruntime" else model
    if device != "cpu":
        raise UsageError(f"int8 (dynamic quantisation) runs on the CPU only, not on {device}; use bf16 there")
    return Int8Clip(model)


def precision_identity(precision: str, runtime: str = "torch") -> str:
    """What an index stores beside the model location: equal identities mean interchangeable vectors.

    The runtime is part of it where it changes the vectors' rounding: fp32 on ONNX Runtime is ``fp32:ort``
    (torch's is plain ``fp32``), int8 names its method (always ONNX Runtime)."""
    if precision == "int8":
        return f"int8:{INT8_METHOD}"
    if precision == "fp32" and runtime == "onnxruntime":
        return f"fp32:{ORT_FP32_METHOD}"
    if precision == "bf16" and runtime == "openvino":
        return f"bf16:{OV_BF16_METHOD}"
    return precision
