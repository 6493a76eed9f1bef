"""`bench --json` runs end to end on a tiny setting and reports consistent figures under the README's keys.

No timing asserts: speeds depend on the machine and its load. What is checked is that every row was
measured (positive), that the derived figures are the ratios of the measured ones (the decode-aware
limit among them), that a ratio needing a precision the CPU lacks is "n/a" with the reason (on this
CPU, and as if bf16 were absent, ``CH09_HIDE_CPU_FEATURES=bf16``), and that the fidelity figures and
the `auto` pick obey their definitions. The store and engine parts of the bench are not run here:
``tests/test_capstone_store.py`` runs the store part at a tiny size, ``tests/test_capstone_store_ray.py``
both engines.
"""
import copy
import json
import sys
from pathlib import Path

import pytest

from chapter09 import config, cpu
from chapter09.capstone.__main__ import main as capstone
from chapter09.capstone.bench.decoding import limit_img_s
from chapter09.capstone.bench.encoding import _targets, format_encoding, precision_ratio, target_row
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
        code = capstone(["bench", "--images", "12", "--batch-size", "4", "--naive-images", "2", "--sizes", "",
                         "--append-rows", "0", "--no-engines", "--no-captioning", "--json"])
    assert code == 0
    return json.loads(out.getvalue())


@pytest.mark.slow  # the bench end to end: ~3 min of one core (tests/README: the slower tier)
def test_encoding_rows_are_measured_and_consistent(report):
    available = [p for p in PRECISIONS if unavailable_reason(p, "cpu") is None]
    encoding = report["encoding"]
    assert encoding["images"] == 12 and encoding["batch_size"] == 4 and encoding["naive_fp32_img_s"] > 0
    for key in ("pipeline_img_s", "model_only_img_s", "decode_only_img_s", "limit_img_s", "efficiency_vs_limit",
                "pipeline_over_model_only", "speed_up"):
        assert sorted(report[key]) == sorted(available), key
    assert sorted(encoding["cpu_efficiency_vs_limit"]) == sorted(available)
    assert sorted(encoding["skipped"]) == sorted(set(PRECISIONS) - set(available))
    naive = encoding["naive_fp32_img_s"]
    for p in available:
        pipeline, ceiling, decode = (report[k][p] for k in ("pipeline_img_s", "model_only_img_s", "decode_only_img_s"))
        assert pipeline > 0 and ceiling > 0 and decode > 0
        limit = 1 / (1 / ceiling + 1 / decode)
        # the report divides unrounded figures; the test re-derives them from the rounded ones
        assert report["limit_img_s"][p] == pytest.approx(limit, rel=0.01, abs=0.006) and limit < min(ceiling, decode)
        assert report["efficiency_vs_limit"][p] == pytest.approx(pipeline / limit, rel=0.03)
        # both figures are rounded to 0.01 img/s, the ratio to 0.001: re-derived, it may differ by that much
        rounding = 0.005 * (1 + pipeline / ceiling) / ceiling + 0.0005
        assert report["pipeline_over_model_only"][p] == pytest.approx(pipeline / ceiling, abs=rounding)
        assert 0 < encoding["pipeline_runs"][p]["model_only_mean_img_s"] <= ceiling + 0.01  # the fastest batch
        assert len(encoding["pipeline_runs"][p]["load_average"]) == 2
        assert all(0 < spread <= 1 for spread in encoding["pipeline_runs"][p]["bracket_spread"].values())
        decoded = encoding["decode_runs"][p]
        run = encoding["pipeline_runs"][p]
        spent = 1000 * (run["cpu_main_s"] + run["cpu_decode_s"]) / run["encoded"]
        assert encoding["cpu_efficiency_vs_limit"][p] == pytest.approx(
            (run["model_only_cpu_ms_per_image"] + decoded["cpu_ms_per_image"]) / spent, rel=0.03)
        assert decoded["images"] == 12 and decoded["img_s"] == decode and decoded["cpu_ms_per_image"] > 0
        # speed_up is rounded to 0.01: on a slow run (0.15x) that alone is 3 % of it
        assert report["speed_up"][p] == pytest.approx(pipeline / naive, rel=0.02, abs=0.006)
        assert encoding["pipeline_runs"][p]["encoded"] == 12  # build_index stored every photo
        run = encoding["pipeline_runs"][p]
        assert 0 < run["worker_startup_share"] and run["batches"] == 3
        assert run["cpu_main_s"] > 0 and run["cpu_decode_s"] > 0 and 0 < run["decode_cpu_share"] < 1  # 12 > 2 batches: 2 workers
        assert run["seconds"] >= run["before_first_forward_s"] + run["forward_s"] + run["after_last_forward_s"] - 0.02
        assert 0 < encoding["text_p50_ms"][p] <= encoding["text_query_ms"][p]["p95_ms"]
    ratio = report["int8_over_bf16"]
    if cpu.has_native_bf16() and "int8" in available:
        assert ratio["not_applicable"] is None and ratio["value"] == pytest.approx(
            report["pipeline_img_s"]["int8"] / report["pipeline_img_s"]["bf16"], rel=0.01)
    else:
        assert ratio["value"] is None and ratio["not_applicable"]


