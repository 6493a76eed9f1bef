"""Model resolution: fast, honest about what it picked, and clear when it cannot."""
import time

import pytest

from chapter09 import config, models
from chapter09.models import ModelUnavailableError, resolve


@pytest.fixture
def no_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    yield
    models.hub_reachable.cache_clear()


def test_toy_mode_returns_the_committed_twin():
    resolved = resolve("clip", "toy")
    assert resolved.is_toy and (config.TOY_MODELS_DIR / "clip" / "config.json").exists()


def test_auto_falls_back_to_toy_without_hub(no_hub):
    started = time.perf_counter()
    resolved = resolve("clip", "auto")
    assert resolved.is_toy
    assert time.perf_counter() - started < 3


def test_real_mode_without_weights_fails_fast_and_says_what_to_do(no_hub):
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as error:
        resolve("clip", "real")
    assert time.perf_counter() - started < 3
    message = str(error.value)
    assert "openai/clip-vit-base-patch32" in message and "--models toy" in message


def test_unreachable_endpoint_is_decided_within_the_probe_timeout(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    models.hub_reachable.cache_clear()
    started = time.perf_counter()
    assert models.hub_reachable() is False
    assert time.perf_counter() - started < config.HUB_PROBE_TIMEOUT_S + 1
    models.hub_reachable.cache_clear()


def test_a_user_named_directory_wins(tmp_path, monkeypatch, no_hub):
    monkeypatch.setenv("CH09_MODEL_DIR_CLIP", str(tmp_path))
    resolved = resolve("clip", "real")
    assert resolved.source == "local-dir" and resolved.location == str(tmp_path)
    monkeypatch.setenv("CH09_MODEL_DIR_CLIP", str(tmp_path / "missing"))
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        resolve("clip", "real")


def test_every_role_names_a_hub_id_and_bad_input_is_refused():
    for role, spec in config.MODELS.items():
        assert "/" in spec.hub_id and spec.toy_dir, role
    with pytest.raises(KeyError, match="known roles"):
        config.model_spec("nope")
    with pytest.raises(ValueError):
        models.models_mode("sometimes")


def test_dtype_choice_and_override(monkeypatch):
    import torch

    monkeypatch.delenv("CH09_DTYPE", raising=False)
    assert models.pick_dtype("cuda") is torch.float16
    expected = torch.bfloat16 if models.cpu_supports_bf16() else torch.float32
    assert models.pick_dtype("cpu") is expected
    assert models.pick_dtype("cpu", "float32") is torch.float32
    monkeypatch.setenv("CH09_DTYPE", "fp16")
    assert models.pick_dtype("cpu") is torch.float16
    with pytest.raises(ValueError):
        models.pick_dtype("cpu", "int3")
