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

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

INT8_METHOD = "ort-dynamic-qint8-matmul"  # part of an index's encoder identity: another int8 method gives other vectors
OPSET = 17
CACHE_ENV = "CH09_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "chapter09") / "onnx-int8"


def weights_digest(model) -> str:
    """A cheap digest of a model: its architecture (configuration without paths and dtypes), every
    parameter's name and shape, the sum and sum of squares of its values and a strided sample of them:
    other weights give another digest; the same weights loaded from another folder give the same."""
    import torch

    def architecture(value):  # the configuration minus where it was loaded from and in which dtype
        if isinstance(value, dict):
            return {str(k): architecture(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                    if not str(k).startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")}
        return value

    digest = hashlib.sha1(json.dumps(architecture(model.config.to_dict()), sort_keys=True, default=str).encode())
    with torch.no_grad():
        for name, parameter in model.state_dict().items():
            flat = parameter.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 256)].float().cpu().numpy()
            whole = torch.stack([flat.float().sum(), flat.float().square().sum()]).cpu().numpy()  # every value counts
            digest.update(f"{name}{tuple(parameter.shape)}".encode())
            digest.update(whole.tobytes())
            digest.update(np.ascontiguousarray(sample).tobytes())
    return digest.hexdigest()[:16]


def _towers(model):
    """The two towers as torch modules with plain tensor inputs and outputs (what the exporter traces)."""
    import torch

    from .model_outputs import feature_tensor

    class ImageTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return feature_tensor(self.model.get_image_features(pixel_values=pixel_values))

    class TextTower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return feature_tensor(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    return ImageTower().eval(), TextTower().eval()


def _example_inputs(model):
    import torch

    vision = model.config.vision_config
    side = vision.image_size
    pixels = torch.randn(2, getattr(vision, "num_channels", 3), side, side)
    text = model.config.text_config
    ids = torch.randint(3, min(text.vocab_size, 1000), (2, 8))
    eos = getattr(text, "eos_token_id", None)
    if eos is not None and eos < text.vocab_size:
        ids[:, -1] = eos
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in the example, so the mask is not folded into a constant
    return pixels, ids, mask


def export_int8(model, folder: Path) -> tuple[Path, Path]:
    """``folder``/image.int8.onnx and text.int8.onnx for ``model`` (made if missing; atomic)."""
    import torch

    image_file, text_file = folder / "image.int8.onnx", folder / "text.int8.onnx"
    if image_file.exists() and text_file.exists():
        return image_file, text_file
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        pixels, ids, mask = _example_inputs(model)
        model = model.float().eval()
        image_tower, text_tower = _towers(model)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
            # the TorchScript-based exporter (dynamo=False) handles transformers' CLIP without onnxscript
            torch.onnx.export(image_tower, (pixels,), work / "image.onnx", opset_version=OPSET,
                              input_names=["pixel_values"], output_names=["embeds"],
                              dynamic_axes={"pixel_values": {0: "batch"}, "embeds": {0: "batch"}}, dynamo=False)
            torch.onnx.export(text_tower, (ids, mask), work / "text.onnx", opset_version=OPSET,
                              input_names=["input_ids", "attention_mask"], output_names=["embeds"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"}, "embeds": {0: "batch"}},
                              dynamo=False)
        import logging

        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" advice on every call
        try:
            for name in ("image", "text"):
                quantize_dynamic(work / f"{name}.onnx", work / f"{name}.int8.onnx", weight_type=QuantType.QInt8)
        finally:
            logging.getLogger().setLevel(quiet)
        for name in ("image.onnx", "text.onnx"):
            (work / name).unlink()
        (work / "about.json").write_text(json.dumps({"method": INT8_METHOD, "opset": OPSET,
                                                     "class": type(model).__name__}), encoding="utf-8")
        try:
            os.replace(work, folder)
        except OSError:  # another process finished first: use its files
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return image_file, text_file


def session(path: Path, threads: int | None = None):
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # no busy-waiting between calls: the indexer's decoding processes need those cycles
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Int8Clip:
    """A CLIPModel / ChineseCLIPModel at int8 through ONNX Runtime; ``config`` is the original model's."""

    method = INT8_METHOD

    def __init__(self, model, cache: Path | None = None, threads: int | None = None):
        self.config = model.config
        self.digest = weights_digest(model)
        self.folder = (cache or cache_root()) / f"{type(model).__name__}-{self.digest}"
        image_file, text_file = export_int8(model, self.folder)
        self.image_session = session(image_file, threads)
        self.text_session = session(text_file, threads)

    # the torch-module surface ClipEncoder and the indexer touch
    def eval(self):
        return self

    def to(self, *args, **kwargs):
        return self

    def float(self):
        return self

    def get_image_features(self, pixel_values, **_):
        import torch

        pixels = pixel_values.detach().float().cpu().numpy()
        return torch.from_numpy(self.image_session.run(None, {"pixel_values": pixels})[0])

    def get_text_features(self, input_ids, attention_mask=None, **_):
        import torch

        ids = input_ids.detach().cpu().numpy().astype(np.int64)
        mask = np.ones_like(ids) if attention_mask is None else attention_mask.detach().cpu().numpy().astype(np.int64)
        return torch.from_numpy(self.text_session.run(None, {"input_ids": ids, "attention_mask": mask})[0])

    def size_bytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.glob("*.onnx"))