@pytest.mark.slow  # the bench end to end: ~3 min of one core (tests/README: the slower tier)
def test_cpu_features_head_the_report(report):
    features = report["cpu_features"]
    assert features["cpu"] == report["cpu"] and set(features["flags"]) == set(cpu.RELEVANT)
    assert features["native_bf16"] == cpu.has_native_bf16()
    assert report["encoding"]["cpu"] == cpu.describe()


@pytest.mark.slow  # the bench end to end: ~3 min of one core (tests/README: the slower tier)
def test_decoders_side_by_side(report):
    decoders = report["encoding"]["decoders"]
    rows = decoders["decoders"]
    assert {"pillow-draft", "pillow-full"} <= set(rows) and decoders["photos"] == 12
    assert set(rows) | set(decoders["missing"]) == {"pillow-draft", "simplejpeg", "pyturbojpeg", "pillow-full"}
    for name, row in rows.items():
        assert row["decode_img_s"] > 0 and row["with_preprocessing_img_s"] > 0, name
        assert 0 <= row["fed_vs_recipe_mean"] <= row["fed_vs_recipe_max"], name
    assert rows["pillow-full"]["fed_vs_recipe_max"] < 1e-6  # the published recipe's own decode
    assert rows["pillow-draft"]["max_grey_levels_vs_pillow_draft"] == 0
    assert rows[decoders["fastest_with_draft_pixels"]]["max_grey_levels_vs_pillow_draft"] == 0
    assert decoders["draft_speed_ratio"]["pillow-draft"] == 1.0
    best = decoders["fastest_with_draft_pixels"]
    assert decoders["kept"] == (best if decoders["draft_speed_ratio"][best] >= 1.1 else "pillow-draft")


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


@pytest.mark.slow  # the bench end to end: ~3 min of one core (tests/README: the slower tier)
def test_fidelity_and_the_auto_pick(report):
    encoding = report["encoding"]
    _check_fidelity(encoding["fidelity"], encoding["auto"]["precision"], 12)
    _check_fidelity(encoding["fidelity_trained"], encoding["auto"]["trained_precision"], 256)
    targets = encoding["targets"]
    assert targets["auto_precision"] == encoding["auto"]["precision"]
    for p, row in targets["efficiency_vs_limit"].items():
        if p in encoding["skipped"]:
            assert row["met"] is None and row["verdict"] == f"n/a ({encoding['skipped'][p]})"
        else:
            assert row["value"] == report["efficiency_vs_limit"][p] and row["met"] == (row["value"] >= 0.9)
    for p, row in targets["speed_up"].items():
        if p not in encoding["skipped"]:
            assert row["value"] == report["speed_up"][p] and row["met"] == (row["value"] >= 5.0)


@pytest.mark.slow  # the bench end to end: ~3 min of one core (tests/README: the slower tier)
def test_startup_rows(report):
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
    chinese = report["startup"]["cold_search_zh"]  # a Chinese query, cold, through the snapshot's translator
    assert "error" not in chinese, chinese
    assert chinese["quick_s"] > 0 and chinese["full_s"] > 0 and "translator_zh_en" in chinese["translator"]
    # --append-rows 0 --sizes "" --no-engines --no-captioning
    assert "store" not in report and "engines" not in report and "captioning" not in report
    assert report["load_before"] and report["load_after"] and report["seconds"] > 0


def test_limit_formula():
    assert limit_img_s(100.0, 100.0) == pytest.approx(50.0)
    assert limit_img_s(94.3, 1 / 0.0087) == pytest.approx(1 / (1 / 94.3 + 0.0087))


