"""A captioner's image encoder as an ONNX Runtime session: captioning's ``int8``, and its ``fp32`` on a CPU.

``ort_image_encoder(model, precision)`` exports the image encoder of a ``BlipForConditionalGeneration``
(``vision_model``) or a ``VisionEncoderDecoderModel`` (``encoder``) to ONNX, checks the export against torch,
for int8 quantises its weights (``quantize_dynamic``, as ``onnx_int8`` does for CLIP's towers), and puts an
``OrtImageEncoder`` in the encoder's place, so ``generate`` runs unchanged: the image through ONNX Runtime, the
text decoder in torch at fp32. Files are made once per model (``$CH09_CACHE/onnx-fp32/`` and ``onnx-int8/``,
keyed by ``weights_digest``). fp32 runs here where ``onnx_runtime.fp32_runtime`` says so (real checkpoints on
a CPU; ``CH09_FP32_RUNTIME=torch`` keeps torch).

Why the encoder, and only it, measured on BLIP-base's architecture (random weights, batch 4, 20 greedy tokens,
an AVX-512 VNNI EPYC): the encoder was two thirds of torch fp32's ``generate`` (384 px, 577 tokens through
eager attention); ONNX Runtime ran it 2.32x faster at fp32 (cosine with torch 1.00000) and 4.98x at int8 (min
cosine 0.99987) with every greedy token unchanged (agreement 1.000), while torch's dynamic int8 of the text
decoder changed 85 % of them (agreement 0.150): a decoder's next-token argmax sits on near-ties that per-batch
activation scales move, step after step. The decoder's steps read every weight for a few rows (memory-bound
GEMVs), which bf16 halves and int8 would quarter at that price. The capstone README has the side-by-side run.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import SetupError
from .onnx_int8 import quantise_dynamic_int8
from .onnx_runtime import (
    AGREEMENT_MIN,
    ENV_FP32_RUNTIME,
    OPSET,
    ORT_FP32_METHOD,
    cache_root,
    export_checked,
    published,
    session,
    weights_digest,
)

CAPTION_INT8_METHOD = "ort-dynamic-qint8-image-encoder"  # the decoder stays fp32 (module docstring)
ENCODER_ATTRIBUTES = {"blip": "vision_model", "vision-encoder-decoder": "encoder"}


def encoder_attribute(model) -> str:
    """The attribute holding ``model``'s image encoder."""
    kind = model.config.model_type
    if kind not in ENCODER_ATTRIBUTES:
        raise SetupError(f"a captioner's image encoder on ONNX Runtime is known for BLIP and VisionEncoderDecoder, "
                         f"not {kind!r}: caption with --precision bf16, or fp32 with {ENV_FP32_RUNTIME}=torch")
    return ENCODER_ATTRIBUTES[kind]


def _image_side(model) -> int:
    vision = model.config.vision_config if model.config.model_type == "blip" else model.config.encoder
    return int(vision.image_size)


def _plain(encoder):
    """The encoder with a plain tensor in and out (what the exporter traces)."""
    import torch

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, pixel_values):
            return self.encoder(pixel_values=pixel_values)[0]

    return Plain().eval()


def export_encoder_fp32(model, folder: Path) -> Path:
    """``folder``/encoder.onnx for ``model``'s image encoder (made if missing; atomic), checked against torch
    (cosine >= ``AGREEMENT_MIN`` per image) before it is used."""
    import torch

    target = folder / "encoder.onnx"
    if target.exists():
        return target
    encoder = _plain(getattr(model, encoder_attribute(model)).float().eval())
    side = _image_side(model)
    pixels = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    with published(folder) as work:
        agreement = export_checked(encoder, {"pixel_values": pixels}, work / target.name, "hidden",
                                   {"pixel_values": {0: "batch"}, "hidden": {0: "batch"}})
        if not agreement >= AGREEMENT_MIN:
            raise SetupError(f"the ONNX export of {type(model).__name__}'s image encoder differs from torch "
                             f"(cosine {agreement:.5f} < {AGREEMENT_MIN}); caption on torch: {ENV_FP32_RUNTIME}=torch "
                             "and --precision fp32")
        (work / "about.json").write_text(json.dumps({"method": ORT_FP32_METHOD, "opset": OPSET,
                                                     "class": type(model).__name__,
                                                     "min_cosine_vs_torch": round(agreement, 7)}), encoding="utf-8")
    return target


def export_encoder_int8(model, folder: Path, fp32_folder: Path) -> Path:
    """``folder``/encoder.int8.onnx, quantised from the fp32 export in ``fp32_folder`` (made first if missing)."""
    target = folder / "encoder.int8.onnx"
    if target.exists():
        return target
    source = export_encoder_fp32(model, fp32_folder)
    with published(folder) as work:
        quantise_dynamic_int8(source, work / target.name)
        (work / "about.json").write_text(json.dumps({"method": CAPTION_INT8_METHOD, "opset": OPSET,
                                                     "class": type(model).__name__}), encoding="utf-8")
    return target


def _encoder_module(model, file: Path, threads: int | None):
    """An ``nn.Module`` standing in for the image encoder: the ONNX Runtime session's hidden states as torch."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    class OrtImageEncoder(torch.nn.Module):
        main_input_name = "pixel_values"

        def __init__(self):
            super().__init__()
            self.config = getattr(model, encoder_attribute(model)).config
            self.file, self.session = file, session(file, threads)

        def forward(self, pixel_values, **_):
            pixels = pixel_values.detach().float().cpu().numpy()
            hidden = torch.from_numpy(self.session.run(None, {"pixel_values": pixels})[0])
            return BaseModelOutput(last_hidden_state=hidden)

    return OrtImageEncoder()


def ort_image_encoder(model, precision: str, cache: Path | None = None, threads: int | None = None):
    """``model`` (fp32, eval) with its image encoder replaced, in place, by an ONNX Runtime session at
    ``precision`` (fp32: the same numbers as torch up to rounding, faster; int8: quantised weights)."""
    name = f"{type(model).__name__}-encoder-{weights_digest(model)}"
    fp32_folder = (cache / "fp32" if cache else cache_root("onnx-fp32")) / name
    if precision == "fp32":
        file = export_encoder_fp32(model, fp32_folder)
    elif precision == "int8":
        file = export_encoder_int8(model, (cache or cache_root("onnx-int8")) / name, fp32_folder)
    else:
        raise ValueError(f"an ONNX Runtime image encoder runs fp32 or int8, not {precision!r}")
    module = _encoder_module(model, file, threads)
    setattr(model, encoder_attribute(model), module)
    return model
