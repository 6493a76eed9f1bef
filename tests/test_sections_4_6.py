"""Sections 9.4-9.6 through the runner: in the toy world, and on the real-model routes (BLIP-2, SmolVLM)
with tiny random checkpoints of the real classes named by CH09_MODEL_DIR_*."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lesson_expectations import check_section

from chapter09 import config

ROOT = Path(__file__).resolve().parents[1]


def _twin_exists(role: str) -> bool:
    return (config.model_spec(role).toy_path / "config.json").exists()


def _run(args: list[str], out: Path, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    run = subprocess.run([sys.executable, "run_all_sections.py", *args, "--out", str(out)], cwd=ROOT, env=environment,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    return run


def _results(out: Path, number: str) -> dict:
    return json.loads((out / f"section_{number}" / "results.json").read_text(encoding="utf-8"))


@pytest.mark.slow  # ~1.5-3 min each on 2 cores: CI's default tier stays under its budget; the slow tier runs it
def test_sections_4_to_6_run_clean_on_the_toy_world(tmp_path):
    run = _run(["4-6", "--models", "toy"], tmp_path)
    assert "3 of 3 sections ran clean" in run.stdout
    assert "[toy world]" not in run.stdout  # --models toy chose the twins: the terminal is not told again
    for name in ("section_9.5/precision_latency.png", "section_9.6/models_latency.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    assert "onnxruntime-fp32" in (tmp_path / "section_9.5" / "precision_table.md").read_text()
    assert "tiny VLM" in (tmp_path / "section_9.6" / "models_table.md").read_text()

    for number in ("9.4", "9.5", "9.6"):
        check_section(tmp_path, number)
    r4 = _results(tmp_path, "9.4")
    if _twin_exists("blip2"):  # the twin fits anywhere: BLIP-2's route, opened up in section 3
        assert r4["vqa_route"] == "blip2" and "fits" in r4["vqa_route_reason"]
        assert r4["image_token_slots"] == r4["num_query_tokens"] == 16  # the processor expands <image> per query
        assert r4["visual_tokens"] == {"blip2": 16, "tiny_vlm_9_5": 65}
        assert r4["blip2_shapes"]["language_projection output = LM input embeddings"] == [1, 16, 160]
        assert r4["blip2_caption_accuracy_en"] >= 0.0 and r4["blip2_zero_shot_vqa"]["all"] >= 0.0  # floors: test_toy_blip2
    else:
        assert r4["vqa_route"] == "blip" and "no blip2 twin" in r4["vqa_route_reason"]
        assert r4["image_token_slots"] == r4["num_query_tokens"] == 32  # the processor expands <image> per query
    if _twin_exists("captioner"):
        assert r4["caption_accuracy_en"] >= 0.85 and r4["caption_accuracy_zh"] >= 0.85, r4
        assert (tmp_path / "section_9.4" / "captions.png").stat().st_size > 10_000
    else:
        assert "captioner" in r4["captions_skipped"]
    if _twin_exists("vqa"):
        assert r4["vqa_accuracy"] >= 0.85, r4
        assert len(r4["chat"]) == 4 and (tmp_path / "section_9.4" / "vqa_accuracy.png").exists()
    else:
        assert "vqa" in r4["vqa_skipped"]

    r5 = _results(tmp_path, "9.5")
    assert r5["demo_loss_last"] < 0.5 * r5["demo_loss_first"]
    assert r5["smolvlm"].startswith("skipped") and "no small_vlm twin" in r5["smolvlm"]
    rows = {row["variant"]: row for row in r5["precision_rows"]}
    assert list(rows) == ["fp32", "bf16", "int8-dynamic", "onnxruntime-fp32"]
    assert all(row["ms_per_item"] > 0 for row in rows.values())
    assert abs(rows["bf16"]["weights_mb"] / rows["fp32"]["weights_mb"] - 0.5) < 0.01
    assert rows["int8-dynamic"]["weights_mb"] < 0.5 * rows["fp32"]["weights_mb"]
    assert rows["onnxruntime-fp32"]["quality"] == rows["fp32"]["quality"]  # same weights, same greedy decoding
    assert abs(rows["int8-dynamic"]["quality"] - rows["fp32"]["quality"]) <= 0.05
    assert rows["fp32"]["quality"] == r5["tiny_vlm_accuracy"]

    r6 = {row["model"]: row for row in _results(tmp_path, "9.6")["models"]}
    assert not [name for name, row in r6.items() if row["weights"] == "failed to run"]
    measured = ["CLIP", "sentence-transformers CLIP", "multilingual text encoder", "tiny VLM (toy)"]
    measured += [name for name, role in (("BLIP captioner", "captioner"), ("BLIP-VQA", "vqa"),
                                         ("Chinese-CLIP", "chinese_clip"), ("MarianMT en-zh", "translator_en_zh"),
                                         ("MarianMT zh-en", "translator_zh_en")) if _twin_exists(role)]
    measured += ["BLIP-2 OPT-2.7b"] if _twin_exists("blip2") else []
    for name in measured:
        assert r6[name]["ms_per_item"] > 0 and r6[name]["parameters_m"] > 0 and r6[name]["memory_mb"] > 0, r6[name]
    for name in ("SmolVLM-256M-Instruct",) + (() if _twin_exists("blip2") else ("BLIP-2 OPT-2.7b",)):
        assert r6[name]["weights"] == "not available here" and "ms_per_item" not in r6[name]


@pytest.mark.slow  # ~3.5 min of one core; the real classes' code paths also run in tests/test_vl_hub_classes.py
def test_sections_4_and_5_take_the_real_routes_when_weights_are_named(tmp_path):
    """BLIP-2 and SmolVLM as a learner with the weights would have them (tiny and random here): the route
    switches to BLIP-2 with chat memory, and SmolVLM captions and answers."""
    from test_vl_hub_classes import _save_blip2, _save_smolvlm, _tokenizer

    blip2 = _save_blip2(tmp_path / "blip2", _tokenizer())
    smolvlm = _save_smolvlm(tmp_path / "smolvlm", _tokenizer())
    out = tmp_path / "out"
    run = _run(["4,5", "--models", "auto"], out, CH09_MODEL_DIR_BLIP2=str(blip2), CH09_MODEL_DIR_SMALL_VLM=str(smolvlm))
    assert "2 of 2 sections ran clean" in run.stdout
    r4 = _results(out, "9.4")
    assert r4["vqa_route"] == "blip2" and "fits" in r4["vqa_route_reason"]
    assert r4["image_token_slots"] == r4["num_query_tokens"] == 4
    assert len(r4["chat"]) == 3 and "The model reads the history" in run.stdout
    if _twin_exists("captioner"):
        assert len(r4["blip2_captions"]) == 4
    r5 = _results(out, "9.5")
    assert len(r5["smolvlm"]["caption"]) == len(r5["smolvlm"]["answer"]) == 2
