"""Precision of the CLIP encoders (fp32, bf16, int8): measured fidelity on the toy world, the `auto` rule,
the index's record of it, and the query-embedding cache."""
import json

import numpy as np
import pytest

from chapter09 import config, cpu
from chapter09.clip import ClipEncoder
from chapter09.fidelity import FIDELITY_BAR, Fidelity, FidelityBar, choose_precision, fidelity_rows, topk_agreement
from chapter09.models import Settings
from chapter09.precision import precision_identity, unavailable_reason
from chapter09.retrieval import recall_at_k
from chapter09.toyworld import generate_scenes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

HELDOUT_OFFSET = 12  # a held-out seed no trainer and no other test uses


@pytest.fixture(scope="module")
def heldout():
    scenes = generate_scenes(600, config.TOY_HELDOUT_SEED + HELDOUT_OFFSET, split="heldout")
    return [scene.render() for scene in scenes], scenes


@pytest.fixture(scope="module")
def toy_encoders():
    return {p: ClipEncoder("clip", Settings(mode="toy", device="cpu", precision=p)) for p in ("fp32", "bf16", "int8")}


def _recall(encoder, images, scenes) -> dict:
    vectors = encoder.encode_images(images)
    report = {}
    for lang in ("en", "zh"):
        texts = encoder.encode_texts([scene.captions(lang)[0] for scene in scenes])
        report[lang] = recall_at_k(texts @ vectors.T, list(range(len(scenes))), ks=(1, 5))
    return report


@pytest.mark.quality
def test_int8_keeps_heldout_recall_within_001_of_fp32(toy_encoders, heldout):
    images, scenes = heldout
    assert toy_encoders["int8"].precision == "int8" and toy_encoders["fp32"].precision == "fp32"
    recalls = {p: _recall(toy_encoders[p], images, scenes) for p in ("fp32", "int8")}
    print("\nheld-out text->image recall, 600 scenes:", json.dumps(recalls))
    # English only: the toy CLIP, like OpenAI's, reads English only, and its Chinese recall is chance at any precision
    for k in ("R@1", "R@5"):
        assert abs(recalls["int8"]["en"][k] - recalls["fp32"]["en"][k]) <= 0.01, (k, recalls)
    assert recalls["fp32"]["en"]["R@5"] >= 0.9  # the comparison means something only if fp32 works


@pytest.mark.cpu
@pytest.mark.parametrize("hide", ["", "bf16"], ids=["this-cpu", "bf16-hidden"])
def test_fidelity_figures_on_the_toy_world(toy_encoders, heldout, hide, monkeypatch):
    """bf16 is measured where the CPU has native bf16 and declined with the reason where it has not; the
    ``bf16-hidden`` case runs the second path on every machine (on an AVX2-only CPU both cases take it)."""
    monkeypatch.setenv(config.ENV_HIDE_CPU_FEATURES, hide)
    images, scenes = heldout
    reference = toy_encoders["fp32"]
    pixels = reference.processor.image_processor(images=images[:256], return_tensors="pt")["pixel_values"]
    queries = [scene.captions("en")[0] for scene in scenes[:64]] + [scene.captions("zh")[0] for scene in scenes[:64]]
    rows = fidelity_rows(reference, pixels, queries, ("bf16", "int8"))
    print("\n" + "\n".join(f"{p}: {row.to_json()}" for p, row in rows.items()))
    assert rows["fp32"].mean_cosine == 1.0 and rows["fp32"].top10_agreement == 1.0
    measured = ["bf16", "int8"] if cpu.has_native_bf16() else ["int8"]
    if not cpu.has_native_bf16():
        row = rows["bf16"]
        assert row.images == 0 and not row.passes(FIDELITY_BAR) and "no native bf16" in row.unavailable
        assert "bf16 not tried: this CPU has no native bf16" in choose_precision("auto", rows).reason
    for precision in measured:
        row = rows[precision]
        assert row.unavailable is None
        assert row.images == 256 and row.queries == 128 and row.k == 10 and row.img_s > 0
        assert -1.0 <= row.min_cosine <= row.mean_cosine < 1.0  # changed a little, never identical
        assert 0.0 <= row.top10_agreement <= 1.0
        assert row.passes(FIDELITY_BAR), row  # measured 0.9996 / 0.97 for int8 on this split
    # the derived encoder gives the same vectors as one loaded at that precision
    loaded = toy_encoders["int8"].encode_pixels(pixels[:8])
    derived = fidelity_rows(reference, pixels[:8], queries[:4], ("int8",))["int8"]
    assert derived.mean_cosine == pytest.approx(float(np.mean(np.sum(loaded * reference.encode_pixels(pixels[:8]),
                                                                      axis=1))), abs=1e-4)


