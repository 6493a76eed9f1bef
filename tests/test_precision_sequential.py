"""The precision check is sequential (issue 34): it looks at its verdict after each slice of the sample and stops
as soon as what ``auto`` would pick is clear at 95 % over all looks; a close call reads the whole sample."""
import time

import numpy as np
import pytest

from chapter09 import config
from chapter09.fidelity import FIDELITY_BAR, Fidelity, Looks, clear_verdict, measure_fidelity
from chapter09.models import Settings

DIM, QUERIES = 32, 64


class _Encoder:
    """An encoder of "pixels" that are already vectors: the reference normalises them, a candidate adds noise of
    a chosen size first (``noise`` 0 is the reference itself)."""

    def __init__(self, noise: float, seed: int = 0):
        self.noise, self.rng = noise, np.random.default_rng(seed)
        self.texts = np.random.default_rng(99).normal(size=(QUERIES, DIM)).astype(np.float32)

    @staticmethod
    def _unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def encode_pixels(self, pixels):
        return self._unit(pixels + self.noise * self.rng.normal(size=pixels.shape).astype(np.float32))

    def encode_texts(self, texts):
        return self._unit(self.texts[:len(texts)])


def _sample(n: int = 96, seed: int = 3):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _looks(pixels, count: int, read: list, for_auto: bool = True):
    def slices():
        for i in range(count):
            read.append(i)
            yield pixels[i::count]
    return Looks(slices(), count, len(pixels), for_auto=for_auto)


class _SlowEncoder(_Encoder):
    def encode_pixels(self, pixels):
        time.sleep(0.002 * len(pixels))  # slower than the reference by far
        return super().encode_pixels(pixels)


def _row(agreement: float, mean_cosine: float = 0.9995, min_cosine: float = 0.999, images: int = 32, k: int = 3):
    return Fidelity("int8", images, QUERIES, mean_cosine, min_cosine, 1.0, agreement, k, 50.0)


def test_clear_verdict_passes_misses_or_waits_at_95_percent_over_all_looks():
    assert clear_verdict(_row(0.99), FIDELITY_BAR, looks=3) is True
    assert clear_verdict(_row(0.60), FIDELITY_BAR, looks=3) is False
    assert clear_verdict(_row(0.91), FIDELITY_BAR, looks=3) is None  # within the margin (+-0.046 on 192 slots)
    assert clear_verdict(_row(0.99, mean_cosine=0.97, min_cosine=0.95), FIDELITY_BAR, looks=3) is False
    assert clear_verdict(_row(0.99, mean_cosine=0.97, min_cosine=0.9), FIDELITY_BAR, looks=3) is None  # wide spread
    # more looks share the same confidence, so each look's interval is wider: 0.94 is clear at one look only
    assert clear_verdict(_row(0.94), FIDELITY_BAR, looks=1) is True
    assert clear_verdict(_row(0.94), FIDELITY_BAR, looks=3) is None


def test_a_clear_candidate_stops_the_check_after_the_first_slice():
    pixels, read, vectors = _sample(), [], {}
    rows = measure_fidelity(_Encoder(0), {"int8": _Encoder(0.001, seed=1)}, _looks(pixels, 3, read),
                            ["q"] * QUERIES, vectors_out=vectors)
    assert read == [0]  # the other two slices were never decoded
    assert rows["int8"].images == rows["fp32"].images == 32 and rows["int8"].k == 3
    assert rows["int8"].passes() and vectors["int8"].shape == (32, DIM)


def test_a_clearly_bad_candidate_is_rejected_early_too():
    read = []
    rows = measure_fidelity(_Encoder(0), {"int8": _Encoder(3.0, seed=1)}, _looks(_sample(), 3, read),
                            ["q"] * QUERIES)
    assert read == [0] and not rows["int8"].passes()


def test_a_close_call_reads_the_whole_sample_and_is_judged_at_top_10():
    """Noise tuned so agreement lands near the 0.9 bar: no look can tell, so all three are read (an explicit
    precision: auto would also stop for speed, the next test)."""
    read = []
    rows = measure_fidelity(_Encoder(0), {"int8": _Encoder(0.09, seed=1)}, _looks(_sample(), 3, read, False),
                            ["q"] * QUERIES)
    assert read == [0, 1, 2]
    assert rows["int8"].images == 96 and rows["int8"].k == 10
    assert 0.8 < rows["int8"].top10_agreement < 0.97


