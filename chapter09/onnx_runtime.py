"""CLIP's two towers as ONNX Runtime fp32 sessions: the capstone's fp32 runtime on CPUs where it beats torch.

``OrtClip(model)`` exports ``get_image_features`` and ``get_text_features`` (any batch, any sequence length)
to ONNX once per model (cached under ``$CH09_CACHE``, default ``~/.cache/chapter09``, in ``onnx-fp32/``,
keyed by ``weights_digest``: a fine-tuned checkpoint gets its own files) and answers with torch
tensors, so ``ClipEncoder`` and the indexer use it unchanged. ``onnx_int8`` quantises the same fp32 files,
so an index that measures int8 against fp32 exports the model once.

Why: on the AVX2-only EPYC this chapter's issue 22 measured, ONNX Runtime's fp32 graph (fused attention and
GELU, its own MLAS GEMMs) encodes ViT-B/32 images faster than torch's fp32 eager model, the runtime rclip
uses (``python -m chapter09.capstone.bench.peer_rclip`` prints both side by side). The vectors differ from
torch's by float rounding only: every export is checked against torch on its example inputs (cosine >=
``AGREEMENT_MIN``) before it is used, and ``precision_identity`` names the runtime (``fp32:ort``) so an
index never mixes torch and ONNX Runtime vectors.

``fp32_runtime`` decides which runtime fp32 runs on: ``$CH09_FP32_RUNTIME`` (torch | onnxruntime) when set;
otherwise ONNX Runtime on a CPU for the real checkpoints, torch for the toy twins (a model of a few MB,
where exporting costs more than it saves) and on GPUs.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
import weakref
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import SetupError, UsageError

CACHE_ENV = "CH09_CACHE"


# model -> (what its digest was computed from, the digest): one index's precision check builds fp32, int8 and
# bf16 from the same weights, and each asked for the digest again (0.2 s a time for ViT-B/32 on an idle EPYC)
_DIGESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _architecture(value):
    """A configuration minus where it was loaded from and in which dtype."""
    if isinstance(value, dict):
        return {str(k): _architecture(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
                if not str(k).startswith("_") and k not in ("transformers_version", "dtype", "torch_dtype")}
    return value


def weights_digest(model) -> str:
    """A cheap digest of a model: its architecture (configuration without paths and dtypes), every
    parameter's name and shape, the sum and sum of squares of its values and a strided sample of them:
    other weights give another digest; the same weights loaded from another folder give the same.
    Remembered per model object while its architecture and every tensor's storage and in-place version
    counter stay as they were (a training step or ``load_state_dict`` moves a version: computed again)."""
    import torch

    architecture = json.dumps(_architecture(model.config.to_dict()), sort_keys=True, default=str)
    state = model.state_dict()
    seen = (architecture, tuple((name, t.data_ptr(), t._version) for name, t in state.items()))
    known = _DIGESTS.get(model)
    if known is not None and known[0] == seen:
        return known[1]
    digest = hashlib.sha1(architecture.encode())
    with torch.no_grad():
        for name, parameter in state.items():
            flat = parameter.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 256)].float().cpu().numpy()
            whole = torch.stack([flat.float().sum(), flat.float().square().sum()]).cpu().numpy()  # every value counts
            digest.update(f"{name}{tuple(parameter.shape)}".encode())
            digest.update(whole.tobytes())
            digest.update(np.ascontiguousarray(sample).tobytes())
    _DIGESTS[model] = (seen, digest.hexdigest()[:16])
    return _DIGESTS[model][1]


RUNTIMES = ("torch", "onnxruntime")
ENV_FP32_RUNTIME = "CH09_FP32_RUNTIME"
ORT_FP32_METHOD = "ort"  # fp32's identity on ONNX Runtime: "fp32:ort"
OPSET = 17
AGREEMENT_MIN = 0.999  # cosine an export must keep with torch fp32 on its example inputs


def cache_root(kind: str = "onnx-fp32") -> Path:
    """Where exports of one ``kind`` (onnx-fp32, onnx-int8) are cached: ``$CH09_CACHE`` or ~/.cache/chapter09."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "chapter09") / kind


def asked_runtime(env: str, runtimes: tuple[str, ...], device: str) -> str | None:
    """The runtime ``$env`` names (None when unset), checked: one of ``runtimes``, and any but torch on a CPU only."""
    asked = os.environ.get(env, "").strip().lower()
    if not asked:
        return None
    if asked not in runtimes:
        raise UsageError(f"{env}={asked!r}: use one of {', '.join(runtimes)} (or unset it)")
    if asked != "torch" and device != "cpu":
        raise UsageError(f"{env}={asked} runs on the CPU only, not on {device}: unset it")
    return asked


def fp32_runtime(device: str = "cpu", is_toy: bool = False) -> str:
    """Which runtime fp32 encodes on (see the module docstring)."""
    asked = asked_runtime(ENV_FP32_RUNTIME, RUNTIMES, device)
    if asked:
        return asked
    if device != "cpu" or is_toy or importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    return "onnxruntime"


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


