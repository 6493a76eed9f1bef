"""Notebooks are generated from the section scripts and execute in the toy world, so they cannot rot."""
from __future__ import annotations

import json

import pytest

from chapter09 import notebooks

SCRIPTS = notebooks.section_scripts()


def test_notebooks_are_up_to_date():
    assert notebooks.main(["--check"]) == 0, "run `python -m chapter09.notebooks` and commit notebooks/"


# what each notebook must reach in the toy world (results.json); the quality floors of 9.4-9.6
# are asserted once, in tests/test_sections_4_6.py
EXPECTED = {
    "9.4": lambda r: r["vqa_route"] == "blip" and r["image_token_slots"] == r["num_query_tokens"] == 32,
    "9.5": lambda r: r["demo_loss_last"] < r["demo_loss_first"] and len(r["precision_rows"]) == 4,
    "9.6": lambda r: any("ms_per_item" in row for row in r["models"]),
}


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_notebook_executes_in_the_toy_world(script, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("CH09_MODELS", "toy")
    monkeypatch.setenv("CH09_OUT", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    notebook = nbformat.read(notebooks.notebook_path(script), as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(notebooks.NOTEBOOK_DIR)}}).execute()
    number = script.name.split("_")[0]
    results = json.loads((tmp_path / f"section_{number}" / "results.json").read_text())
    if number in EXPECTED:
        assert EXPECTED[number](results), results
