"""Notebooks are the section scripts, executed in the toy world and committed with their outputs.

The ``unit`` tests read the committed notebooks (no kernel starts): each is its script cell by
cell, carries outputs and figures, is small, and holds no machine-specific path. The ``e2e``
test executes every script as a notebook, as ``python -m chapter09.notebooks`` does, and
checks what the lesson itself measured.
"""
from __future__ import annotations

import base64
import copy
import io
import re
import subprocess
import sys

import nbformat
import pytest
from lesson_expectations import FIGURES, check_section

from chapter09 import config, notebooks
from chapter09.lesson import LESSON_TWINS
from chapter09.models import TOY_TAG

SCRIPTS = notebooks.section_scripts()
IDS = [s.stem for s in SCRIPTS]
MAX_NOTEBOOK_BYTES = 300_000  # reviewed on GitHub; the largest is about 75 KB


def _outputs(notebook):
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def _inline_figures(notebook) -> list[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in _outputs(notebook) if "image/png" in o.get("data", {})]


@pytest.mark.unit
def test_every_committed_notebook_is_its_script_with_outputs():
    assert notebooks.main(["--check"]) == 0, "run `python -m chapter09.notebooks` and commit notebooks/"


@pytest.mark.unit
@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_committed_notebook_is_small_shows_its_figures_and_no_machine_specifics(script):
    from PIL import Image

    path, number = notebooks.notebook_path(script), notebooks.section_number(script)
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    notebook = nbformat.read(path, as_version=4)
    text = "".join(o.get("text", "") for o in _outputs(notebook))
    assert f"Section {number}" in text and "models: toy" in text and f"[{number}] done in" in text
    assert str(config.REPO_DIR) not in text and "/tmp/" not in text
    assert f"output: outputs/section_{number}" in text
    figures = _inline_figures(notebook)
    assert len(figures) == len(FIGURES[number])
    for png in figures:  # at a resolution that reads: 100 dpi, several hundred pixels wide
        assert 600 <= Image.open(io.BytesIO(png)).width <= 1400
    assert all(not cell.metadata for cell in notebook.cells)  # no execution timings
    assert set(notebook.metadata) == {"kernelspec", "language_info", "generated_from"}  # no kernel versions


@pytest.mark.unit
@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_committed_notebook_reads_clean(script):
    """A title cell first, then the setup cell; no warnings, no stray return values, no repeated banners;
    and the lesson ends with exercises, a self-check with hidden answers, and further reading."""
    notebook = nbformat.read(notebooks.notebook_path(script), as_version=4)
    number = notebooks.section_number(script)
    first, setup_text, setup_code = notebook.cells[:3]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {number} ")
    assert setup_text.source == notebooks.SETUP_MARKDOWN and setup_code.source == notebooks.SETUP_CODE
    outputs = _outputs(notebook)
    assert not [o for o in outputs if o.output_type == "execute_result"], "a cell shows a bare return value"
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    assert "Warning" not in stderr and "warn" not in stderr.lower(), stderr[:500]
    text = "".join(o.get("text", "") for o in outputs)
    assert not re.search(r"(/tmp/|/root/|/home/|/work/|[A-Z]:\\)", text), "a machine path in the outputs"
    toy_lines = [line for line in text.splitlines() if line.startswith(TOY_TAG)]
    assert len(toy_lines) == 1, f"one toy-world line per notebook, not {len(toy_lines)}: {toy_lines}"
    assert "CH09_MODELS" in toy_lines[0] and "--models" not in toy_lines[0], toy_lines[0]  # said for a notebook
    assert all(role in toy_lines[0] for role in LESSON_TWINS[number]), toy_lines[0]
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    for heading in ("## Exercises", "## Self-check", "## Further reading"):
        assert heading in markdown, heading
    assert markdown.count("<details>") >= 2 and markdown.count("<details>") == markdown.count("</details>")
    assert re.search(r"arXiv \d{4}\.\d{4,5}", markdown)
    assert f"python -m chapter09.exercises start {number}" in markdown
    assert f"python -m chapter09.exercises check {number}" in markdown


