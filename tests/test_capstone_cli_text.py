"""The command line's text output (``cli_text``) and the light ``--help`` (issue 30: each command imports what it
needs, so parsing the arguments loads none of the heavy libraries)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chapter09.capstone.cli_text import dedup_lines, match_lines, place_text

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def test_match_lines_best_first_and_what_the_encoder_read_only_when_it_differs():
    rows = [{"text": "a cat", "encoded_text": "a cat", "score": 0.12, "probability": 0.2},
            {"text": "一只狗", "encoded_text": "a dog", "score": 0.31, "probability": 0.8}]
    lines = match_lines(rows)
    assert lines == ["  +0.310  p=0.800  一只狗   (read as: a dog)", "  +0.120  p=0.200  a cat"]


def test_dedup_lines_count_every_group_and_pair_but_list_fifty_pairs():
    pairs = [{"a": f"a{i}.jpg", "b": f"b{i}.jpg", "cosine": 0.99} for i in range(60)]
    result = {"exact_groups": [["x.jpg", "copy/x.jpg"]], "near_pairs": pairs, "threshold": 0.95}
    lines = dedup_lines(result)
    assert lines[0] == "exact duplicates (same bytes): 1 groups"
    assert lines[1] == "  x.jpg  ==  copy/x.jpg"
    assert lines[2] == "near duplicates (cosine >= 0.95): 60 pairs"
    assert len(lines) == 3 + 50 and lines[-1].endswith("a49.jpg  ~  b49.jpg")


def test_place_text_names_the_place_then_the_position():
    hit = {"place": {"name": "Hangzhou", "name_zh": "杭州", "admin": "Zhejiang Sheng", "country": "CN"},
           "lat": 30.27412, "lon": 120.15515}
    assert place_text(hit) == "Hangzhou 杭州, Zhejiang Sheng, CN (30.2741, 120.1552)"
    assert place_text({"place": None, "lat": 1.0, "lon": 2.0}) == "(1.0000, 2.0000)"


def test_help_imports_no_heavy_library():
    probe = ("import runpy, sys; sys.argv = ['capstone', '--help']\n"
             "try:\n    runpy.run_module('chapter09.capstone', run_name='__main__')\nexcept SystemExit as e:\n"
             "    code = e.code\n"
             "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & "
             "{'torch', 'transformers', 'lancedb', 'pyarrow', 'faiss', 'gradio', 'ray'}), code)")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert "usage: python -m chapter09.capstone" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "HEAVY [] 0", out.stderr[-2000:]
