"""python -m chapter09.exercises {list,start,check} SECTION [--lang en|zh]: the learner's side of the exercises.

Every line ``start`` and ``check`` print comes from ``i18n``'s catalogue, in the language ``--lang`` names, else
the environment variable ``CH09_LANG``, else English (``--lang zh`` / ``CH09_LANG=zh``: 中文输出)."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import core, i18n
from .i18n import msg, render

DEFAULT_DIR = "my_exercises"


def _learner_file(section: str, folder: str) -> Path:
    return Path(folder) / core.file_name(section)


def cmd_list() -> int:
    for section in core.SECTIONS:
        print(f"{section}:")
        for check in core.checks_for(section):
            print(f"  {check.exercise:<7} {check.function}")
    return 0


def _command(action: str, section: str, folder: str, lang: str, extra: str = "") -> str:
    """The command to run next, carrying the options this one was given (--dir, --lang zh) so it prints the same way."""
    where = f" --dir {folder}" if folder != DEFAULT_DIR and "--file" not in extra else ""
    language = " --lang zh" if lang != i18n.DEFAULT else ""
    return f"python -m chapter09.exercises {action} {section}{where}{extra}{language}"


def cmd_start(section: str, folder: str, force: bool, lang: str = i18n.DEFAULT) -> int:
    target = _learner_file(section, folder)
    if target.exists() and not force:
        print(render(msg("exists", path=target), lang))
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(core.starter_path(section), target)
    print(render(msg("wrote", path=target, command=_command("check", section, folder, lang)), lang))
    return 0


def _report(outcome: core.Outcome, hint: bool) -> str:
    """One exercise's verdict, in the language its texts were written in. Help is graded: not written yet -> the
    lesson step to read (no hint); failed -> the property that failed and where the lesson teaches it;
    --hint -> a more specific hint."""
    lang = outcome.lang
    separator = "：" if lang == "zh" else ": "
    verdict = render(msg("pass" if outcome.passed else "fail"), lang)
    line = f"  {verdict}  {outcome.exercise:<7} {outcome.function}"
    if outcome.passed:
        return line
    if not outcome.written:
        return f"{line}{separator}{outcome.message}\n        {render(msg('read_first', read=outcome.read), lang)}"
    line += f"{separator}{outcome.message}\n        {render(msg('idea_in', read=outcome.read), lang)}"
    return line + (f"\n        {render(msg('hint', hint=outcome.hint), lang)}" if hint and outcome.hint else "")


def _again(section: str, folder: str, file: str | None, seed: int, lang: str = i18n.DEFAULT) -> str:
    """The command that repeats this check on the same data with the second-level hints."""
    return _command("check", section, folder, lang, (f" --file {file}" if file else "") + f" --seed {seed} --hint")


def cmd_check(section: str, folder: str, file: str | None, seed: int | None, hint: bool = False,
              lang: str = i18n.DEFAULT) -> int:
    path = Path(file) if file else _learner_file(section, folder)
    if not path.exists():
        print(render(msg("no_file", path=path, command=_command("start", section, folder, lang)), lang))
        return 2
    try:
        module = core.load_module(path)
    except Exception as error:  # a syntax error in the learner's file: say where, do not crash
        print(render(msg("cannot_import", path=path, error=f"{type(error).__name__}: {error}"), lang))
        return 2
    seed = core.new_seed() if seed is None else seed
    outcomes = core.run_checks(section, module, seed, lang)
    print(render(msg("checking", path=path, section=section, seed=seed), lang))
    for outcome in outcomes:
        print(_report(outcome, hint))
    passed = sum(o.passed for o in outcomes)
    print(render(msg("well_done" if passed == len(outcomes) else "summary", passed=passed, total=len(outcomes)), lang))
    if not hint and any(o.written and not o.passed for o in outcomes):
        print(render(msg("stuck", command=_again(section, folder, file, seed, lang)), lang))
    return 0 if passed == len(outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.exercises", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every exercise, by section")
    for name, text in (("start", "copy a section's starter file into your folder"),
                       ("check", "check your file on data you never saw")):
        command = commands.add_parser(name, help=text)
        command.add_argument("section", choices=core.SECTIONS)
        command.add_argument("--dir", default=DEFAULT_DIR, help=f"your exercise folder (default: ./{DEFAULT_DIR})")
        if name == "start":
            command.add_argument("--force", action="store_true", help="overwrite your file with a fresh starter")
        else:
            command.add_argument("--file", help="check this file instead of DIR/exN_M.py")
            command.add_argument("--seed", type=int, help="repeat a run's data (the seed it printed)")
            command.add_argument("--hint", action="store_true",
                                 help="add a more specific hint to each failure (the first level names the "
                                      "property that failed and the lesson step that teaches it)")
        command.add_argument("--lang", choices=i18n.LANGS,
                             help=f"the language of what it prints: en (default) or zh, 中文; overrides ${i18n.ENV}")
    args = parser.parse_args(argv)
    if args.command == "list":
        return cmd_list()
    try:
        lang = i18n.resolve(args.lang)
    except ValueError as error:  # a CH09_LANG this checker does not speak
        print(error, file=sys.stderr)
        return 2
    if args.command == "start":
        return cmd_start(args.section, args.dir, args.force, lang)
    return cmd_check(args.section, args.dir, args.file, args.seed, args.hint, lang)


if __name__ == "__main__":
    sys.exit(main())