@pytest.mark.unit
def test_the_setup_cell_does_nothing_where_installed_and_says_what_to_do_elsewhere(tmp_path):
    """Run from a folder outside the repository: with the chapter installed it only reports ready; with
    Python's site-packages hidden (-S: as on a machine without the chapter) it asks for REPO_URL."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    installed = subprocess.run([sys.executable, "-c", notebooks.SETUP_CODE], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0 and installed.stdout.strip() == "chapter09 is ready", installed.stderr
    bare = subprocess.run([sys.executable, "-S", "-c", notebooks.SETUP_CODE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert bare.returncode != 0 and "set REPO_URL" in bare.stderr


@pytest.mark.unit
def test_check_catches_drift_from_the_script_and_missing_outputs(tmp_path, monkeypatch):
    script = next(s for s in SCRIPTS if FIGURES[notebooks.section_number(s)])
    committed = nbformat.read(notebooks.notebook_path(script), as_version=4)
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", tmp_path)
    target = notebooks.notebook_path(script)
    assert notebooks.problems(script) == [f"{target.name}: missing"]

    drifted = copy.deepcopy(committed)
    next(cell for cell in drifted.cells if cell.cell_type == "code").source += "\nprint('edited by hand')"
    nbformat.write(drifted, target)
    assert any("differ from" in problem for problem in notebooks.problems(script))

    nbformat.write(notebooks.render(script), target)  # the right cells, never executed
    found = notebooks.problems(script)
    assert any("not executed" in problem for problem in found)
    assert any("inline figures" in problem for problem in found)

    nbformat.write(committed, target)
    assert notebooks.problems(script) == []


@pytest.mark.unit
def test_clean_keeps_outputs_and_drops_what_changes_between_runs(tmp_path):
    from PIL import Image

    out_dir = tmp_path / "outputs"
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": dict(notebooks.KERNEL),
                                                  "language_info": {"name": "python", "version": "3.11.7"}})
    cell = nbformat.v4.new_code_cell("print(1)", execution_count=1)
    cell.metadata = {"execution": {"iopub.execute_input": "2026-12-01T09:00:00Z"}}
    png = io.BytesIO()
    Image.new("RGB", (640, 480), (31, 119, 180)).save(png, format="PNG")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"saved {out_dir}/section_9.1/a.png\n"),
                    nbformat.v4.new_output("stream", name="stdout", text=f"in {config.REPO_DIR}/chapter09\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png.getvalue()).decode(),
                                                                 "text/plain": "<Figure>"},
                                           metadata={"image/png": {"width": 640}})]
    notebook.cells = [cell]
    stable = {"kernelspec": dict(notebooks.KERNEL), "language_info": {"name": "python"}}
    notebooks.clean(notebook, out_dir, stable)
    assert notebook.metadata == stable and notebook.cells[0].metadata == {}
    stream, figure = notebook.cells[0].outputs
    assert stream.text == "saved outputs/section_9.1/a.png\nin chapter09\n"  # one stream, no local paths
    shown = Image.open(io.BytesIO(base64.b64decode(figure.data["image/png"])))
    assert shown.size == (640, 480) and shown.convert("RGB").getpixel((5, 5)) == (31, 119, 180)


# A notebook executed as a learner's kernel runs it, from a folder outside the repository. 9.1 runs on every
# test run; the others belong to the slower tier (`python -m pytest -m slow`): every lesson's script runs on
# every test run through the runner (tests/test_runner.py, tests/test_sections_4_6.py) with the same checks,
# and the committed notebooks are checked cell by cell against the scripts above.
@pytest.mark.parametrize("script", [pytest.param(s, marks=() if notebooks.section_number(s) == "9.1"
                                                 else pytest.mark.slow) for s in SCRIPTS], ids=IDS)
def test_notebook_executes_in_the_toy_world_and_reaches_the_lessons_figures(script, tmp_path):
    notebook = notebooks.execute(notebooks.render(script), tmp_path)
    errors = [o for o in _outputs(notebook) if o.output_type == "error"]
    assert not errors, errors[0].get("evalue") if errors else ""
    number = notebooks.section_number(script)
    check_section(tmp_path, number)
    assert len(_inline_figures(notebook)) == len(FIGURES[number])


@pytest.mark.unit
def test_readme_figures_and_pictures_are_the_committed_notebooks():
    """One source: each measured block of chapter09/README*.md is a verbatim piece of a committed notebook's
    output, and each README picture shows the same pixels as the notebook's inline figure."""
    import numpy as np
    from PIL import Image

    from chapter09 import readme_pictures

    english = readme_pictures.README_TEXT_FILES[0].read_text(encoding="utf-8")
    assert {name for _, name, _ in readme_pictures.readme_blocks(english)} == set(readme_pictures.TEXT_BLOCKS)
    for path in readme_pictures.README_TEXT_FILES:
        for number, name, body in readme_pictures.readme_blocks(path.read_text(encoding="utf-8")):
            assert number == readme_pictures.TEXT_BLOCKS[name][0]
            assert body == readme_pictures.text_block(name), \
                f"{path.name}: block {name} differs from notebook {number}: run `python -m chapter09.readme_pictures text`"
    for picture, (number, figure) in readme_pictures.LESSON_FIGURES.items():
        shown = np.asarray(Image.open(readme_pictures.PICTURES_DIR / picture).convert("RGB"), dtype=int)
        inline = np.asarray(Image.open(io.BytesIO(readme_pictures.notebook_figure(number, figure))).convert("RGB"),
                            dtype=int)
        assert shown.shape == inline.shape and np.abs(shown - inline).max() <= 24, picture