def example_inputs(model):
    import torch

    vision = model.config.vision_config
    side = vision.image_size
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(2, getattr(vision, "num_channels", 3), side, side, generator=generator)
    text = model.config.text_config
    ids = torch.randint(3, min(text.vocab_size, 1000), (2, 8), generator=generator)
    eos = getattr(text, "eos_token_id", None)
    if eos is not None and eos < text.vocab_size:
        ids[:, -1] = eos
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in the example, so the mask is not folded into a constant
    return pixels, ids, mask


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each row of ``a`` with the same row of ``b``."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return np.sum(a * b, axis=1)


@contextlib.contextmanager
def published(folder: Path):
    """A scratch folder beside ``folder`` that becomes ``folder`` in one rename when the block succeeds (a
    reader never sees half an export); removed if the block fails, or if another process published first
    (its files are used)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        os.replace(work, folder)
    except OSError:  # another process finished first: use its files
        shutil.rmtree(work, ignore_errors=True)


def export_checked(module, inputs: dict, path: Path, output: str, dynamic_axes: dict) -> float:
    """Export ``module`` (called with ``inputs``' tensors in order; their names name the graph's inputs) to ``path``
    and run the file on ONNX Runtime: the smallest cosine, item by item (each output flattened), with torch's."""
    import torch

    args = tuple(inputs.values())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks
        # the TorchScript-based exporter (dynamo=False) handles transformers' models without onnxscript
        torch.onnx.export(module, args, path, opset_version=OPSET, input_names=list(inputs), output_names=[output],
                          dynamic_axes=dynamic_axes, dynamo=False)
        want = module(*args).reshape(len(args[0]), -1).numpy()
    got = session(path).run(None, {name: tensor.numpy() for name, tensor in inputs.items()})[0]
    return float(row_cosines(got.reshape(len(want), -1), want).min())


def export_fp32(model, folder: Path) -> tuple[Path, Path]:
    """``folder``/image.onnx and text.onnx for ``model`` (made if missing; atomic), each checked against torch."""
    image_file, text_file = folder / "image.onnx", folder / "text.onnx"
    if image_file.exists() and text_file.exists():
        return image_file, text_file
    with published(folder) as work:
        pixels, ids, mask = example_inputs(model)
        model = model.float().eval()
        image_tower, text_tower = _towers(model)
        agreement = min(
            export_checked(image_tower, {"pixel_values": pixels}, work / "image.onnx", "embeds",
                           {"pixel_values": {0: "batch"}, "embeds": {0: "batch"}}),
            export_checked(text_tower, {"input_ids": ids, "attention_mask": mask}, work / "text.onnx", "embeds",
                           {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                            "embeds": {0: "batch"}}))
        if not agreement >= AGREEMENT_MIN:
            raise SetupError(f"the ONNX Runtime export of {type(model).__name__} gives other vectors than torch "
                             f"(cosine {agreement:.5f} < {AGREEMENT_MIN}); run fp32 on torch: "
                             f"{ENV_FP32_RUNTIME}=torch")
        (work / "about.json").write_text(json.dumps({"method": ORT_FP32_METHOD, "opset": OPSET,
                                                     "class": type(model).__name__,
                                                     "min_cosine_vs_torch": round(agreement, 7)}), encoding="utf-8")
    return image_file, text_file


def fp32_folder(model, digest: str | None = None, cache: Path | None = None) -> Path:

    return (cache or cache_root()) / f"{type(model).__name__}-{digest or weights_digest(model)}"


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


class OrtSessions:
    """The torch-module surface ``ClipEncoder`` and the indexer touch, answered by two ONNX Runtime sessions."""

    def __init__(self, config, image_file: Path, text_file: Path, threads: int | None = None):
        self.config = config
        self._image_file, self._text_file, self._threads = image_file, text_file, threads

    def _session(self, path: Path):
        """A runtime's session for one tower's file: anything with ONNX Runtime's ``run(None, feeds)``."""
        return session(path, self._threads)

    @cached_property
    def image_session(self):
        """Made on the first image: a text search never needs it, and the image tower's session is the larger."""
        return self._session(self._image_file)

    @property
    def text_file(self) -> Path:
        """The text tower's ONNX file (the capstone's quick search runs it without torch)."""
        return self._text_file

    @cached_property
    def text_session(self):
        """Made on the first text: `index` encodes images only, and a session costs about a second to build."""
        return self._session(self._text_file)

    def release(self) -> None:
        """Drop the sessions now, on this thread (a later use makes them again): a runtime's native threads are
        not left for the cycle collector to free at some later point, on whatever thread it runs."""
        self.__dict__.pop("image_session", None)
        self.__dict__.pop("text_session", None)

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


class OrtClip(OrtSessions):
    """A CLIPModel / ChineseCLIPModel at fp32 through ONNX Runtime; ``config`` is the original model's."""

    method = ORT_FP32_METHOD

    def __init__(self, model, cache: Path | None = None, threads: int | None = None):
        self.digest = weights_digest(model)
        self.folder = fp32_folder(model, self.digest, cache)
        super().__init__(model.config, *export_fp32(model, self.folder), threads)
