"""The guided capstone tour (`python run_all_sections.py capstone`) runs clean in the toy world and records real figures."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_capstone_tour_runs_and_every_chinese_route_finds_the_target(tmp_path):
    env = {**os.environ, "CH09_OUT": str(tmp_path), "CH09_MODELS": "toy", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "run_all_sections.py", "capstone"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(next(tmp_path.rglob("results.json")).read_text())
    ranks = results["chinese_query_rank_by_strategy"]
    routes = ("translate", "multilingual", "chinese_clip")  # plain CLIP reads English only, like OpenAI's
    assert set(ranks) == {"clip", *routes}
    assert all(isinstance(ranks[name], int) and ranks[name] <= 5 for name in routes), ranks
    recall = results["strategy_recall_zh"]
    assert all(recall[name]["R@5"] >= 0.9 for name in routes) and recall["clip"]["R@5"] <= 0.1, recall
    hard = results["hard_strategy_recall_zh"]  # the hard split parts them: every route lower than on the plain one
    assert all(hard[name]["R@1"] < recall[name]["R@1"] - 0.05 for name in routes), (hard, recall)
    assert "route: direct" in run.stdout and "[zh] " in run.stdout, run.stdout[-2000:]