@pytest.mark.unit
def test_the_precision_verdict_holds_on_both_kinds_of_cpu():
    """9.5's conclusion is computed from its own rows and the CPU it ran on, never a fixed claim."""
    from chapter09.lesson import precision_verdict

    slow_bf16 = [{"variant": "fp32", "ms_per_item": 5.0}, {"variant": "bf16", "ms_per_item": 9.0},
                 {"variant": "int8-dynamic", "ms_per_item": 4.0}]
    fast_bf16 = [{"variant": "fp32", "ms_per_item": 5.0}, {"variant": "bf16", "ms_per_item": 3.0},
                 {"variant": "int8-dynamic", "ms_per_item": 4.0}]
    avx2 = " ".join(precision_verdict(slow_bf16, native_bf16=False))
    assert "int8-dynamic" in avx2.split(".")[0] and "no native bf16" in avx2 and "1.80x" in avx2 and "slower" in avx2
    avx512 = " ".join(precision_verdict(fast_bf16, native_bf16=True))
    assert avx512.startswith("Fastest in this run: bf16") and "has native bf16" in avx512 and "faster" in avx512
    assert precision_verdict([{"variant": "fp32", "ms_per_item": 5.0}], True) == ["Too few variants were measured to compare."]


@pytest.mark.unit
@pytest.mark.parametrize("number", ["9.5", "9.6"])
def test_the_timing_notebooks_say_which_cpu_ran_them(number):
    from chapter09 import readme_pictures

    text = readme_pictures.notebook_text(number)
    assert re.search(r"^  CPU: .+\(\d+ cores\)", text, re.M) and "native bf16: " in text
    if number == "9.5":  # the verdict printed is the one its own table implies
        lines = text.splitlines()
        verdict = next(line for line in lines if line.startswith("  Fastest in this run:"))
        table = [line for line in lines if line.startswith("| ") and line.count("|") >= 6]
        rows = {cells[0]: float(cells[3]) for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)
                if cells[0] in ("fp32", "bf16", "int8-dynamic", "onnxruntime-fp32")}
        assert verdict.split(": ")[1].startswith(min(rows, key=rows.get))


def _notebook_text(number: str) -> tuple[str, str]:
    """(everything printed, every markdown cell) of the committed notebook of section ``number``."""
    script = next(s for s in SCRIPTS if notebooks.section_number(s) == number)
    notebook = nbformat.read(notebooks.notebook_path(script), as_version=4)
    printed = "".join(o.get("text", "") for o in _outputs(notebook))
    markdown = " ".join(" ".join(c.source for c in notebook.cells if c.cell_type == "markdown").split())
    return printed, markdown  # markdown with its line breaks folded, so phrases match across lines


@pytest.mark.unit
def test_the_slips_a_careful_reader_caught_stay_fixed():
    printed, markdown = _notebook_text("9.1")
    assert "(openai/clip-vit-base-patch32: 49,408, 49406, 49407)" in printed
    assert "centred near zero (mean" not in printed and "learnt from English captions only" in markdown
    assert "The model ignores padded positions" not in markdown  # the causal mask and end-of-text pooling do
    assert "captions, English and Chinese, should score highest" not in markdown
    printed, markdown = _notebook_text("9.4")
    assert "15.0 GB (13.9 GiB) in fp32, 7.5 GB (7.0 GiB)" in markdown and "about 14 GB" not in markdown
    if "route: blip2" in printed:  # the BLIP-2 twin's own processor: OPT-style tokens, its 16 query tokens
        assert "16 x <image> then ['</s>', 'Question'" in printed and "OPT's start token" in markdown
    else:  # BLIP-2's processor class around the toy BLIP tokenizer, at blip2-opt-2.7b's 224 px
        assert "pixel_values: (1, 3, 224, 224)" in printed and "OPT's start token" in printed
    assert "the format BLIP-2 was tuned on" not in markdown and "neither instruction- nor chat-tuned" in markdown
    printed, markdown = _notebook_text("9.5")
    assert "torchao" in markdown and "CPU technique" in markdown and "WRONG" in printed
    printed, markdown = _notebook_text("9.6")
    assert "its quality was measured where the model was taught" in markdown
    assert "[toy twin]" in printed and "!!" not in printed
    assert config.model_spec("blip2").params.startswith("3.74 B (15.0 GB = 13.9 GiB in fp32")


@pytest.mark.unit
def test_what_9_1_says_about_the_real_clip_tokenizer_holds():
    """64 byte-level tokens for the 27-character Chinese caption, with OpenAI's BPE as open-clip-torch ships it."""
    real_artifacts = pytest.importorskip("real_artifacts")
    reason = real_artifacts.missing_reason()
    if reason:
        pytest.skip(reason)
    from chapter09.toyworld import generate_scenes

    caption = generate_scenes(1, seed=7, split="heldout")[0].captions("zh")[0]
    assert len(caption) == 27
    assert len(real_artifacts.open_clip_tokenizer().SimpleTokenizer().encode(caption)) == 64
