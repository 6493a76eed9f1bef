"""CLIP's two towers at bf16 through OpenVINO: the capstone's bf16 runtime on CPUs with native bf16.

``OvBf16Clip(model)`` compiles the fp32 ONNX export ``onnx_runtime`` caches (fp32, bf16 and int8 share one
export of the model) with OpenVINO's CPU plugin told to infer in bf16 (``INFERENCE_PRECISION_HINT``: weights and
activations in bf16 on AVX-512 BF16 or AMX, accumulation in fp32), and answers ``get_image_features`` /
``get_text_features`` as ``onnx_runtime.OrtClip`` does (it is one, with OpenVINO's compiled models as sessions).

Why: measured side by side on an AMD EPYC with AVX-512 BF16 (2 cores; ViT-B/32 image tower, random weights,
batch 32, one process, alternated): torch's bf16 66.7 images/s, OpenVINO's bf16 92.4, ONNX Runtime's fp32 46.1;
OpenVINO's bf16 vectors kept a min cosine of 0.99995 with fp32. ``bf16_runtime`` decides: ``$CH09_BF16_RUNTIME``
(torch | openvino) when set; otherwise OpenVINO on a CPU with native bf16 for the real checkpoints when it is
installed; torch for the toy twins (a model of a few MB, where compiling costs more than it saves), on GPUs, and
for captioners (``captioning``: their bf16 stays torch's).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from .cpu import has_native_bf16
from .errors import UsageError
from .onnx_runtime import OrtClip, asked_runtime

OV_BF16_METHOD = "ov"  # bf16's identity on OpenVINO: "bf16:ov" (torch's is plain "bf16")
ENV_BF16_RUNTIME = "CH09_BF16_RUNTIME"
RUNTIMES = ("torch", "openvino")


def bf16_runtime(device: str = "cpu", is_toy: bool = False) -> str:
    """Which runtime CLIP's bf16 encodes on (see the module docstring)."""
    asked = asked_runtime(ENV_BF16_RUNTIME, RUNTIMES, device)
    if asked:
        if asked == "openvino" and importlib.util.find_spec("openvino") is None:
            raise UsageError(f"{ENV_BF16_RUNTIME}=openvino needs OpenVINO: pip install -r requirements.txt")
        return asked
    if device != "cpu" or is_toy or not has_native_bf16() or importlib.util.find_spec("openvino") is None:
        return "torch"  # without native bf16, OpenVINO would quietly infer in fp32: torch's bf16 is bf16
    return "openvino"


@functools.lru_cache(maxsize=1)
def core():
    """The process's one OpenVINO ``Core``, never freed. Why: each Core's CPU plugin points the thread's alternate
    signal stack (``sigaltstack``) at memory of its own when it starts, and on its end puts back the one it found.
    With a Core per compiled tower, two plugins freed out of order (the cycle collector decides the order) left it
    pointing at unmapped memory; Python runs its signal handlers there, so the next SIGCHLD (a decode worker
    ending) killed the process with SIGSEGV (found under gdb; ``tests/test_openvino_bf16.py`` repeats it)."""
    import openvino  # heavy: openvino, only where bf16 runs on it

    return openvino.Core()


class _CompiledTower:
    """One tower compiled by OpenVINO, with ONNX Runtime's ``run(None, feeds)``: one request at a time."""

    def __init__(self, path: Path, threads: int):
        # bf16 only where the CPU has it (as ``cpu`` sees it): elsewhere OpenVINO itself infers in f32, and with
        # oneDNN held to AVX2 (CH09_AS_AVX2) a bf16 hint finds no Softmax kernel at all
        hint = "bf16" if has_native_bf16() else "f32"
        self.compiled = core().compile_model(str(path), "CPU", {
            "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY"})  # one request at a time with all of its threads: the indexer's way
        self.request = self.compiled.create_infer_request()

    def run(self, _outputs, feeds: dict) -> list[np.ndarray]:
        result = self.request.infer(feeds)[self.compiled.output(0)]
        return [np.array(result, dtype=np.float32)]  # a copy: the request's buffer is reused by the next call


class OvBf16Clip(OrtClip):
    """A CLIPModel / ChineseCLIPModel at bf16 through OpenVINO (fp32's export, compiled for bf16); ``config`` is the
    original model's."""

    method = OV_BF16_METHOD

    def _session(self, path: Path) -> _CompiledTower:
        import torch

        return _CompiledTower(path, self._threads or torch.get_num_threads())
