"""The lessons' Chinese edition is kept in step with the English one. Fast: nothing is executed.

- every English prose cell of a lesson with Chinese has a Chinese counterpart right after it, written in Chinese
  (CJK share above a threshold, no English sentence left behind: code, commands and paper titles are allowed);
- headings pair up (same levels, same step numbers), so both editions have the same steps;
- both notebook editions have the same code cells, and the Chinese one has its setup cell, exercises, self-check
  with hidden answers and further reading in Chinese;
- ``chapter09/editions.stamp`` catches a change to one edition of a cell without the other;
- every lesson has a Chinese edition, except those in ``edition.PENDING`` (expected to fail, with the reason);
- the language choice: ``read_cells`` carries each prose cell's language, ``Lesson.say``/``t`` pick by it,
  ``--lang``/``CH09_LANG`` reach the lessons and the runner's step headings.
"""
from __future__ import annotations

import re
import sys

import pytest

import run_all_sections as runner
from chapter09 import edition, notebooks
from chapter09.cells import edition as cells_edition
from chapter09.cells import read_cells, run_cells
from chapter09.exercises import i18n
from chapter09.lesson import Lesson, section_scripts

pytestmark = pytest.mark.unit

SCRIPTS = section_scripts()
WITH_CHINESE = [s for s in SCRIPTS if edition.has_chinese(s)]
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
MIN_CJK_SHARE = 0.35  # of the letters left once code, paper titles and tags are removed
ENGLISH_RUN = re.compile(r"(?:\b[A-Za-z][A-Za-z'-]*\b[\s,;:.!?]+){6,}")  # six English words in a row: a sentence


def _prose(text: str) -> str:
    """What a reader reads as language: without code spans, paper titles (*...*), quoted examples ("..."), HTML
    tags, URLs and paths."""
    text = re.sub(r"`[^`]*`", " ", text).replace("**", "")
    text = re.sub(r"^\s*[*-] ", "", text, flags=re.M)  # list bullets, before the *titles*
    text = re.sub(r'"[^"\n]*"', " ", text)
    text = re.sub(r"\*[^*\n]+\*", lambda m: " " if not CJK.search(m.group()) else m.group(), text)
    text = re.sub(r"<[^>]+>|https?://\S+|\S+/\S+", " ", text)
    return text


def _headings(text: str) -> list[tuple[int, str]]:
    """(level, step number) of each heading: '## 2. Search ...' -> (2, '2.'); '## Summary' -> (2, '')."""
    return [(len(m.group(1)), m.group(2) or "") for m in re.finditer(r"^(#{1,4}) (\d+(?:\.\d+)*\.(?= ))?", text, re.M)]


def _ids(scripts):
    return [s.stem for s in scripts]


def test_the_lessons_with_chinese_are_the_ones_not_pending():
    assert {edition.number(s) for s in WITH_CHINESE} >= {"9.3", "9.4", "9.5", "9.6"}
    assert not {edition.number(s) for s in WITH_CHINESE} & set(edition.PENDING), "a lesson with Chinese is still PENDING"


@pytest.mark.parametrize("script", [pytest.param(s, marks=pytest.mark.xfail(
    reason=f"edition.PENDING: {edition.PENDING[edition.number(s)]}", strict=True))
    if edition.number(s) in edition.PENDING else s for s in SCRIPTS], ids=_ids(SCRIPTS))
def test_every_lesson_has_a_chinese_edition(script):
    """Expected to fail only for the lessons in ``edition.PENDING`` (9.1, 9.2 and the capstone lesson 9.7, whose
    English is being rewritten); strict, so a lesson that gains its Chinese must leave that list."""
    assert all(zh is not None for _, zh in edition.pairs(script)) and edition.has_chinese(script)


@pytest.mark.parametrize("script", WITH_CHINESE, ids=_ids(WITH_CHINESE))
def test_every_english_prose_cell_has_a_chinese_counterpart_in_real_chinese(script):
    problems = []
    for index, (english, chinese) in enumerate(edition.pairs(script), start=1):
        where = f"{script.name} prose cell {index} (line {(english or chinese).first_line})"
        if english is None or chinese is None:
            problems.append(f"{where}: {'no English before' if english is None else 'no Chinese after'} it")
            continue
        prose = _prose(chinese.text)
        cjk, latin = len(CJK.findall(prose)), len(re.findall(r"[A-Za-z]", prose))
        if cjk < 4 or cjk / (cjk + latin) < MIN_CJK_SHARE:
            problems.append(f"{where}: only {cjk} CJK characters against {latin} Latin letters")
        for paragraph in re.split(r"\n\s*\n|\n(?=\s*(?:[*-]|\d+\.) )", prose):
            run = ENGLISH_RUN.search(paragraph)
            if run:
                problems.append(f"{where}: English left in the Chinese: {run.group().strip()!r}")
            if paragraph.strip() and re.search(r"[A-Za-z]{3}", paragraph) and not CJK.search(paragraph):
                problems.append(f"{where}: a paragraph with no Chinese: {paragraph.strip()[:80]!r}")
    assert not problems, problems


