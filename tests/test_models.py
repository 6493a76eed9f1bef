"""Model resolution: fast, honest about what it picked, and clear when it cannot."""
import time

import pytest

from chapter09 import config, cpu, models
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


def test_roles_without_a_twin_say_so_and_name_their_test(no_hub):
    without = [spec for spec in config.MODELS.values() if not spec.has_twin]
    assert {spec.role for spec in without} >= {"small_vlm", "vlm_language_model"}
    for spec in without:
        with pytest.raises(ModelUnavailableError) as error:
            resolve(spec.role, "auto")
        assert error.value.role == spec.role and error.value.has_twin is False
        assert spec.hub_id in str(error.value) and spec.tested_by in str(error.value)
        if spec.tested_by.startswith("tests/"):  # the named test exists
            test_file, _, test_name = spec.tested_by.partition("::")
            source = (config.REPO_DIR / test_file.split()[0]).read_text()
            assert not test_name or f"def {test_name}(" in source
    for spec in config.MODELS.values():
        if spec.has_twin:
            assert resolve(spec.role, "toy").location == str(spec.toy_path)
    with pytest.raises(KeyError, match="known roles"):
        config.model_spec("nope")
    with pytest.raises(ValueError):
        models.models_mode("sometimes")


def test_deciding_reachability_changes_nothing_else_in_the_process(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    models.hub_reachable.cache_clear()
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    assert resolve("clip", "auto").is_toy
    assert "HF_HUB_OFFLINE" not in __import__("os").environ
    assert huggingface_hub.constants.HF_HUB_OFFLINE == offline_before
    models.hub_reachable.cache_clear()


def test_loading_an_encoder_leaves_warning_filters_and_logging_as_they_were():
    import warnings

    import transformers

    from chapter09.clip import ClipEncoder

    ClipEncoder("clip", models.Settings("toy"))  # first load: the libraries' own imports may add filters
    filters, verbosity = list(warnings.filters), transformers.logging.get_verbosity()
    ClipEncoder("clip", models.Settings("toy"))
    assert list(warnings.filters) == filters and transformers.logging.get_verbosity() == verbosity


def test_one_cache_shares_models_across_callers():
    from chapter09.clip import clip_encoder

    settings = models.Settings("toy", dtype="float32")
    first = clip_encoder("clip", settings)
    assert clip_encoder("clip", models.Settings("toy", dtype="float32")) is first  # equal settings, same model
    assert clip_encoder("clip", models.Settings("toy", dtype="bfloat16")) is not first
    calls = []
    assert models.cached("test", 1, lambda: calls.append(1) or "made") == "made"
    assert models.cached("test", 1, lambda: calls.append(1) or "again") == "made" and calls == [1]


def test_settings_resolve_the_mode_once_and_travel_as_flags(monkeypatch):
    monkeypatch.setenv("CH09_MODELS", "toy")
    settings = models.Settings(device="cpu")
    assert settings.mode == "toy"  # the environment is read when the settings are made, not later
    monkeypatch.setenv("CH09_MODELS", "real")
    assert settings.mode == "toy" and settings.cli_args() == ["--models", "toy", "--device", "cpu"]
    with pytest.raises(ValueError, match="--models"):
        models.Settings("sometimes")


@pytest.mark.cpu
def test_dtype_choice_and_override(monkeypatch):
    import torch

    monkeypatch.delenv("CH09_DTYPE", raising=False)
    assert models.pick_dtype("cuda") is torch.float16
    expected = torch.bfloat16 if cpu.has_native_bf16() else torch.float32
    assert models.pick_dtype("cpu") is expected
    assert models.pick_dtype("cpu", "float32") is torch.float32
    monkeypatch.setenv("CH09_DTYPE", "fp16")
    assert models.pick_dtype("cpu") is torch.float16
    with pytest.raises(ValueError):
        models.pick_dtype("cpu", "int3")


# ----------------------------------------------------------------------------- the toy-world line
@pytest.fixture
def fresh_announcements(monkeypatch):
    """A process that has announced nothing yet (announcements are once per process)."""
    monkeypatch.setattr(models, "_announced", set())
    monkeypatch.setattr(models, "_toy_said", set())


@pytest.fixture
def notebook(monkeypatch):
    import sys
    import types

    class ZMQInteractiveShell:  # what a running Jupyter kernel's get_ipython() returns
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = ZMQInteractiveShell
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setitem(sys.modules, "IPython", ipython)


def _toy_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(models.TOY_TAG)]