@pytest.mark.parametrize("hide", ["", "bf16"], ids=["this-cpu", "bf16-hidden"])
def test_ratios_needing_bf16_are_not_applicable_without_it(hide, monkeypatch):
    monkeypatch.setenv(config.ENV_HIDE_CPU_FEATURES, hide)
    ratio = precision_ratio({"fp32": 20.0, "bf16": 40.0, "int8": 60.0}, "int8", "bf16")
    row = target_row(ratio["value"], 1.3, ratio["not_applicable"])
    if cpu.has_native_bf16():
        assert ratio == {"value": 1.5, "not_applicable": None} and row["met"] is True and row["verdict"] == "met"
    else:
        assert ratio["value"] is None and "no native bf16" in ratio["not_applicable"]
        assert row["met"] is None and row["value"] is None and row["verdict"].startswith("n/a (bf16: this CPU has")
    assert precision_ratio({"int8": 60.0}, "int8", "fp32")["not_applicable"] == "fp32 was not measured in this run"


@pytest.mark.slow  # the bench end to end: ~3 min of one core (tests/README: the slower tier)
def test_the_report_as_if_bf16_were_absent(report, monkeypatch):
    """The figures this run measured, re-derived and printed as an AVX2-only CPU's bench would: bf16 not run,
    every ratio and target that needs it "n/a (reason)", never 0 or NaN."""
    monkeypatch.setenv(config.ENV_HIDE_CPU_FEATURES, "bf16")
    encoding = copy.deepcopy(report["encoding"])
    reason = unavailable_reason("bf16", "cpu")
    assert reason and "no native bf16" in reason
    for key in ("pipeline_img_s", "model_only_img_s", "decode_only_img_s", "limit_img_s", "efficiency_vs_limit",
                "cpu_efficiency_vs_limit", "pipeline_over_model_only", "speed_up", "pipeline_runs", "decode_runs", "text_query_ms", "text_p50_ms",
                "fidelity"):
        encoding[key].pop("bf16", None)
    encoding["skipped"]["bf16"] = reason
    for key, rows in (("int8_over_bf16", "pipeline_img_s"), ("int8_over_bf16_model_only", "model_only_img_s")):
        encoding[key] = precision_ratio(encoding[rows], "int8", "bf16")
        assert encoding[key]["value"] is None and encoding[key]["not_applicable"] == f"bf16: {reason}"
    targets = encoding["targets"] = _targets(encoding)
    assert targets["int8_over_bf16"]["met"] is None
    assert targets["efficiency_vs_limit"]["bf16"]["verdict"] == f"n/a ({reason})"
    text = format_encoding(encoding)
    assert f"int8 / bf16: pipeline n/a (bf16: {reason})" in text and f"bf16: not run ({reason})" in text
    assert " nan" not in text.lower()


# ----------------------------------------------------------------------------- captioning (bench.captioning)
def _captioning(captioners, decode_workers):
    from chapter09.capstone.bench.captioning import captioning_report

    return captioning_report(images=2, batch_sizes=(1,), batch_size=1, tokens=2, tiny=True, log=lambda *a: None,
                             captioners=captioners, decode_workers=decode_workers)


@pytest.fixture(scope="module")
def captioning():
    """The captioning rows at a tiny size: shrunken BLIP (the same classes and code paths), 2 photos, batch 1,
    2 tokens, no decode worker processes (their start-up is the slow tier's). Structure and consistency only:
    speeds of shrunken models mean nothing."""
    return _captioning(("blip",), 0)


