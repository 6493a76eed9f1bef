"""CLIP's two towers as ONNX Runtime int8 sessions (dynamic quantisation), standing in for the torch model.

``Int8Clip(model)`` exports the image tower (``get_image_features``) and the text tower
(``get_text_features``, any batch and sequence length) to ONNX, quantises their weights (every
MatMul with a weight, the patch-embedding convolution, the embedding tables) to int8 with
``onnxruntime.quantization.quantize_dynamic`` (activations quantised per batch on the fly; VNNI
kernels on x86), and answers ``get_image_features`` / ``get_text_features`` with
torch tensors, so ``ClipEncoder`` and the indexer use it unchanged. Conversion costs seconds
once per model; the files are cached under ``$CH09_CACHE`` (default ``~/.cache/chapter09``)
keyed by the model's configuration and a digest of its weights, so a fine-tuned checkpoint
gets its own files.

Why ONNX Runtime rather than torch's ``quantize_dynamic`` (``measure.torch_int8``): measured side by
side inside the indexer, ONNX Runtime's int8 encoded as many or more images per second than torch's in
every paired run, answered a text query faster, and varied less from run to run; torch's int8 alone was
sometimes the faster of the two (``bench`` prints it beside the others; the capstone README has the
figures). The price is a one-time conversion (seconds; cached). Intra-op threads do not spin between
calls (``allow_spinning`` 0): spinning bought the model alone a few per cent and the indexer nothing,
while taking cycles from the decoding processes.
"""
from __future__ import annotations

import json
from pathlib import Path

from .onnx_runtime import OPSET, OrtSessions, cache_root, export_fp32, fp32_folder, published, weights_digest

INT8_METHOD = "ort-dynamic-qint8-matmul"  # part of an index's encoder identity: another int8 method gives other vectors


def quantise_dynamic_int8(source: Path, target: Path) -> None:
    """``target``: ``source`` with int8 weights (``quantize_dynamic``, QInt8), without the quantiser's advice to
    pre-process, which it logs on every call."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic  # heavy: onnxruntime

    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    finally:
        logging.getLogger().setLevel(quiet)


def export_int8(model, folder: Path, digest: str | None = None, fp32_cache: Path | None = None) -> tuple[Path, Path]:
    """``folder``/image.int8.onnx and text.int8.onnx for ``model`` (made if missing; atomic), quantised from
    the fp32 export ``onnx_runtime`` caches (made first if missing), so fp32 and int8 export the model once."""
    image_file, text_file = folder / "image.int8.onnx", folder / "text.int8.onnx"
    if image_file.exists() and text_file.exists():
        return image_file, text_file
    fp32_files = export_fp32(model, fp32_folder(model, digest, fp32_cache))
    with published(folder) as work:
        for name, source in zip(("image", "text"), fp32_files):
            quantise_dynamic_int8(source, work / f"{name}.int8.onnx")
        (work / "about.json").write_text(json.dumps({"method": INT8_METHOD, "opset": OPSET,
                                                     "class": type(model).__name__}), encoding="utf-8")
    return image_file, text_file


class Int8Clip(OrtSessions):
    """A CLIPModel / ChineseCLIPModel at int8 through ONNX Runtime; ``config`` is the original model's."""

    method = INT8_METHOD

    def __init__(self, model, cache: Path | None = None, threads: int | None = None):
        self.digest = weights_digest(model)
        self.folder = (cache or cache_root("onnx-int8")) / f"{type(model).__name__}-{self.digest}"
        fp32_cache = cache / "fp32" if cache else None  # a cache given (tests): the fp32 export lives in it too
        super().__init__(model.config, *export_int8(model, self.folder, self.digest, fp32_cache), threads)

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.glob("*.onnx"))
