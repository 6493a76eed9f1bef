"""`bench --json` runs end to end on a tiny setting and reports consistent figures under the README's keys.

No timing asserts: speeds depend on the machine and its load. What is checked is that every row was
measured (positive), that the derived figures are the ratios of the measured ones, and that the
fidelity figures and the `auto` pick obey their definitions.
"""
import json

import pytest

from chapter09.capstone.__main__ import main as capstone
from chapter09.fidelity import FIDELITY_BAR
from chapter09.precision import PRECISIONS, unavailable_reason

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.e2e]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import contextlib
    import io

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("CH09_CACHE", str(tmp_path_factory.mktemp("cache")))  # the bench model's int8 export
        code = capstone(["bench", "--images", "12", "--batch-size", "4", "--naive-images", "2", "--sizes", "2000",
                         "--append-rows", "3000", "--queries", "20", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


def test_encoding_rows_are_measured_and_consistent(report):
    available = [p for p in PRECISIONS if unavailable_reason(p, "cpu") is None]
    encoding = report["encoding"]
    assert encoding["images"] == 12 and encoding["batch_size"] == 4 and encoding["naive_fp32_img_s"] > 0
    for key in ("pipeline_img_s", "model_only_img_s", "efficiency", "speed_up"):
        assert sorted(report[key]) == sorted(available), key
    naive = encoding["naive_fp32_img_s"]
    for p in available:
        pipeline, ceiling = report["pipeline_img_s"][p], report["model_only_img_s"][p]
        assert pipeline > 0 and ceiling > 0
        assert report["efficiency"][p] == pytest.approx(pipeline / ceiling, abs=2e-3)
        assert report["speed_up"][p] == pytest.approx(pipeline / naive, rel=0.02)
        assert encoding["pipeline_runs"][p]["encoded"] == 12  # build_index stored every photo
        run = encoding["pipeline_runs"][p]
        assert 0 < run["worker_startup_share"] and run["batches"] == 3
        assert run["cpu_main_s"] > 0 and run["cpu_decode_s"] > 0 and 0 < run["decode_cpu_share"] < 1  # 12 > 2 batches: 2 workers
        assert run["seconds"] >= run["before_first_forward_s"] + run["forward_s"] + run["after_last_forward_s"] - 0.02
        assert 0 < encoding["text_p50_ms"][p] <= encoding["text_query_ms"][p]["p95_ms"]
    if "int8" in available and "bf16" in available:
        assert report["int8_over_bf16"] == pytest.approx(
            report["pipeline_img_s"]["int8"] / report["pipeline_img_s"]["bf16"], rel=0.01)


def _check_fidelity(fidelity: dict, auto: str, images: int) -> None:
    assert fidelity["fp32"]["mean_cosine"] == 1.0 and fidelity["fp32"]["top10_agreement"] == 1.0
    assert -1 <= fidelity["fp32"]["pairwise_cosine"] <= 1
    for p, row in fidelity.items():
        if p == "fp32" or row["unavailable"]:
            continue
        assert row["images"] == images and row["queries"] > 0
        assert -1 <= row["min_cosine"] <= row["mean_cosine"] <= 1 and 0 <= row["top10_agreement"] <= 1
        assert row["img_s"] > 0
    chosen = fidelity[auto]
    assert auto == "fp32" or (chosen["mean_cosine"] >= FIDELITY_BAR.min_mean_cosine
                              and chosen["top10_agreement"] >= FIDELITY_BAR.min_top10_agreement)
    passing = [p for p, row in fidelity.items() if p == "fp32" or (
        not row["unavailable"] and row["mean_cosine"] >= FIDELITY_BAR.min_mean_cosine
        and row["top10_agreement"] >= FIDELITY_BAR.min_top10_agreement)]
    assert chosen["img_s"] == max(fidelity[p]["img_s"] for p in passing)  # the fastest that passes


def test_fidelity_and_the_auto_pick(report):
    encoding = report["encoding"]
    _check_fidelity(encoding["fidelity"], encoding["auto"]["precision"], 12)
    _check_fidelity(encoding["fidelity_trained"], encoding["auto"]["trained_precision"], 256)
    targets = encoding["targets"]
    assert targets["auto_precision"] == encoding["auto"]["precision"]
    for p, row in targets["efficiency"].items():
        assert row["value"] == report["efficiency"][p] and row["met"] == (row["value"] >= 0.85)
    for p, row in targets["speed_up"].items():
        assert row["value"] == report["speed_up"][p] and row["met"] == (row["value"] >= 5.0)


def test_startup_store_and_search_rows(report):
    search = report["startup"]["search"]
    assert "error" not in search, search
    for key in ("imports_s", "index_open_s", "model_load_s", "first_query_s", "command_s"):
        assert search[key] > 0, key
    assert search["hits"] > 0
    serve = report["startup"]["serve"]
    assert "error" not in serve, serve
    assert serve["ui_up_s"] > 0
    assert isinstance(serve["first_answer_s"], float), serve  # answered through the UI's HTTP API
    assert serve["first_answer_s"] >= serve["ui_up_s"]
    assert report["store"]["rows"] == 3000
    assert [row["vectors"] for row in report["store_search"]] == [2000]
    row = report["store_search"][0]
    assert row["exact"]["p50_ms"] > 0 and row["ann"]["recall_at_10"] >= 0.9
    assert report["load_before"] and report["load_after"] and report["seconds"] > 0
