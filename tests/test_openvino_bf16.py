"""bf16 CLIP through OpenVINO (``chapter09.openvino_runtime``): the rule that picks it, its vectors against torch's
fp32 on held-out toy scenes, and the crash its CPU plugin's signal stack once caused."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from chapter09 import config, cpu
from chapter09.models import Settings
from chapter09.openvino_runtime import ENV_BF16_RUNTIME, bf16_runtime

SEED = config.TOY_HELDOUT_SEED + 37  # a held-out seed no other test uses


@pytest.mark.unit
def test_bf16_runtime_rule(monkeypatch):
    from chapter09.errors import UsageError
    from chapter09.precision import runtime_of

    monkeypatch.delenv(ENV_BF16_RUNTIME, raising=False)
    assert bf16_runtime("cpu", is_toy=False) == ("openvino" if cpu.has_native_bf16() else "torch")
    assert bf16_runtime("cpu", is_toy=True) == "torch" and bf16_runtime("cuda", is_toy=False) == "torch"
    assert runtime_of("bf16", "cpu", is_toy=False, bf16_on="torch") == "torch"  # a captioner's bf16
    monkeypatch.setenv(config.ENV_HIDE_CPU_FEATURES, "bf16")
    assert bf16_runtime("cpu", is_toy=False) == "torch"  # OpenVINO would quietly infer in fp32 there
    monkeypatch.setenv(ENV_BF16_RUNTIME, "openvino")
    assert bf16_runtime("cpu", is_toy=True) == "openvino"
    with pytest.raises(UsageError, match="CPU only"):
        bf16_runtime("cuda")
    monkeypatch.setenv(ENV_BF16_RUNTIME, "ov")
    with pytest.raises(UsageError, match="torch, openvino"):
        bf16_runtime("cpu")


def test_openvino_bf16_keeps_fp32s_vectors_and_names_its_runtime(monkeypatch):
    from chapter09.clip import ClipEncoder
    from chapter09.toyworld import generate_scenes

    monkeypatch.setenv(ENV_BF16_RUNTIME, "openvino")
    fp32 = ClipEncoder("clip", Settings(mode="toy", device="cpu", precision="fp32"))
    bf16 = fp32.at_precision("bf16")
    made = ClipEncoder("clip", Settings(mode="toy", device="cpu", precision="bf16"))
    for encoder in (bf16, made):
        assert (encoder.runtime, encoder.precision_id, type(encoder.model).__name__) == ("openvino", "bf16:ov",
                                                                                        "OvBf16Clip")
    assert bf16.torch_model is fp32.torch_model  # OpenVINO reads the fp32 weights (no copy converted to bf16)
    scenes = generate_scenes(24, SEED, split="heldout")
    images, texts = [scene.render() for scene in scenes], [scene.captions("en")[0] for scene in scenes]
    reference = fp32.encode_images(images)
    for encoder in (bf16, made):
        cosines = np.sum(encoder.encode_images(images) * reference, axis=1)
        assert 0.99 < cosines.min(), cosines.min()
        text_cosines = np.sum(encoder.encode_texts(texts) * fp32.encode_texts(texts), axis=1)
        assert 0.99 < text_cosines.min(), text_cosines.min()
    bf16.release()  # the sessions go; a later call compiles them again
    assert np.allclose(bf16.encode_images(images[:4]), made.encode_images(images[:4]), atol=1e-6)


def test_freeing_compiled_towers_in_any_order_leaves_signals_safe():
    """Each OpenVINO Core's CPU plugin moves the thread's alternate signal stack to its own memory and puts back
    the one it found when it ends. With a Core per tower, freeing the text tower's before the image tower's left
    the stack pointing at unmapped memory, and the next SIGCHLD killed the process (SIGSEGV, exit -11)."""
    script = textwrap.dedent("""
        import gc, os, signal, subprocess
        from PIL import Image
        from chapter09.clip import ClipEncoder
        from chapter09.models import Settings
        os.environ["CH09_BF16_RUNTIME"] = "openvino"
        encoder = ClipEncoder("clip", Settings(mode="toy", device="cpu", precision="bf16"))
        encoder.encode_texts(["a dog"]), encoder.encode_images([Image.new("RGB", (64, 64))])
        model = encoder.model
        model.__dict__.pop("text_session"); gc.collect()  # first compiled, first freed: not the plugin's order
        model.__dict__.pop("image_session"); del model, encoder; gc.collect()
        ended = []
        signal.signal(signal.SIGCHLD, lambda *_: ended.append(1))  # Python's handlers run on the alternate stack
        for _ in range(5):
            subprocess.run(["true"], check=True)
        print("children ended", len(ended))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "children ended 5" in done.stdout
