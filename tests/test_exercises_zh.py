"""The exercises in Chinese: ``check --lang zh`` (or ``CH09_LANG=zh``) says everything in Chinese, the two editions
of every text are kept in step, and a verdict never depends on the language.

- every message id and lesson step has an English and a Chinese text (real Chinese, and no Chinese in the English)
  with the same placeholders, numbers and code names; ``messages.stamp`` catches a change to one edition without
  the other; every id the checkers use exists, and every entry is used;
- for every checked function, each verdict kind (not written yet, a failure, its ``--hint``, a pass) is Chinese
  under ``lang="zh"``, and the wrong answers of ``test_exercises.py`` fail the same way in both languages;
- the command line in Chinese leaves no line of English prose (only commands, identifiers and numbers);
- ``CH09_LANG`` chooses the language, ``--lang`` overrides it, English is the default;
- each starter's instructions are in both languages, with the same code names and numbers.
Everything runs in-process; no model runs.
"""
from __future__ import annotations

import ast
import re
import string
import textwrap

import pytest

from chapter09.exercises import __main__ as cli
from chapter09.exercises import core, i18n
from tests.test_exercises import CHECKS, WRONG, _function

pytestmark = [pytest.mark.unit, pytest.mark.filterwarnings("ignore::RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")]

CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
SEEDS = range(5)


def _texts() -> dict[str, tuple[str, str]]:
    """Every text with two editions: the catalogue's messages and the lesson steps."""
    return {**i18n.catalogue(), **{f"step {key}": titles for key, titles in i18n.STEPS.items()}}


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+(?:\.\d+)?", text))