def test_identity_names_the_precision(toy_encoders):
    ids = {p: e.identity for p, e in toy_encoders.items()}
    assert len(set(ids.values())) == 3 and all(e.resolved.location in ids[p] for p, e in toy_encoders.items())
    assert precision_identity("int8").startswith("int8:") and precision_identity("fp32") == "fp32"
    assert unavailable_reason("int8", "cuda") is not None and unavailable_reason("fp32", "cpu") is None


def test_runtime_named_by_one_rule_however_the_encoder_was_made(toy_encoders):
    """An encoder made at a precision and one derived with ``at_precision`` name the runtime that runs them (an
    int8 encoder made from settings once said "torch")."""
    from chapter09.onnx_runtime import fp32_runtime
    from chapter09.openvino_runtime import bf16_runtime
    from chapter09.precision import runtime_of

    assert runtime_of("int8") == "onnxruntime" and runtime_of("bf16", is_toy=True) == "torch"
    assert runtime_of("bf16") == bf16_runtime("cpu", False)
    assert runtime_of("fp32", is_toy=True) == fp32_runtime("cpu", True) and runtime_of("fp32", fp32_on="torch") == "torch"
    for precision, encoder in toy_encoders.items():
        assert encoder.runtime == runtime_of(precision, "cpu", is_toy=True), precision
        assert toy_encoders["fp32"].at_precision(precision).runtime == encoder.runtime, precision


def _row(precision, cosine, agreement, img_s, unavailable=None):
    return Fidelity(precision, 256, 40, cosine, cosine - 0.01, cosine, agreement, 10, img_s, unavailable)


def test_auto_picks_the_fastest_precision_that_passes_the_bar():
    fp32 = _row("fp32", 1.0, 1.0, 18.0)
    good = {"fp32": fp32, "bf16": _row("bf16", 0.999, 0.98, 36.0), "int8": _row("int8", 0.995, 0.93, 55.0)}
    choice = choose_precision("auto", good)
    assert choice.precision == "int8" and "int8" in choice.reason and "0.99" in choice.reason

    int8_drifts = {**good, "int8": _row("int8", 0.985, 0.95, 55.0)}  # cosine under the bar
    choice = choose_precision("auto", int8_drifts)
    assert choice.precision == "bf16" and "int8 rejected" in choice.reason

    reorders = {**good, "int8": _row("int8", 0.995, 0.85, 55.0)}  # top-10 agreement under the bar
    assert choose_precision("auto", reorders).precision == "bf16"

    slow_bf16 = {**good, "bf16": _row("bf16", 0.999, 0.98, 9.0), "int8": _row("int8", 0.97, 0.8, 55.0)}
    assert choose_precision("auto", slow_bf16).precision == "fp32"  # bf16 passes but is slower than fp32 here

    no_bf16 = {"fp32": fp32, "bf16": _row("bf16", float("nan"), float("nan"), 0.0, "no native bf16"),
               "int8": _row("int8", 0.97, 0.8, 55.0)}
    choice = choose_precision("auto", no_bf16)
    assert choice.precision == "fp32" and "bf16 not tried: no native bf16" in choice.reason

    strict = FidelityBar(min_mean_cosine=0.999, min_top10_agreement=0.95)
    assert choose_precision("auto", good, strict).precision == "bf16"

    asked = choose_precision("int8", int8_drifts)
    assert asked.precision == "int8" and "MISSES" in asked.reason


def test_topk_agreement_counts_shared_results():
    ref = np.array([[5.0, 4, 3, 2, 1, 0]])
    assert topk_agreement(ref, ref, 3) == 1.0
    assert topk_agreement(ref, np.array([[5.0, 4, 0, 2, 1, 3]]), 3) == pytest.approx(2 / 3)
    assert topk_agreement(ref, ref, 10) == 1.0  # k larger than the sample: all of it


# ----------------------------------------------------------------------------- the query cache
def test_query_cache_hit_costs_no_forward_pass(monkeypatch):
    from chapter09.capstone.search import queries
    from chapter09.capstone.search.query_cache import QueryCache
    from chapter09.clip import clip_encoder

    settings = Settings(mode="toy", device="cpu", precision="int8")
    cache = QueryCache(maxsize=8)
    model = clip_encoder("clip", settings).model  # the int8 towers (ONNX Runtime sessions)
    calls = []
    original = model.get_text_features
    monkeypatch.setattr(model, "get_text_features", lambda *a, **k: calls.append(1) or original(*a, **k))

    first = queries.encode_query("a red circle", "clip", settings, cache=cache)
    assert len(calls) == 1 and cache.stats()["misses"] == 1
    again = queries.encode_query("  a red circle ", "clip", settings, cache=cache)  # same query after strip
    assert len(calls) == 1 and cache.stats()["hits"] == 1
    assert np.array_equal(first[0], again[0]) and first[1:] == again[1:]
    again[0][:] = 0  # a caller scribbling on its copy does not change the cache
    assert np.array_equal(queries.encode_query("a red circle", "clip", settings, cache=cache)[0], first[0])
    assert len(calls) == 1

    queries.encode_query("a blue square", "clip", settings, cache=cache)
    assert len(calls) == 2
    other = Settings(mode="toy", device="cpu", precision="fp32")  # another encoder identity: its own entry
    queries.encode_query("a red circle", "clip", other, cache=cache)
    assert cache.stats()["misses"] == 3 and len(cache) == 3
    queries.encode_query("a red circle", "clip", settings, cache=None)  # no cache: always encodes
    assert len(calls) == 3


