"""A first `index` without wasted work (issue 22): the precision check's sample vectors become rows, a recorded
verdict is not measured again (unless the CPU changed), and fp32 on ONNX Runtime gives torch's vectors."""
import json

import numpy as np
import pytest

from chapter09 import config
from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SEED = config.TOY_HELDOUT_SEED + 31  # a held-out seed no other test uses


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from chapter09.toyworld import write_dataset

    return write_dataset(tmp_path_factory.mktemp("lib") / "library", n=30, seed=SEED, split="heldout")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CH09_CACHE", str(tmp_path / "cache"))


def _images(library) -> list[str]:
    from chapter09.capstone.precision.library import library_images

    return [str(p.relative_to(library)) for p in library_images(library)]


def test_sample_vectors_become_rows_and_the_rest_is_encoded_once(library, tmp_path):
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.precision.library import pick_for_index
    from chapter09.capstone.store.database import Store
    from chapter09.clip import clip_encoder
    from chapter09.models import clear_cache

    clear_cache()
    settings, index, sample = Settings(mode="toy", device="cpu"), tmp_path / "index", 8
    report = pick_for_index(library, index, ["clip"], settings, "int8", sample=sample, log=lambda m: None)
    rows = report.pop("sample_rows")
    json.dumps(report)  # the rest is JSON-ready (cmd_index prints it)
    assert report["measured"] and len(rows["items"]) == sample and rows["vectors"]["clip"].shape[0] == sample
    row = report["fidelity"]["clip"]["int8"]  # queries: the library's captions (at most 64); k: min(10, images)
    assert report["margins"]["top10_agreement"] == pytest.approx(1.96 * np.sqrt(0.09 / (row["queries"] * row["k"])),
                                                                  abs=1e-4)

    encoder = clip_encoder("clip", settings.with_(precision="int8"))
    assert encoder.identity == rows["identities"]["clip"]  # the check's encoder, not a second load
    encoded, real = [], encoder.encode_pixels
    encoder.encode_pixels = lambda pixels, **kw: encoded.append(len(pixels)) or real(pixels, **kw)
    try:
        summary = build_index(library, index, {"clip": encoder}, workers=0, progress=False, build_ann=False,
                              precomputed=rows)
    finally:
        del encoder.encode_pixels
    total = len(_images(library))
    assert sum(encoded) == total - sample and summary.added == total and summary.total == total
    assert any("8 images' vectors kept" in note for note in summary.notes)

    # the kept rows are the vectors indexing would have made: encode the sample again the indexer's way
    from chapter09.capstone.index.build import decode_one

    store = Store.open(index)
    stored = {r["path"]: np.asarray(r["vector"], np.float32) for r in store.images("clip").records(("path", "vector"))}
    pre = {"clip": encoder.processor.image_processor}
    for item in rows["items"][:4]:
        pixels = decode_one(library, item["path"], pre, encoder.image_side)["pixels"]["clip"]
        again = encoder.encode_pixels(__import__("torch").from_numpy(np.asarray(pixels))[None])[0]
        assert float(stored[item["path"]] @ again) > 0.999


def test_changed_file_after_the_check_is_encoded_not_taken_from_the_sample(library, tmp_path):
    import os
    import shutil

    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.precision.library import pick_for_index
    from chapter09.clip import clip_encoder

    lib = shutil.copytree(library, tmp_path / "lib")
    settings, index = Settings(mode="toy", device="cpu"), tmp_path / "index"
    rows = pick_for_index(lib, index, ["clip"], settings, "int8", sample=4, log=lambda m: None)["sample_rows"]
    touched = lib / rows["items"][0]["path"]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    encoder = clip_encoder("clip", settings.with_(precision="int8"))
    summary = build_index(lib, index, {"clip": encoder}, workers=0, progress=False, build_ann=False, precomputed=rows)
    assert any("3 images' vectors kept" in note for note in summary.notes)


def test_a_recorded_verdict_is_not_measured_again_but_another_cpu_re_measures(library, tmp_path, monkeypatch):
    from chapter09.capstone.precision import library as library_precision
    from chapter09.cpu import describe

    settings, index = Settings(mode="toy", device="cpu"), tmp_path / "index"
    first = library_precision.pick_for_index(library, index, ["clip"], settings, "int8", sample=6,
                                             log=lambda m: None)
    recorded = library_precision.read_sidecar(index)
    assert first["measured"] and recorded["cpu"] == describe() and recorded["locations"]["clip"]

    measured = []
    real_rows = library_precision.fidelity_rows
    monkeypatch.setattr(library_precision, "fidelity_rows", lambda *a, **kw: measured.append(1) or real_rows(*a, **kw))
    for requested in ("int8", "auto"):  # explicit: the recorded rows; auto: the recorded choice
        again = library_precision.pick_for_index(library, index, ["clip"], settings, requested, sample=6,
                                                 log=lambda m: None)
        assert not again["measured"] and "sample_rows" not in again
    assert measured == []
    assert again["precision"] == first["precision"]

    monkeypatch.setenv(config.ENV_HIDE_CPU_FEATURES, "avx2")  # what the record names no longer describes this CPU
    assert describe() != recorded["cpu"]
    third = library_precision.pick_for_index(library, index, ["clip"], settings, "int8", sample=6, log=lambda m: None)
    assert third["measured"] and measured == [1]
    assert library_precision.read_sidecar(index)["cpu"] == describe()


