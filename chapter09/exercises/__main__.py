"""python -m chapter09.exercises {list,start,check} SECTION: the learner's side of the exercises."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import core

DEFAULT_DIR = "my_exercises"


def _learner_file(section: str, folder: str) -> Path:
    return Path(folder) / core.file_name(section)


def cmd_list() -> int:
    for section in core.SECTIONS:
        print(f"{section}:")
        for check in core.checks_for(section):
            print(f"  {check.exercise:<7} {check.function}")
    return 0


def cmd_start(section: str, folder: str, force: bool) -> int:
    target = _learner_file(section, folder)
    if target.exists() and not force:
        print(f"{target} already exists: keep working in it, or pass --force to start over (it is overwritten)")
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(core.starter_path(section), target)
    print(f"wrote {target}: fill in the functions, then run\n    python -m chapter09.exercises check {section}"
          + (f" --dir {folder}" if folder != DEFAULT_DIR else ""))
    return 0


def _report(outcome: core.Outcome, hint: bool) -> str:
    """One exercise's verdict. Help is graded: not written yet -> the lesson step to read (no hint);
    failed -> the property that failed and where the lesson teaches it; --hint -> a more specific hint."""
    line = f"  {'PASS' if outcome.passed else 'FAIL'}  {outcome.exercise:<7} {outcome.function}"
    if outcome.passed:
        return line
    if not outcome.written:
        return f"{line}: {outcome.message}\n        read first: {outcome.read}"
    line += f": {outcome.message}\n        the idea is in {outcome.read}"
    return line + (f"\n        hint: {outcome.hint}" if hint and outcome.hint else "")


def _again(section: str, folder: str, file: str | None, seed: int) -> str:
    """The command that repeats this check on the same data with the second-level hints."""
    where = f" --file {file}" if file else (f" --dir {folder}" if folder != DEFAULT_DIR else "")
    return f"python -m chapter09.exercises check {section}{where} --seed {seed} --hint"


def cmd_check(section: str, folder: str, file: str | None, seed: int | None, hint: bool = False) -> int:
    path = Path(file) if file else _learner_file(section, folder)
    if not path.exists():
        print(f"{path} does not exist; make it with\n    python -m chapter09.exercises start {section}"
              + (f" --dir {folder}" if folder != DEFAULT_DIR else ""))
        return 2
    try:
        module = core.load_module(path)
    except Exception as error:  # a syntax error in the learner's file: say where, do not crash
        print(f"{path} cannot be imported: {type(error).__name__}: {error}")
        return 2
    seed = core.new_seed() if seed is None else seed
    outcomes = core.run_checks(section, module, seed)
    print(f"checking {path} ({section}) on fresh data, seed {seed}")
    for outcome in outcomes:
        print(_report(outcome, hint))
    passed = sum(o.passed for o in outcomes)
    print(f"{passed} of {len(outcomes)} passed" + (": well done." if passed == len(outcomes) else ""))
    if not hint and any(o.written and not o.passed for o in outcomes):
        print(f"stuck after rereading that step? This adds a more specific hint to each failure, on the same "
              f"data:\n    {_again(section, folder, file, seed)}")
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
    args = parser.parse_args(argv)
    if args.command == "list":
        return cmd_list()
    if args.command == "start":
        return cmd_start(args.section, args.dir, args.force)
    return cmd_check(args.section, args.dir, args.file, args.seed, args.hint)


if __name__ == "__main__":
    sys.exit(main())