def _leftovers(text: str) -> list[str]:
    prose = _prose(text)
    return [run.group() for paragraph in re.split(r"\n\s*\n", prose) for run in [ENGLISH_RUN.search(paragraph)] if run]


def test_the_check_tells_an_english_sentence_from_code_titles_and_examples():
    assert not _leftovers('用 `python -m chapter09.exercises check 9.3` 检查。\n* Li et al., *BLIP: Bootstrapping '
                          'Language-Image Pre-training* (arXiv 2201.12086)：本节的模型。\n问它 ("is the star bigger '
                          'than the circle?")。')
    assert _leftovers("开场白。\n\nThe multilingual model was trained to put each sentence where CLIP puts it.")


@pytest.mark.parametrize("script", WITH_CHINESE, ids=_ids(WITH_CHINESE))
def test_headings_pair_up_with_the_same_levels_and_step_numbers(script):
    for english, chinese in edition.pairs(script):
        assert english is not None and chinese is not None
        assert _headings(chinese.text) == _headings(english.text), (english.text[:60], chinese.text[:60])
    steps = {lang: [h for c in read_cells(script) if c.lang == lang for h in _headings(c.text) if h[0] == 2]
             for lang in ("en", "zh")}
    assert steps["en"] == steps["zh"] and len(steps["en"]) >= 4


@pytest.mark.parametrize("script", WITH_CHINESE, ids=_ids(WITH_CHINESE))
def test_both_notebook_editions_have_the_same_code_and_the_chinese_one_reads_in_chinese(script):
    english, chinese = notebooks.render(script, "en"), notebooks.render(script, "zh")
    assert notebooks.editions(script) == ["en", "zh"]
    assert [c.source for c in english.cells if c.cell_type == "code"] == \
        [c.source for c in chinese.cells if c.cell_type == "code"]
    assert [c.cell_type for c in english.cells] == [c.cell_type for c in chinese.cells]
    number = notebooks.section_number(script)
    assert chinese.cells[0].source.startswith(f"# {number} ") and chinese.cells[1].source == notebooks.SETUP_MARKDOWN_ZH
    assert "CH09_LANG=zh" in chinese.metadata["generated_from"]
    markdown = "\n".join(c.source for c in chinese.cells if c.cell_type == "markdown")
    for heading in ("## 练习", "## 自测", "## 延伸阅读", "**术语对照**"):
        assert heading in markdown, heading
    english_markdown = "\n".join(c.source for c in english.cells if c.cell_type == "markdown")
    assert markdown.count("<details>") == english_markdown.count("<details>") == markdown.count("</details>")
    assert "<summary>答案</summary>" in markdown
    assert re.findall(r"arXiv \d{4}\.\d{4,5}", markdown) == re.findall(r"arXiv \d{4}\.\d{4,5}", english_markdown)
    for command in re.findall(r"`(python -m [^`]+)`", english_markdown):
        assert command in markdown, command
    assert not re.search(r"[\u4e00-\u9fff]", notebooks.SETUP_MARKDOWN)  # the English notebook stays English
    assert "## Exercises" in english_markdown and "## 练习" not in english_markdown


@pytest.mark.parametrize("script", WITH_CHINESE, ids=_ids(WITH_CHINESE))
def test_the_steps_the_checker_points_at_are_the_lessons_chinese_headings(script):
    """exercises.i18n.STEPS names lesson steps in both languages: where the English names a heading of this
    lesson, the Chinese names the Chinese heading."""
    plain = lambda text: text.replace("`", "")
    headings = {lang: {plain(line.lstrip("#").split(". ", 1)[-1].strip())
                       for c in read_cells(script) if c.lang == lang for line in c.text.splitlines()
                       if line.startswith("## ")} for lang in ("en", "zh")}
    named = [(en, zh) for key, (en, zh) in i18n.STEPS.items() if key.split("/")[0] == edition.number(script)]
    for en, zh in named:
        if en in headings["en"]:
            assert zh in headings["zh"], (en, zh, sorted(headings["zh"]))