@pytest.mark.parametrize("for_auto, slices_read", [(True, [0]), (False, [0, 1, 2])])
def test_a_candidate_slower_than_fp32_is_not_measured_further_by_auto(for_auto, slices_read):
    """fp32 always passes, so auto cannot pick a slower candidate whatever its fidelity: a close call that is also
    slower stops the check at once. An explicit precision is measured on the whole sample."""
    read = []
    rows = measure_fidelity(_Encoder(0), {"bf16": _SlowEncoder(0.09, seed=1)}, _looks(_sample(), 3, read, for_auto),
                            ["q"] * QUERIES)
    assert read == slices_read and rows["bf16"].img_s < rows["fp32"].img_s


def test_one_look_is_the_whole_sample_as_before():
    pixels = _sample(40)
    rows = measure_fidelity(_Encoder(0), {"int8": _Encoder(0.001, seed=1)}, pixels, ["q"] * QUERIES)
    assert rows["int8"].images == 40 and rows["int8"].k == 10


class _OwnQueries(_Encoder):
    """A candidate whose text tower is of no use (random query vectors), counting its calls."""

    calls = 0

    def encode_texts(self, texts):
        _OwnQueries.calls += 1
        return self._unit(np.random.default_rng(7).normal(size=(len(texts), DIM)).astype(np.float32))


def test_a_precision_searched_with_fp32_queries_is_ranked_with_them():
    """A bf16 index's queries are encoded at fp32 (``query_precision``), so its check ranks the candidate's images
    with the reference's query vectors, as search will, and never runs the candidate's text tower."""
    from chapter09.capstone.precision.library import FP32_QUERIES

    assert FP32_QUERIES == ("bf16",)
    pixels, queries = _sample(), ["q"] * QUERIES
    _OwnQueries.calls = 0
    shared = measure_fidelity(_Encoder(0), {"bf16": _OwnQueries(0.001, seed=1)}, pixels, queries,
                              fp32_queries=FP32_QUERIES)["bf16"]
    assert _OwnQueries.calls == 0 and shared.text_mean_cosine == 1.0 and shared.top10_agreement > 0.95
    own = measure_fidelity(_Encoder(0), {"bf16": _OwnQueries(0.001, seed=1)}, pixels, queries)["bf16"]
    assert _OwnQueries.calls == 1 and own.top10_agreement < 0.5


@pytest.fixture(scope="module")
def big_library(tmp_path_factory):
    from chapter09.toyworld import write_dataset

    return write_dataset(tmp_path_factory.mktemp("lib") / "library", n=100, seed=config.TOY_HELDOUT_SEED + 37,
                         split="heldout")


def test_index_keeps_the_rows_of_a_check_that_stopped_early(big_library, tmp_path, monkeypatch):
    """On the toy twin bf16 and int8 agree with fp32 well beyond the bar, so the check stops after its first look:
    only that slice is decoded, its vectors become rows, and the report says the sample was cut short."""
    from chapter09.capstone.precision import library as library_precision

    monkeypatch.setenv("CH09_CACHE", str(tmp_path / "cache"))
    decoded = []
    real = library_precision.decode_sample
    monkeypatch.setattr(library_precision, "decode_sample",
                        lambda root, paths, *a: decoded.append(len(paths)) or real(root, paths, *a))
    lines = []
    report = library_precision.pick_for_index(big_library, tmp_path / "index", ["clip"],
                                              Settings(mode="toy", device="cpu"), "int8", log=lines.append)
    row = report["fidelity"]["clip"]["int8"]
    assert row["top10_agreement"] >= 0.95 and row["mean_cosine"] >= 0.995, row  # measured, not assumed
    assert decoded == [32] and row["images"] == 32 and row["k"] == 3
    assert "of 96 planned" in report["sample"] and any("look 1 of 3" in line for line in lines)
    rows = report["sample_rows"]
    assert len(rows["items"]) == 32 and rows["vectors"]["clip"].shape[0] == 32


def test_a_sample_with_unreadable_files_says_so_not_that_the_check_stopped(tmp_path, monkeypatch):
    from chapter09.capstone.precision import library as library_precision
    from chapter09.toyworld import write_dataset

    monkeypatch.setenv("CH09_CACHE", str(tmp_path / "cache"))
    library = write_dataset(tmp_path / "library", n=12, seed=config.TOY_HELDOUT_SEED + 41, split="heldout")
    for name in ("broken-1.jpg", "broken-2.jpg"):
        (library / name).write_bytes(b"\xff\xd8 not a jpeg")
    report = library_precision.pick_for_index(library, tmp_path / "index", ["clip"], Settings(mode="toy", device="cpu"),
                                              "int8", log=lambda line: None)
    assert report["sample"].startswith("12 library images (2 unreadable left out),"), report["sample"]
    assert "planned" not in report["sample"]