def test_a_process_that_imported_ipykernel_is_not_a_notebook(monkeypatch):
    """A test worker or the notebook builder imports ipykernel without running a kernel: still a terminal."""
    import sys
    import types

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert not models.in_notebook()


def test_a_terminal_that_chose_the_toy_world_is_not_told_again(fresh_announcements, capsys, tmp_path):
    from chapter09.lesson import start

    start("9.3", "test", ["--models", "toy", "--out", str(tmp_path)])
    for role in ("sbert_clip", "multilingual_text"):
        models.announce(resolve(role, "toy"))
    assert not _toy_lines(capsys.readouterr().out)


def test_a_terminal_falling_back_to_the_toy_world_hears_it_once_per_run(fresh_announcements, no_hub, capsys):
    for role in ("clip", "captioner", "vqa", "clip"):
        models.announce(resolve(role, "auto"))
    lines = _toy_lines(capsys.readouterr().out)
    assert len(lines) == 1 and "clip" in lines[0] and "--models real" in lines[0], lines
    assert "--models toy" in lines[0]  # ... and how to choose the twins without the line


def test_a_notebook_gets_one_line_naming_its_twins_and_how_to_use_real_weights_there(
        fresh_announcements, notebook, monkeypatch, capsys, tmp_path):
    from chapter09.lesson import LESSON_TWINS, start

    monkeypatch.setenv(config.ENV_MODELS, "toy")
    monkeypatch.setenv("CH09_OUT", str(tmp_path))
    start("9.3", "test", ["--out", str(tmp_path)])
    for role in ("sbert_clip", "multilingual_text", "sbert_clip"):  # the lesson's loaders announce again: silent
        models.announce(resolve(role))
    lines = _toy_lines(capsys.readouterr().out)
    assert len(lines) == 1, lines
    assert all(role in lines[0] for role in LESSON_TWINS["9.3"])
    assert 'os.environ["CH09_MODELS"] = "real"' in lines[0] and "CH09_MODEL_DIR_<ROLE>" in lines[0]
    assert "--models" not in lines[0]  # a command-line flag means nothing to a notebook reader


def test_real_weights_are_still_named_per_role(fresh_announcements, capsys, tmp_path):
    spec = config.model_spec("clip")
    models.announce(models.ResolvedModel("clip", spec, str(tmp_path), "local-dir"))
    out = capsys.readouterr().out
    assert out.startswith("[models] clip: openai/clip-vit-base-patch32 from local-dir") and not _toy_lines(out)


@pytest.mark.parametrize("mode", ["auto", "toy"])
def test_announcement_lines_are_what_announce_prints_in_a_fresh_process(fresh_announcements, no_hub, capsys,
                                                                       tmp_path, mode):
    real = models.ResolvedModel("clip", config.model_spec("clip"), str(tmp_path), "local-dir")
    for resolveds in ([resolve("translator_zh_en", mode), resolve("clip", mode)],
                      [resolve("translator_zh_en", mode), real], [real, resolve("captioner", mode)]):
        models._announced.clear()
        models._toy_said.clear()
        for resolved in resolveds:
            models.announce(resolved)
        assert models.announcement_lines(resolveds) == capsys.readouterr().out.splitlines(), resolveds


def test_a_model_asked_for_by_many_threads_at_once_is_loaded_once_and_alone():
    """The web server's first searches come at once: each model is made once, and no two loads overlap
    (transformers' loading is not thread-safe)."""
    import threading
    import time

    from chapter09 import models

    loading, overlapped, made = [], [], []

    def factory(name):
        def make():
            loading.append(name)
            overlapped.append(len(loading) > 1)
            time.sleep(0.02)
            made.append(name)
            loading.remove(name)
            return f"model {name}"
        return make
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        models.cached("test-threads", i % 2, factory(i % 2)))) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(made) == [0, 1] and not any(overlapped)
    assert sorted(results) == ["model 0"] * 4 + ["model 1"] * 4