def test_a_change_to_one_edition_without_the_other_fails():
    """editions.stamp holds, per pair of prose cells, a hash of each as they last agreed. A hash that moved on one
    side only is an edit made to one edition; after editing both, ``python -m chapter09.edition stamp``."""
    recorded = {key: hashes for key, *hashes in (line.split() for line in
                                                 edition.STAMP.read_text(encoding="utf-8").splitlines() if line.strip())}
    now = {key: hashes for key, *hashes in (line.split() for line in edition.stamp_lines())}
    one_sided = []
    for key, hashes in now.items():
        if key in recorded:
            moved = [a != b for a, b in zip(hashes, recorded[key])]
            if moved[0] != moved[1]:
                one_sided.append(f"{key}: the {'English' if moved[0] else 'Chinese'} changed, the "
                                 f"{'Chinese' if moved[0] else 'English'} did not")
    assert not one_sided, one_sided
    assert now == recorded, ("both editions changed, or a cell was added or removed: once they agree, run "
                             "python -m chapter09.edition stamp")


def test_the_stamp_sees_a_one_sided_edit(tmp_path):
    script = WITH_CHINESE[0]
    before = edition.stamp_lines([script])
    edited = tmp_path / script.name
    edited.write_text(script.read_text(encoding="utf-8").replace("## 1. ", "## 1. Edited ", 1), encoding="utf-8")
    after = edition.stamp_lines([edited])
    changed = [(a.split(), b.split()) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1 and changed[0][0][1] != changed[0][1][1] and changed[0][0][2] == changed[0][1][2]


# ----------------------------------------------------------------------------- the language choice
SCRIPT = '''"""A tiny bilingual lesson."""
# %% [markdown]
# # 9.9 Title
# An opening.

# %% [markdown] lang="zh"
# # 9.9 标题
# 开场白。

# %%
from chapter09.lesson import start

lesson = start("9.9", "Tiny", zh="迷你")

# %% [markdown]
# ## 1. Saying
# The lesson says one thing.

# %% [markdown] lang="zh"
# ## 1. 说话
# 本节只说一句话。

# %%
lesson.say("Hello there.", zh="你好。")
print(lesson.t("label", "标签"))

# %% [markdown]
# ## 2. English only
# Not translated yet.

# %%
print("done")
'''


def test_read_cells_carries_each_prose_cells_language(tmp_path):
    path = tmp_path / "9.9_tiny.py"
    path.write_text(SCRIPT, encoding="utf-8")
    cells = read_cells(path)
    assert [(c.kind, c.lang) for c in cells] == [
        ("code", None), ("markdown", "en"), ("markdown", "zh"), ("code", None), ("markdown", "en"),
        ("markdown", "zh"), ("code", None), ("markdown", "en"), ("code", None)]
    assert cells[2].text.startswith("# 9.9 标题") and cells[2].first_line == 7
    assert [c.lang for c in cells_edition(cells, "en")] == [None, "en", None, "en", None, "en", None]
    # in Chinese, an English cell with no counterpart stands in for it
    assert [c.text.splitlines()[0] for c in cells_edition(cells, "zh") if c.lang] == ["# 9.9 标题", "## 1. 说话",
                                                                                     "## 2. English only"]


def test_the_runner_names_steps_and_the_lesson_speaks_in_the_chosen_language(tmp_path, monkeypatch, capsys):
    path = tmp_path / "9.9_tiny.py"
    path.write_text(SCRIPT, encoding="utf-8")
    monkeypatch.setattr(runner, "discover", lambda: {"9": path})
    monkeypatch.delenv("CH09_LANG", raising=False)
    assert runner.main(["9", "--models", "toy", "--out", str(tmp_path), "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "第 9.9 节：迷你" in out and "--- 1. 说话\n    本节只说一句话。" in out and "\n你好。\n标签\n" in out
    assert "--- 2. English only" in out and "1 节中 1 节运行无误" in out and "Hello" not in out

    monkeypatch.setenv("CH09_LANG", "zh")  # the environment variable alone chooses Chinese ...
    assert runner.main(["9", "--models", "toy", "--out", str(tmp_path)]) == 0
    assert "本节只说一句话。" in capsys.readouterr().out
    assert runner.main(["9", "--models", "toy", "--out", str(tmp_path), "--lang", "en"]) == 0  # ... --lang wins
    out = capsys.readouterr().out
    assert "Section 9.9: Tiny" in out and "--- 1. Saying" in out and "\nHello there.\nlabel\n" in out
    assert not re.search(r"[\u4e00-\u9fff]", out)


def test_default_is_english_and_say_and_t_pick_by_the_lessons_language(tmp_path, capsys, monkeypatch):
    from chapter09.lesson import start

    monkeypatch.delenv("CH09_LANG", raising=False)
    monkeypatch.setattr(sys, "argv", ["lesson"])
    assert start("9.9", "Tiny", argv=["--out", str(tmp_path), "--models", "toy"]).lang == "en"
    assert start("9.9", "Tiny", argv=["--out", str(tmp_path), "--models", "toy", "--lang", "zh"]).lang == "zh"
    monkeypatch.setenv("CH09_LANG", "zh_CN.UTF-8")
    assert start("9.9", "Tiny", argv=["--out", str(tmp_path), "--models", "toy"]).lang == "zh"
    capsys.readouterr()
    english = Lesson("9.9", "Tiny", tmp_path, None)
    chinese = Lesson("9.9", "Tiny", tmp_path, None, lang="zh")
    assert english.t("label", "标签") == "label" and chinese.t("label", "标签") == "标签"
    assert chinese.t("not translated") == "not translated"
    english.say("One line\n    continued.", zh="一行\n    接着写。")
    chinese.say("One line\n    continued.", zh="一行\n    接着写 `code` 和\n    more words。")
    chinese.say("Only English.")
    assert capsys.readouterr().out == "\nOne line continued.\n\n一行接着写 `code` 和 more words。\n\nOnly English.\n"


def test_a_long_chinese_narration_is_wrapped_without_breaking_words(capsys):
    chinese = Lesson("9.9", "Tiny", None, None, lang="zh")
    chinese.say("x", zh="这是一段很长的中文讲解，" * 12 + "最后以 clip-ViT-B-32-multilingual-v1 结尾。")
    lines = capsys.readouterr().out.strip().splitlines()
    columns = [sum(2 if ord(c) >= 0x2E80 else 1 for c in line) for line in lines]
    # 88 columns, or 90 where a closing punctuation mark overhangs rather than open the next line
    assert len(lines) > 1 and all(n <= 88 or (n <= 90 and line[-1] in "。，、；：！？") for n, line in zip(columns, lines))
    assert "clip-ViT-B-32-multilingual-v1" in "\n".join(lines)


def test_closing_punctuation_never_opens_a_line(capsys):
    chinese = Lesson("9.9", "Tiny", None, None, lang="zh")
    chinese.say("x", zh="测" * 43 + "。后面还有一些文字，" * 6)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) > 1 and not any(line[0] in "。，、；：！？）" for line in lines), lines


def test_run_cells_defaults_to_the_english_steps(tmp_path, monkeypatch):
    path = tmp_path / "9.9_tiny.py"
    path.write_text(SCRIPT, encoding="utf-8")
    monkeypatch.delenv("CH09_LANG", raising=False)
    monkeypatch.setattr(sys, "argv", [str(path), "--out", str(tmp_path), "--models", "toy"])
    said = []
    run_cells(path, narrate=said.append)
    assert said == ["\n--- 1. Saying\n    The lesson says one thing.", "\n--- 2. English only\n    Not translated yet."]


def test_check_covers_the_chinese_notebooks_once_they_have_been_generated(tmp_path, monkeypatch, capsys):
    script = WITH_CHINESE[0]
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", tmp_path)
    assert notebooks.notebook_path(script, "zh") == tmp_path / "zh" / f"{script.stem}.ipynb"
    (tmp_path / notebooks.notebook_path(script).name).write_text("{}")  # stands in for the English notebook
    monkeypatch.setattr(notebooks, "problems", lambda s, lang="en": [] if lang == "en" else
                        [f"{notebooks.notebook_path(s, lang).relative_to(tmp_path).as_posix()}: missing"])
    number = notebooks.section_number(script)
    assert notebooks.main(["--check", number]) == 0  # notebooks/zh/ never generated: said, not failed
    assert "notebooks/zh/ has not been generated yet" in capsys.readouterr().out
    (tmp_path / "zh").mkdir()
    assert notebooks.main(["--check", number]) == 1
    assert f"zh/{script.stem}.ipynb: missing" in capsys.readouterr().out
    assert notebooks.main(["--check", number, "--lang", "en"]) == 0


def test_chinese_labels_line_up_in_tables():
    from chapter09 import measure

    rows = [{"variant": "fp32", "ms_per_item": 1.5}, {"variant": "bf16", "ms_per_item": 12.25}]
    assert measure.format_table(rows) == ("| variant | ms_per_item |\n| ------- | ----------- |\n"
                                          "| fp32    | 1.5         |\n| bf16    | 12.25       |")
    chinese = measure.format_table(rows, headers=measure.TABLE_HEADERS_ZH).splitlines()
    assert chinese[0] == "| 方案 | 每项毫秒 |" and chinese[2] == "| fp32 | 1.5      |"
    assert Lesson.ljust("有形状不对", 14) == "有形状不对    " and Lesson.ljust("shape", 8) == "shape   "


def test_a_language_the_chapter_does_not_speak_is_refused_by_name(monkeypatch, capsys):
    monkeypatch.setenv("CH09_LANG", "fr")
    with pytest.raises(SystemExit) as stop:
        runner.main(["1", "--models", "toy"])
    assert stop.value.code == 2 and "CH09_LANG='fr'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.main(["1", "--lang", "fr"])