def _code_names(text: str) -> set[str]:
    """Dotted names (np.argsort, util.cos_sim) and snake_case names (logit_scale), placeholders left out."""
    text = re.sub(r"\{[^{}]*\}", " ", text)
    return set(re.findall(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|\w*_\w+", text)) - {"_"}


# ----------------------------------------------------------------------------- the catalogue
@pytest.mark.parametrize("key", sorted(_texts()))
def test_every_text_has_an_english_and_a_chinese_edition_that_say_the_same(key):
    english, chinese = _texts()[key]
    assert english.strip() and not CJK.search(english), (key, english)
    assert CJK.search(chinese), (key, "the Chinese edition has no Chinese", chinese)
    assert _placeholders(english) == _placeholders(chinese), key
    assert _numbers(english) == _numbers(chinese), (key, _numbers(english) ^ _numbers(chinese))
    assert _code_names(english) == _code_names(chinese), (key, _code_names(english) ^ _code_names(chinese))


def test_a_change_to_one_edition_without_the_other_fails():
    """messages.stamp holds, per text, a hash of each edition as they last agreed. An edition whose hash moved
    while the other's did not is a change made on one side only; when both were changed together, rerun
    ``python -m chapter09.exercises.stamp`` to record that they agree again."""
    recorded = {key: hashes for key, *hashes in (line.rsplit(" ", 2) for line in
                                                 i18n.STAMP.read_text(encoding="utf-8").splitlines() if line.strip())}
    one_sided, unrecorded = [], []
    for key, (english, chinese) in _texts().items():
        if key not in recorded:
            unrecorded.append(key)
            continue
        moved = [i18n.fingerprint(text) != stamp for text, stamp in zip((english, chinese), recorded[key])]
        if moved[0] != moved[1]:
            one_sided.append(f"{key}: the {'English' if moved[0] else 'Chinese'} changed, the "
                             f"{'Chinese' if moved[0] else 'English'} did not")
        elif any(moved):
            unrecorded.append(key)
    assert not one_sided, one_sided
    assert not unrecorded and set(recorded) <= set(_texts()), \
        ("both editions changed, or a text was added or removed: once they agree, run "
         "python -m chapter09.exercises.stamp", unrecorded, sorted(set(recorded) - set(_texts())))


def _string_constants(module) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(open(module.__file__, encoding="utf-8").read()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_every_id_the_checkers_use_is_defined_and_every_entry_is_used():
    import importlib

    catalogue = i18n.catalogue()
    modules = [core, cli] + [importlib.import_module(f"chapter09.exercises.check_{s.replace('.', '_')}")
                             for s in core.SECTIONS]
    used = set().union(*(_string_constants(m) for m in modules)) & set(catalogue)
    for section, module in zip(core.SECTIONS, modules[2:]):
        assert all(key.startswith(section + ".") for key in module.MESSAGES), section  # one section, one prefix
        for check in module.CHECKS:
            assert check.read in i18n.STEPS and check.hint in catalogue, check.exercise
            used |= {check.hint}
        # every Failed/msg/close/... call names its texts by ids the catalogue has (a typo would print the id)
        for node in ast.walk(ast.parse(open(module.__file__, encoding="utf-8").read())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"Failed", "msg", "close"}:
                ids = [a.value for a in [*node.args, *(k.value for k in node.keywords if k.arg == "hint")]
                       if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                assert set(ids) <= set(catalogue), (section, ids)
    used |= {"step", "the_loss", "no_gradient_hint"}  # used by name through render and core's defaults
    assert sorted(set(catalogue) - used) == [], "catalogue entries nothing uses"
    referenced = {check.read for s in core.SECTIONS for check in core.checks_for(s)}
    assert referenced == set(i18n.STEPS), sorted(set(i18n.STEPS) ^ referenced)


# ----------------------------------------------------------------------------- every verdict kind in Chinese
def _chinese(outcome: core.Outcome, *fields: str) -> None:
    for field in fields:
        text = getattr(outcome, field)
        assert CJK.search(text), (outcome.exercise, field, text)


@pytest.mark.parametrize("exercise", sorted(CHECKS))
def test_each_verdict_kind_is_chinese_and_no_verdict_depends_on_the_language(exercise):
    section, index, check = CHECKS[exercise]
    starter = getattr(core.load_module(core.starter_path(section)), check.function)
    untouched = core.run_one(check, starter, 0, index, lang="zh")
    assert untouched.key == "not_written" and not untouched.hint
    _chinese(untouched, "message", "read")

    solution = _function(section, check.function)
    for seed in SEEDS:
        passed = core.run_one(check, solution, seed, index, lang="zh")
        assert passed.passed, (seed, passed.message)
        _chinese(passed, "message")

    for what, source in WRONG[exercise]:
        wrong = _function(section, check.function, source)
        for seed in SEEDS[:2]:
            english, chinese = (core.run_one(check, wrong, seed, index, lang=lang) for lang in i18n.LANGS)
            assert not chinese.passed and (english.passed, english.key) == (chinese.passed, chinese.key), what
            if chinese.key != "raised":  # a crash quotes Python's own (English) error text, after Chinese
                _chinese(chinese, "message", "read", "hint")
                assert not CJK.search(english.message + english.read + english.hint), what


# ----------------------------------------------------------------------------- the command line
def _english_prose(line: str) -> bool:
    """Three English words in a row, once quotes, code names and numbers are set aside."""
    line = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`", " ", line)
    words = [w if re.fullmatch(r"[A-Za-z]+", w) else "|" for w in re.split(r"[\s、，。：；（）()]+", line)]
    return bool(re.search(r"[A-Za-z]+ [A-Za-z]+ [A-Za-z]+", " ".join(words)))


def _learner_file(tmp_path, section: str, kind: str):
    """The starter, the solution, or the solution with every function replaced by its first wrong answer."""
    path = tmp_path / f"{kind}_{core.file_name(section)}"
    if kind == "starter":
        path.write_text(core.starter_path(section).read_text(encoding="utf-8"), encoding="utf-8")
        return path
    text = core.solution_path(section).read_text(encoding="utf-8")
    if kind == "wrong":
        text += "".join(textwrap.dedent(WRONG[check.exercise][0][1]) for check in core.checks_for(section))
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("section", core.SECTIONS)
def test_the_command_line_in_chinese_leaves_no_english_prose(section, tmp_path, capsys):
    outputs = []
    for kind, hint, expected in (("starter", False, 1), ("wrong", False, 1), ("wrong", True, 1),
                                 ("solution", False, 0)):
        args = ["check", section, "--file", str(_learner_file(tmp_path, section, kind)), "--seed", "3", "--lang", "zh"]
        assert cli.main(args + (["--hint"] if hint else [])) == expected
        outputs.append(capsys.readouterr().out)
    starter, wrong, hinted, solution = outputs
    n = len(core.checks_for(section))
    assert starter.count("失败") == n and starter.count("还没写") == n and starter.count("先读：第 " + section) == n
    hint_lines = re.compile(r"^ +提示：", re.M)
    assert wrong.count("讲解见：") == n and not hint_lines.search(wrong) and "--hint --lang zh" in wrong
    assert len(hint_lines.findall(hinted)) == n
    assert solution.count("通过") >= n and "做得好" in solution
    for line in "".join(outputs).splitlines():
        line = line.replace(str(tmp_path), "")
        if not line.strip() or line.strip().startswith("python -m chapter09.exercises"):
            continue
        assert CJK.search(line), f"a line with no Chinese: {line!r}"
        assert not _english_prose(line), f"English prose left in: {line!r}"


def test_start_speaks_chinese_too(tmp_path, capsys):
    folder = str(tmp_path / "mine")
    assert cli.main(["start", "9.1", "--dir", folder, "--lang", "zh"]) == 0
    assert cli.main(["start", "9.1", "--dir", folder, "--lang", "zh"]) == 1
    out = capsys.readouterr().out
    assert "已生成" in out and f"check 9.1 --dir {folder} --lang zh" in out and "已存在" in out and "--force" in out
    assert cli.main(["check", "9.2", "--dir", folder, "--lang", "zh"]) == 2
    assert "不存在" in capsys.readouterr().out


def test_ch09_lang_chooses_the_language_and_the_flag_overrides_it(tmp_path, capsys, monkeypatch):
    path = str(_learner_file(tmp_path, "9.6", "wrong"))
    monkeypatch.delenv(i18n.ENV, raising=False)
    cli.main(["check", "9.6", "--file", path, "--seed", "1"])
    default = capsys.readouterr().out
    assert "FAIL  9.6.1" in default and not CJK.search(default)

    monkeypatch.setenv(i18n.ENV, "zh")
    cli.main(["check", "9.6", "--file", path, "--seed", "1"])
    chinese = capsys.readouterr().out
    assert "失败  9.6.1" in chinese and "FAIL" not in chinese

    cli.main(["check", "9.6", "--file", path, "--seed", "1", "--lang", "en"])  # the flag wins
    assert capsys.readouterr().out == default

    monkeypatch.setenv(i18n.ENV, "zh_CN.UTF-8")
    assert i18n.resolve() == "zh" and i18n.resolve("en") == "en"
    monkeypatch.setenv(i18n.ENV, "fr")
    assert cli.main(["check", "9.6", "--file", path]) == 2 and "CH09_LANG" in capsys.readouterr().err
    assert cli.main(["check", "9.6", "--file", path, "--seed", "1", "--lang", "zh"]) == 1  # a flag needs no env
    assert chinese == capsys.readouterr().out


# ----------------------------------------------------------------------------- the starters
@pytest.mark.parametrize("section", core.SECTIONS)
def test_each_starter_gives_its_instructions_in_both_languages(section):
    tree = ast.parse(core.starter_path(section).read_text(encoding="utf-8"))
    documented = [("module", ast.get_docstring(tree))] + [
        (node.name, ast.get_docstring(node)) for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert {name for name, _ in documented[1:]} == {c.function for c in core.checks_for(section)}
    for name, doc in documented:
        marker = f"练习 {section}" if name != "module" else f"{section} "
        start = next(i for i, line in enumerate(doc.splitlines()) if CJK.search(line))
        english, chinese = "\n".join(doc.splitlines()[:start]), "\n".join(doc.splitlines()[start:])
        assert chinese.startswith(marker) and not CJK.search(english), (section, name)
        assert _code_names(english) == _code_names(chinese), (section, name, _code_names(english) ^ _code_names(chinese))
        assert _numbers(english) == _numbers(chinese), (section, name, _numbers(english) ^ _numbers(chinese))