def test_a_new_index_reuses_the_verdict_remembered_for_these_models_and_this_cpu(library, tmp_path, monkeypatch):
    """The user cache (verdict_cache): a second new index on this machine is not measured again; another CPU,
    another bar, or the cache turned off re-measures."""
    from chapter09.capstone.precision import library as library_precision
    from chapter09.capstone.precision import verdicts as verdict_cache
    from chapter09.fidelity import FIDELITY_BAR, FidelityBar

    monkeypatch.setenv(verdict_cache.ENV_SWITCH, "1")
    measured = []
    real_rows = library_precision.fidelity_rows
    monkeypatch.setattr(library_precision, "fidelity_rows", lambda *a, **kw: measured.append(1) or real_rows(*a, **kw))
    settings = Settings(mode="toy", device="cpu")

    def pick(name, bar=FIDELITY_BAR):
        return library_precision.pick_for_index(library, tmp_path / name, ["clip"], settings, "auto", sample=6,
                                                bar=bar, log=lambda m: None)

    first = pick("first")
    assert first["measured"] and measured == [1] and verdict_cache.cache_file().is_file()
    second = pick("second")  # a new index: no sidecar of its own, the verdict comes from the user cache
    assert not second["measured"] and measured == [1]
    assert second["precision"] == first["precision"]
    assert json.dumps(second["fidelity"]) == json.dumps(first["fidelity"])  # NaN rows (unavailable) compare as text
    assert library_precision.read_sidecar(tmp_path / "second")["precision"] == first["precision"]  # recorded

    pick("third", FidelityBar(FIDELITY_BAR.min_mean_cosine, 0.5))  # another bar: another verdict
    assert measured == [1, 1]
    monkeypatch.setenv("CH09_BF16_RUNTIME", "openvino")  # bf16 on another runtime: its own verdict
    pick("on-openvino")
    assert measured == [1, 1, 1]
    monkeypatch.delenv("CH09_BF16_RUNTIME")
    monkeypatch.setenv(config.ENV_HIDE_CPU_FEATURES, "avx2")  # another CPU kind
    pick("fourth")
    assert measured == [1, 1, 1, 1]
    monkeypatch.setenv(verdict_cache.ENV_SWITCH, "0")
    pick("fifth")
    assert measured == [1, 1, 1, 1, 1]


def test_onnx_runtime_fp32_gives_torchs_vectors_and_names_its_runtime(monkeypatch, heldout_images):
    from chapter09.clip import ClipEncoder
    from chapter09.onnx_runtime import ENV_FP32_RUNTIME

    monkeypatch.setenv(ENV_FP32_RUNTIME, "onnxruntime")
    ort = ClipEncoder("clip", Settings(mode="toy", device="cpu", precision="fp32"))
    torch_fp32 = ort.at_precision("fp32", runtime="torch")
    assert (ort.runtime, ort.precision_id, torch_fp32.precision_id) == ("onnxruntime", "fp32:ort", "fp32")
    assert type(ort.model).__name__ == "OrtClip"
    images, texts = heldout_images
    a, b = ort.encode_images(images), torch_fp32.encode_images(images)
    assert np.sum(a * b, axis=1).min() >= 0.999
    a, b = ort.encode_texts(texts), torch_fp32.encode_texts(texts)
    assert np.sum(a * b, axis=1).min() >= 0.999
    int8 = ort.at_precision("int8")  # derived from the torch weights the ONNX session was exported from
    cosines = np.sum(int8.encode_images(images) * torch_fp32.encode_images(images), axis=1)
    assert int8.precision_id.startswith("int8:") and 0.99 < cosines.min() and cosines.max() < 1.0


@pytest.fixture
def heldout_images():
    from chapter09.toyworld import generate_scenes

    scenes = generate_scenes(24, SEED + 1, split="heldout")
    return [scene.render() for scene in scenes], [scene.captions("en")[0] for scene in scenes]