def _check_captioning(captioning, captioners, decode_workers):
    from chapter09.capstone.bench.captioning import TARGETS, format_captioning
    from chapter09.captioning import CAPTION_PRECISIONS
    from chapter09.onnx_runtime import fp32_runtime

    available = [p for p in CAPTION_PRECISIONS if unavailable_reason(p, "cpu") is None]
    assert captioning["cpu"] == cpu.describe() and captioning["tiny"] is True
    assert captioning["decode_workers"] == decode_workers and captioning["decode_workers_as_caption_index"] is False
    assert captioning["load_before"] and captioning["load_after"] and captioning["seconds"] > 0
    rows = captioning["captioners"]
    assert list(rows) == list(captioners)
    for name, row in rows.items():
        assert sorted(row["precisions"]) == sorted(available), name
        assert sorted(row["skipped"]) == sorted(set(CAPTION_PRECISIONS) - set(available)), name
        assert row["parameters_m"] > 0 and row["image_side"] == 64
        for precision, m in row["precisions"].items():
            assert m["model_only"]["1"]["img_s"] > 0 and "_ids" not in m["model_only"]["1"]
            e2e = m["end_to_end"]["workers"]
            assert e2e["captioned"] == 2 and e2e["workers"] == decode_workers and e2e["route"] == "caption+translate"
            assert e2e["img_s"] > 0 and e2e["generate_s"] > 0 and e2e["translate_s"] == 0  # English only
            # both rates are rounded to 0.0001 img/s and the ratio to 0.001
            assert m["end_to_end_over_model_only"] == pytest.approx(e2e["img_s"] / m["model_only"]["1"]["img_s"],
                                                                    rel=0.01, abs=0.001)
            assert m["image_encoder_runtime"] == {"int8": "onnxruntime", "bf16": "torch"}.get(precision,
                                                                                            fp32_runtime())
            if precision == "fp32":
                assert "agreement_with_fp32" not in m
                # fp32 off torch: torch's fp32 measured beside it in the same run, and the ratio against it
                assert ("torch_encoder_model_only" in m) == (fp32_runtime() != "torch")
                if "torch_encoder_model_only" in m:
                    assert all(v > 0 for v in m["torch_encoder_model_only"].values())
                    assert "fastest_over_torch_fp32" in row
            else:
                agreement = m["agreement_with_fp32"]
                assert 0 <= agreement["token"] <= 1 and 0 <= agreement["exact"] <= 1 and agreement["images"] == 1
        fastest = row["fastest"]
        assert fastest == max(row["precisions"], key=lambda p: row["precisions"][p]["model_only"]["1"]["img_s"])
        other = row["precisions"][fastest]["end_to_end"]["other"]  # the other decode setting: 2 if none, none if 2
        assert other["workers"] == (0 if decode_workers else 2) and other["captioned"] == 2 and other["img_s"] > 0
        assert row["workers_over_other"] == pytest.approx(
            row["precisions"][fastest]["end_to_end"]["workers"]["img_s"] / other["img_s"], rel=0.01, abs=0.001)
        split = row["caption_translate"]
        assert split["precision"] == fastest and split["captioned"] == 2
        # the shrunken translator may take under the summary's 0.01 s rounding
        assert split["route"] == "caption+translate" and split["generate_s"] > 0 and split["translate_s"] >= 0
        assert split["translate_share"] == pytest.approx(
            split["translate_s"] / (split["generate_s"] + split["translate_s"]), abs=0.002)
    ratios = captioning["ratios"]
    if len(rows) == 2:
        blip, vit = (rows[n]["precisions"][rows[n]["fastest"]]["end_to_end"]["workers"]["img_s"]
                     for n in ("blip", "vit-gpt2"))
        assert ratios["vit_gpt2_over_blip_end_to_end"] == pytest.approx(vit / blip, rel=0.01, abs=0.001)
    else:
        assert "vit_gpt2_over_blip_end_to_end" not in ratios
    for label, target in ratios["targets"].items():
        assert target["met"] == (target["value"] >= target["want"]), label
    assert ratios["targets"]["blip fastest_over_fp32"]["want"] == TARGETS["blip_fastest_over_fp32"]
    text = format_captioning(captioning)
    assert text.startswith(f"captioning on {cpu.describe()}") and "caption+translate" in text
    assert all(f"{name} {p}" in text for name, row in rows.items() for p in row["precisions"])
    assert " nan" not in text.lower()


def test_captioning_rows_are_measured_and_consistent(captioning):
    _check_captioning(captioning, ("blip",), 0)


@pytest.mark.slow
def test_captioning_both_captioners_with_decode_workers():
    captioners = ("blip", "vit-gpt2")
    _check_captioning(_captioning(captioners, 2), captioners, 2)