def test_query_cache_replays_warnings_and_evicts_least_recent():
    from chapter09.capstone.search import queries
    from chapter09.capstone.search.query_cache import QueryCache

    settings = Settings(mode="toy", device="cpu", precision="int8")
    cache = QueryCache(maxsize=2)
    long_query = " ".join(["red circle"] * 60)
    seen = []
    queries.encode_query(long_query, "clip", settings, warn=seen.append, cache=cache)
    queries.encode_query(long_query, "clip", settings, warn=seen.append, cache=cache)
    assert cache.hits == 1 and len(seen) == 2 and seen[0] == seen[1] and "tokens" in seen[0]

    for text in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        cache.lookup(text, lambda warn, t=text: (np.zeros(2), t))
    assert list(cache._items) == ["a", "c"]


# ----------------------------------------------------------------------------- index and search
def test_index_records_the_precision_and_search_follows_it(tmp_path, capsys):
    from chapter09.capstone.__main__ import main as capstone
    from chapter09.capstone.precision.library import query_settings, read_sidecar
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path / "library", n=40, seed=config.TOY_HELDOUT_SEED + HELDOUT_OFFSET + 1,
                            split="heldout")
    index = tmp_path / "index"
    assert capstone(["index", str(library), "--index", str(index), "--models", "toy", "--precision", "int8",
                     "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"]["precision"] == "int8"
    fidelity = report["precision"]["fidelity"]["clip"]["int8"]
    assert fidelity["images"] == 40 and 0.99 <= fidelity["mean_cosine"] < 1.0 and fidelity["top10_agreement"] >= 0.9
    recorded = read_sidecar(index)
    assert recorded["precision"] == "int8" and recorded["identity"] == precision_identity("int8")
    assert query_settings(index, Settings(mode="toy")).precision == "int8"
    assert query_settings(index, Settings(mode="toy", precision="fp32")).precision == "fp32"  # asked wins

    # auto on the same index keeps the recorded choice without measuring again
    assert capstone(["index", str(library), "--index", str(index), "--models", "toy", "--no-progress", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["precision"]["precision"] == "int8" and "keeps int8" in again["precision"]["reason"]
    assert again["added"] == 0

    assert capstone(["search", "--index", str(index), "--text", "a red circle", "--models", "toy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hits"]


@pytest.mark.unit
def test_a_bf16_index_reads_its_queries_at_fp32():
    """One query gains nothing from bf16 and the cold quick search needs a tower ONNX Runtime runs: a bf16 index's
    queries are encoded at fp32 (the reference bf16 passed its bar against); int8 and fp32 keep their own."""
    from chapter09.capstone.precision.library import query_precision

    assert [query_precision(p) for p in ("bf16", "int8", "fp32", None)] == ["fp32", "int8", "fp32", None]


def test_int8_conversion_is_cached_by_weights_not_by_folder(tmp_path, toy_encoders):
    import shutil

    import torch
    from transformers import AutoModel

    from chapter09.models import quiet_loading
    from chapter09.onnx_int8 import Int8Clip

    location = toy_encoders["fp32"].resolved.location
    copy_dir = shutil.copytree(location, tmp_path / "same-weights-elsewhere")
    with quiet_loading():
        first = Int8Clip(AutoModel.from_pretrained(location), cache=tmp_path / "cache")
        made = (first.folder / "image.int8.onnx").stat().st_mtime_ns
        again = Int8Clip(AutoModel.from_pretrained(copy_dir), cache=tmp_path / "cache")
        changed = AutoModel.from_pretrained(location)
    assert again.folder == first.folder and (again.folder / "image.int8.onnx").stat().st_mtime_ns == made
    with torch.no_grad():
        changed.visual_projection.weight.mul_(1.5)  # fine-tuned weights must not reuse the old conversion
    assert Int8Clip(changed, cache=tmp_path / "cache").folder != first.folder
    pixels = torch.rand(4, 3, 64, 64)
    with torch.inference_mode():
        reference = toy_encoders["fp32"].model.get_image_features(pixel_values=pixels)
    reference = getattr(reference, "pooler_output", reference)
    cosine = torch.nn.functional.cosine_similarity(first.get_image_features(pixel_values=pixels), reference)
    assert cosine.min() > 0.99 and cosine.max() < 1.0  # int8, and close