def test_fp32_runtime_rule(monkeypatch):
    from chapter09.errors import UsageError
    from chapter09.onnx_runtime import ENV_FP32_RUNTIME, fp32_runtime

    monkeypatch.delenv(ENV_FP32_RUNTIME, raising=False)
    assert fp32_runtime("cpu", is_toy=False) == "onnxruntime"
    assert fp32_runtime("cpu", is_toy=True) == "torch" and fp32_runtime("cuda", is_toy=False) == "torch"
    monkeypatch.setenv(ENV_FP32_RUNTIME, "torch")
    assert fp32_runtime("cpu", is_toy=False) == "torch"
    monkeypatch.setenv(ENV_FP32_RUNTIME, "onnx")
    with pytest.raises(UsageError, match="torch, onnxruntime"):
        fp32_runtime("cpu")


def test_index_cli_keeps_the_sample_rows(library, tmp_path, capsys):
    from chapter09.capstone.__main__ import main as capstone

    index = tmp_path / "index"
    assert capstone(["index", str(library), "--index", str(index), "--models", "toy", "--precision", "int8",
                     "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    total = len(_images(library))
    assert report["added"] == total and f"{total} images' vectors kept from the precision check" in report["notes"][-1]
    assert report["precision"]["identity"].startswith("int8:") and "sample_rows" not in report["precision"]


@pytest.mark.unit
@pytest.mark.parametrize("role", ["clip", "chinese_clip"])
def test_uint8_pixels_normalised_on_the_encoders_side_are_the_processors_own(role, library):
    """Ray's decode tasks send pixels as uint8 (a quarter of float32's bytes); the actor's ``normalised`` gives
    bit for bit what the processor gives in one step, so the Ray engine's vectors stay the local engine's."""
    from chapter09.capstone.index.decode import decode_one, normalisation_of, normalised
    from chapter09.clip import ClipEncoder

    encoder = ClipEncoder(role, Settings(mode="toy", device="cpu"))
    pre = {role: encoder.processor.image_processor}
    for relative in _images(library)[:6]:
        small = decode_one(library, relative, pre, encoder.image_side, uint8=True)["pixels"][role]
        full = decode_one(library, relative, pre, encoder.image_side)["pixels"][role]
        assert small.dtype == np.uint8 and small.nbytes * 4 == full.nbytes
        assert np.array_equal(normalised(small[None], normalisation_of(pre[role]))[0], full)


@pytest.mark.unit
def test_an_encoding_actor_takes_its_share_of_its_nodes_cpus():
    from chapter09.capstone.engines.ray_cluster import actor_threads

    assert actor_threads(1, 2, 1) == 2  # one actor on a 2-CPU node: both cores, shared with decode tasks
    assert actor_threads(1, 16, 3) == 5
    assert actor_threads(4, 8, 4) == 4  # never fewer than Ray assigned
    assert actor_threads(1, 2, None) == 1  # pool size unknown (captioning): what Ray assigned


def test_a_new_index_starts_its_decode_workers_before_the_precision_check(library, tmp_path):
    """A new index of a library bigger than two batches needs decode workers: their fork server is started before
    the models load (its imports overlap the check), and the pool that follows uses it, then stops it. An existing
    index, a library of two batches or fewer, --workers 0 and the Ray engine start nothing."""
    import multiprocessing.forkserver
    import os

    from chapter09.capstone.index.build import build_index, prestart_decode_workers_for
    from chapter09.capstone.options import EngineOptions, IndexOptions

    settings, index = Settings(mode="toy", device="cpu"), tmp_path / "index"
    server = multiprocessing.forkserver._forkserver
    assert not prestart_decode_workers_for(library, index, settings, ["clip"], IndexOptions(batch_size=64))
    assert not prestart_decode_workers_for(library, index, settings, ["clip"], IndexOptions(batch_size=8, workers=0))
    assert not prestart_decode_workers_for(library, index, settings, ["clip"],
                                           IndexOptions(batch_size=8, engine=EngineOptions(engine="ray")))
    existing = tmp_path / "existing"
    existing.mkdir()
    assert not prestart_decode_workers_for(library, existing, settings, ["clip"], IndexOptions(batch_size=8))
    assert server._forkserver_pid is None

    options = IndexOptions(batch_size=8, progress=False, build_ann=False)
    assert prestart_decode_workers_for(library, index, settings, ["clip"], options)
    pid = server._forkserver_pid
    assert pid is not None and os.waitpid(pid, os.WNOHANG) == (0, 0)  # running, before any model is loaded
    from chapter09.clip import clip_encoder

    summary = build_index(library, index, {"clip": clip_encoder("clip", settings)}, options)
    assert summary.added == len(_images(library))
    assert server._forkserver_pid is None  # the pool used it and stopped it