def test_bench_captioning_options_reach_run_bench(monkeypatch, capsys):
    import chapter09.capstone.bench as bench

    seen = []
    monkeypatch.setattr(bench, "run_bench", lambda options, quiet: seen.append(options) or {"failed": {}})
    assert capstone(["bench", "--caption-images", "6", "--caption-batch-size", "3", "--caption-batch-sizes", "1,3",
                     "--caption-tokens", "5", "--captioners", "vit-gpt2", "--json"]) == 0
    o = seen[-1]
    assert (o.captioning, o.caption_images, o.caption_batch_size, o.caption_batch_sizes, o.caption_tokens,
            o.captioners) == (True, 6, 3, (1, 3), 5, ("vit-gpt2",))
    assert capstone(["bench", "--no-captioning", "--json"]) == 0 and seen[-1].captioning is False


@pytest.mark.unit
@pytest.mark.parametrize("flags, message", [
    (["--caption-images", "3", "--caption-batch-size", "2"], "--caption-images must be at least twice"),
    (["--captioners", "blip,llava"], "--captioners takes a comma list"),
    (["--sizes", "10,x"], "non-number"),
    (["--images", "-1"], "--images must be 0"),
    (["--out", "/no/such/folder/report.json"], "--out /no/such/folder/report.json: its folder does not exist"),
    (["--soak-s", "-1"], "--soak-s must be 0 (skip the soak) or more seconds"),
    (["--soak-s", "5", "--soak-images", "0"], "--soak-images must be at least 1"),
    (["--web-images", "500"], "--web-images must be 0 (skip) or at least 1000"),
    (["--peer-images", "0"], "--peer-images must be at least 1"),
])
def test_bench_options_name_the_bad_flag(flags, message, capsys):
    assert capstone(["bench", *flags]) != 0
    assert message in capsys.readouterr().err


@pytest.mark.unit
def test_a_failing_part_loses_no_other_figure(tmp_path, monkeypatch):
    """A part that raises is recorded under ``failed``; the parts after it still run and every figure measured is
    in the ``--out`` file; the command exits 1 so a script notices."""
    import chapter09.capstone.bench.captioning as captioning
    import chapter09.capstone.bench.store_search as store_search

    def broken(*args, **kwargs):
        raise RuntimeError("captioning broke")

    monkeypatch.setattr(captioning, "captioning_report", broken)
    monkeypatch.setattr(store_search, "run", lambda folder, **kwargs: {"store": {"sizes": list(kwargs["sizes"])}})
    out = tmp_path / "report.json"
    code = capstone(["bench", "--images", "0", "--sizes", "7", "--append-rows", "0", "--out", str(out), "--json"])
    saved = json.loads(out.read_text())
    assert code == 1
    assert saved["failed"] == {"captioning": "RuntimeError: captioning broke"}
    assert saved["store"] == {"sizes": [7]} and saved["cpu_features"] and "seconds" in saved


@pytest.mark.unit
def test_a_part_whose_module_is_missing_is_skipped_with_the_install_line(monkeypatch):
    import importlib.util

    import chapter09.capstone.bench as bench

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert bench.missing_for("engines") == "needs ray: pip install -r requirements-scale.txt"
    assert bench.missing_for("store_search") is None


@pytest.mark.unit
def test_captioning_stand_in_tokenizer_without_cn_clip(tmp_path, monkeypatch):
    """Without cn-clip's wheel the captioning bench takes the toy Chinese-CLIP twin's vocabulary (it crashed at
    the end of a 12-minute run before)."""
    import importlib.util

    from chapter09.capstone.bench.captioning import _stand_in_tokenizer

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cn_clip" else real(name, *a))
    tokenizer = _stand_in_tokenizer(tmp_path / "tok")
    assert tokenizer.vocab_size > 50 and any((tmp_path / "tok").iterdir())
    tokenizer.decode([60_000, 7])  # random weights emit ids far past a small vocabulary: decoding must not raise


def test_writer_ceiling_commits_every_row_it_times(tmp_path):
    """The engines table's writer ceiling is rows really committed through index's own writer (readable after)."""
    from chapter09.capstone.bench.engines import writer_limit
    from chapter09.capstone.store.database import Store

    out = writer_limit(tmp_path, rows=1000, dim=16, batch=32)
    assert out["rows"] == 1000 and out["rows_s"] == pytest.approx(1000 / out["seconds"], rel=0.2)
    store = Store.open(tmp_path / "writer-index")
    table = store.images(store.roles[0])
    assert len(table) == 1000 and len(set(table.catalog())) == 1000  # each row once, no duplicate commits


