"""The terminal runner of lesson scripts: cells read as jupytext writes them, run in one namespace, steps named."""
import traceback

import pytest

from chapter09.cells import read_cells, run_cells, step_line
from chapter09.lesson import section_scripts

SCRIPT = '''"""A tiny lesson."""
# %% [markdown]
# # Title
# An opening paragraph without a step.

# %%
x = 2

# %% [markdown]
# ## 1. Doubling
# We double x. Then we print it.

# %%
y = x * 2
print("y is", y)

# %% [markdown]
# ## 2. Breaking
# This step fails on purpose.

# %%
z = y / 0
'''


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "lesson.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def test_cells_are_split_by_kind_with_their_first_lines(script):
    cells = read_cells(script)
    assert [c.kind for c in cells] == ["code", "markdown", "code", "markdown", "code", "markdown", "code"]
    assert cells[2].text.strip() == "x = 2" and cells[2].first_line == 7
    assert cells[3].text.startswith("## 1. Doubling")


def test_a_step_is_named_by_its_heading_and_first_sentence_only():
    assert step_line("## 1. Doubling\nWe double x. Then we print it.") == "\n--- 1. Doubling\n    We double x."
    assert step_line("# Title\nNo step here.") is None
    assert step_line("## 2. 中文\n先看数据。再训练。") == "\n--- 2. 中文\n    先看数据。"


def test_code_runs_in_one_namespace_with_steps_narrated_and_script_line_numbers(script, capsys):
    said = []
    with pytest.raises(ZeroDivisionError) as error:
        run_cells(script, narrate=said.append)
    assert said == ["\n--- 1. Doubling\n    We double x.", "\n--- 2. Breaking\n    This step fails on purpose."]
    assert "y is 4" in capsys.readouterr().out
    last = traceback.extract_tb(error.value.__traceback__)[-1]
    assert last.filename == str(script) and last.lineno == 22 and last.line == "z = y / 0"


def test_every_lesson_has_named_steps():
    for path in section_scripts():
        steps = [step_line(c.text) for c in read_cells(path) if c.kind == "markdown"]
        assert sum(line is not None for line in steps) >= 3, path.name


def test_no_code_hides_in_a_prose_cell():
    """A prose cell's lines are comments: code written under a `# %% [markdown]` heading would be skipped by the
    runner (and shown as text in the notebook), as the tour's once was."""
    from chapter09 import config

    for path in [*section_scripts(), config.CAPSTONE_TOUR]:
        in_prose = False
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.startswith("# %%"):
                in_prose = line.startswith("# %% [markdown]")
            elif in_prose:
                assert not line.strip() or line.startswith("#"), f"{path.name}:{number}: code in a prose cell"
