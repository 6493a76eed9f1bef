"""Run the chapter's sections by number, range or list, in this process, and sum them up.

    python run_all_sections.py --list
    python run_all_sections.py 1            # section 9.1
    python run_all_sections.py 1-3 --models toy
    python run_all_sections.py 1,3 capstone
    python run_all_sections.py all
    python run_all_sections.py menu         # the one interactive mode
    python run_all_sections.py 1-6 --lang zh   # 中文：步骤标题、讲解、标签和图 (or CH09_LANG=zh)
"""
from __future__ import annotations

import argparse
import re
import sys
import time
import traceback
from pathlib import Path

from chapter09 import config
from chapter09.cells import run_cells
from chapter09.cli import add_lang_option, add_model_options
from chapter09.exercises.i18n import resolve
from chapter09.lesson import section_scripts
from chapter09.models import ModelUnavailableError, Settings

SECTION_PATTERN = re.compile(r"^9\.(\d+)_(\w+)\.py$")


def discover() -> dict[str, Path]:
    """'1' -> chapter09/9.1_clip_basics.py, ... and 'capstone' for its guided tour."""
    found = {SECTION_PATTERN.match(path.name).group(1): path for path in section_scripts()}
    if config.CAPSTONE_TOUR.exists():
        found["capstone"] = config.CAPSTONE_TOUR
    return found


def parse_selection(words: list[str], available: dict[str, Path]) -> list[str]:
    """'all', '3', '1-3', '1,3', 'capstone' (mixed freely) -> ordered unique keys."""
    chosen: list[str] = []
    for word in words:
        for part in filter(None, word.split(",")):
            part = part.strip().lower()
            if part == "all":
                keys = list(available)
            elif "-" in part:
                low, high = part.split("-", 1)
                if not (low.isdigit() and high.isdigit()):
                    raise ValueError(f"bad range {part!r}: use e.g. 1-3")
                keys = [str(n) for n in range(int(low), int(high) + 1)]
            else:
                keys = [part]
            for key in keys:
                if key not in available:
                    raise ValueError(f"no section {key!r}; available: {', '.join(available)}")
                if key not in chosen:
                    chosen.append(key)
    return chosen


def run_section(path: Path, section_args: list[str], lang: str = "en") -> tuple[bool, float, str]:
    """Run one script as __main__ in this process, its steps named in ``lang``; (ok, seconds, error text)."""
    saved_argv = sys.argv
    sys.argv = [str(path), *section_args]
    started = time.time()
    try:
        run_cells(path, lang=lang)  # as runpy would, with each step's heading and first sentence printed before it
        return True, time.time() - started, ""
    except SystemExit as stop:
        ok = stop.code in (None, 0)
        return ok, time.time() - started, "" if ok else f"exited with {stop.code}"
    except ModelUnavailableError as error:  # its message says what to do: no traceback needed
        print(f"\nerror: {error}", file=sys.stderr)
        return False, time.time() - started, f"model unavailable: {str(error).splitlines()[0]}"
    except Exception as error:  # a failing section must not stop the others
        traceback.print_exc()
        return False, time.time() - started, f"{type(error).__name__}: {error}"
    finally:
        sys.argv = saved_argv


def title_of(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(r'^"""(.+?)$', text, re.M)
    return match.group(1).strip().removesuffix('"""').rstrip(".") if match else path.stem


def menu(available: dict[str, Path]) -> list[str]:
    print("Chapter 9 sections:")
    for key, path in available.items():
        print(f"  {key:>9}  {title_of(path)}")
    answer = input("Which to run (e.g. 1-3, all, capstone; empty to quit)? ").strip()
    return parse_selection(answer.split(), available) if answer else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("selection", nargs="*", help="all | N | N-M | N,M | capstone | menu")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    parser.add_argument("--out", default=str(config.DEFAULT_OUT_DIR), help="output folder for all sections")
    add_model_options(parser)
    add_lang_option(parser)
    args = parser.parse_args(argv)
    try:
        lang = resolve(args.lang)
    except ValueError as error:  # CH09_LANG names a language the chapter does not speak
        parser.error(str(error))
    available = discover()

    if args.list or not args.selection:
        for key, path in available.items():
            print(f"{key:>9}  {title_of(path)}  ({path.relative_to(config.REPO_DIR)})")
        return 0 if args.list else 2
    try:
        chosen = menu(available) if args.selection == ["menu"] else parse_selection(args.selection, available)
    except ValueError as error:
        parser.error(str(error))

    section_args = ["--out", args.out, *Settings.from_args(args).cli_args(), "--lang", lang]
    rows = []
    for key in chosen:
        ok, seconds, error = run_section(available[key], section_args, lang)
        rows.append((key, title_of(available[key]), ok, seconds, error))

    zh = lang == "zh"
    print("\n" + "=" * 88 + ("\n汇总" if zh else "\nSummary"))
    for key, title, ok, seconds, error in rows:
        verdict = ("成功" if ok else "失败") if zh else ("ok" if ok else "FAILED")
        print(f"  {key:>9}  {verdict:<7} {seconds:7.1f} s  {title}" + (f"\n{'':>20}{error}" if error else ""))
    failed = [row for row in rows if not row[2]]
    print(f"{len(rows)} 节中 {len(rows) - len(failed)} 节运行无误" if zh
          else f"{len(rows) - len(failed)} of {len(rows)} sections ran clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
