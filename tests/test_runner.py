import json
import subprocess
import sys
from pathlib import Path

import pytest
from lesson_expectations import check_section

import run_all_sections as runner

ROOT = Path(__file__).resolve().parents[1]


def test_selection_parsing():
    available = {"1": None, "2": None, "3": None, "4": None, "capstone": None}
    assert runner.parse_selection(["1-3"], available) == ["1", "2", "3"]
    assert runner.parse_selection(["3,1", "1"], available) == ["3", "1"]
    assert runner.parse_selection(["all"], available) == list(available)
    assert runner.parse_selection(["2", "capstone"], available) == ["2", "capstone"]
    for bad in (["9"], ["a-b"], ["2-9"]):
        with pytest.raises(ValueError):
            runner.parse_selection(bad, available)


def test_list_names_every_section(capsys):
    assert runner.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for number in ("1", "2", "3", "4", "5", "6", "7"):
        assert f"9.{number}_" in listed


def test_the_seven_lessons_and_the_tour_are_discovered_in_order():
    """The capstone lesson is section 7 for the runner and the notebook builder alike; the tour stays a key."""
    from chapter09 import notebooks

    found = runner.discover()
    assert list(found) == ["1", "2", "3", "4", "5", "6", "7", "capstone"]
    assert found["7"].name == "9.7_capstone_library_search.py"
    assert [notebooks.section_number(s) for s in notebooks.section_scripts()] == [f"9.{n}" for n in range(1, 8)]
    assert runner.parse_selection(["6-7"], found) == ["6", "7"]


def test_a_failing_section_is_reported_and_sets_the_exit_code(tmp_path, monkeypatch):
    broken = tmp_path / "9.99_broken.py"
    broken.write_text('"""Broken on purpose."""\nraise RuntimeError("boom")\n')
    monkeypatch.setattr(runner, "discover", lambda: {"99": broken})
    assert runner.main(["99", "--out", str(tmp_path)]) == 1


def test_sections_1_to_3_run_clean_on_the_toy_world(tmp_path):
    run = subprocess.run([sys.executable, "run_all_sections.py", "1-3", "--models", "toy", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "3 of 3 sections ran clean" in run.stdout
    assert "[toy world]" not in run.stdout  # --models toy chose the twins: the terminal is not told again
    for number in ("9.1", "9.2", "9.3"):
        check_section(tmp_path, number)


@pytest.mark.slow  # ~1.5-3 min each on 2 cores: CI's default tier stays under its budget; the slow tier runs it
def test_section_7_the_capstone_lesson_runs_clean_on_the_toy_world(tmp_path):
    run = subprocess.run([sys.executable, "run_all_sections.py", "7", "--models", "toy", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 of 1 sections ran clean" in run.stdout
    assert "warning" not in run.stderr.lower(), run.stderr[-2000:]  # the search's notes are part of the lesson's output
    check_section(tmp_path, "9.7")


@pytest.mark.parametrize("command", [
    ["run_all_sections.py", "1", "--modles", "toy"],
    ["chapter09/9.1_clip_basics.py", "--modles", "toy"],
    ["-m", "chapter09.capstone", "search", "--index", "x", "--text", "a", "--modles", "toy"],
    ["-m", "chapter09.toyworld", "make", "x", "--nn", "3"],
    ["-m", "chapter09.vlm", "generate", "x", "y.png", "--modles", "toy"],
])
def test_a_mistyped_flag_is_refused_by_name(command):
    run = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "unrecognized arguments" in run.stderr and command[-2] in run.stderr, run.stderr[-2000:]


def test_a_lesson_runs_as_a_plain_script_from_another_folder(tmp_path):
    """The package is installed (editable), so no lesson needs to edit sys.path."""
    run = subprocess.run([sys.executable, str(ROOT / "chapter09" / "9.1_clip_basics.py"), "--models", "toy",
                          "--out", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((tmp_path / "section_9.1" / "results.json").read_text())["best_is_correct"]