@pytest.mark.unit
def test_the_soak_is_skipped_by_default_and_says_how_to_run_it(tmp_path):
    out = tmp_path / "report.json"
    assert capstone(["bench", "--images", "0", "--sizes", "", "--append-rows", "0", "--no-captioning",
                     "--out", str(out), "--json"]) == 0
    saved = json.loads(out.read_text())
    assert "soak" not in saved and "--soak-s 600" in saved["skipped"]["soak"]
    assert "web" not in saved and "--web-images 10000" in saved["skipped"]["web"]
    assert "peer_rclip" not in saved and "--rclip-python" in saved["skipped"]["peer_rclip"]


@pytest.mark.unit
def test_the_web_and_rclip_parts_reach_the_report(tmp_path, monkeypatch):
    """``--web-images`` and ``--rclip-python`` run bench.web's and bench.peer_rclip's parts (stubbed here: each
    builds its own index and servers, minutes of work) with the options given, and their figures reach the file;
    an rclip interpreter that is not there is a skip with the line that installs it."""
    import chapter09.capstone.bench.peer_rclip as peer_rclip
    import chapter09.capstone.bench.web as web

    seen = {}

    def web_report(n, workdir, log):
        seen["web"] = n
        return {"images": n}

    def peer_report(images, python, work, log):
        seen["peer"] = (images, python)
        return {"rows": {}}

    monkeypatch.setattr(web, "web_report", web_report)
    monkeypatch.setattr(peer_rclip, "peer_report", peer_report)
    monkeypatch.setattr(peer_rclip, "format_report", lambda report: "rows")
    out = tmp_path / "report.json"
    base = ["bench", "--images", "0", "--sizes", "", "--append-rows", "0", "--no-captioning", "--out", str(out), "--json"]
    assert capstone([*base, "--web-images", "1000", "--rclip-python", sys.executable, "--peer-images", "9"]) == 0
    saved = json.loads(out.read_text())
    assert seen == {"web": 1000, "peer": (9, sys.executable)}
    assert saved["web"] == {"images": 1000} and saved["peer_rclip"] == {"rows": {}} and not saved["failed"]
    assert capstone([*base, "--rclip-python", str(tmp_path / "no-python")]) == 0
    assert "pip install rclip==3.3.0" in json.loads(out.read_text())["skipped"]["peer_rclip"]


@pytest.mark.slow  # a toy index made, `serve` started in a child process, 3 s of soak: 28-80 s here
def test_a_short_soak_is_written_to_the_bench_report(tmp_path):
    """``bench --soak-s 3`` on a 12-image toy index: ``serve`` in a child process, 20 clients; the report file holds
    the soak's figures, every request answered."""
    out = tmp_path / "report.json"
    assert capstone(["bench", "--images", "0", "--sizes", "", "--append-rows", "0", "--no-captioning",
                     "--soak-s", "3", "--soak-images", "12", "--out", str(out), "--json"]) == 0
    saved = json.loads(out.read_text())
    soak = saved["soak"]
    assert "soak" not in saved["skipped"] and not saved["failed"]
    assert soak["images"] == 12 and soak["requests"] > 20 and soak["answered"] == soak["requests"]
    assert soak["unanswered"] == 0 and soak["errors"] == 0 and soak["memory"]["to_s"] >= 2.9


def test_rclip_cold_query_is_measured_only_through_the_bench_flag(tmp_path, monkeypatch):
    """``--rclip-python`` is the one owner of rclip's interpreter: without it nothing is timed (no environment
    variable or default venv path is tried), a missing interpreter says where it looked, and a failing rclip is a
    reason, never an exception."""
    from chapter09.capstone.bench import startup

    monkeypatch.setenv("CH09_RCLIP_PYTHON", "/usr/bin/python3")  # no longer read by anything
    assert startup.rclip_cold_or_reason(None, str(tmp_path), str(tmp_path), tmp_path).startswith(
        "not measured (no --rclip-python")
    missing = str(tmp_path / "no-venv" / "python")
    assert missing in startup.rclip_cold_or_reason(missing, str(tmp_path), str(tmp_path), tmp_path)

    def broken(*_args):
        raise RuntimeError("rclip failed (1)")

    monkeypatch.setattr(startup, "rclip_cold", broken)
    python = str(tmp_path / "python")
    Path(python).write_text("")
    assert startup.rclip_cold_or_reason(python, str(tmp_path), str(tmp_path), tmp_path) == (
        "not measured (RuntimeError: rclip failed (1))")
