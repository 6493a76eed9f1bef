"""The lessons' Chinese edition: which lessons have it, their prose in pairs, and the stamp that keeps them in step.

    python -m chapter09.edition          # per lesson: prose cells in each edition, and what is out of step
    python -m chapter09.edition stamp    # after editing both editions of a prose cell: record that they agree

Each English prose cell of a lesson script is followed by its Chinese counterpart, a cell marked
``# %% [markdown] lang="zh"`` (``cells.py``); code cells are shared. ``editions.stamp`` holds one line per pair:
the lesson and the pair's number, a hash of the English cell and a hash of the Chinese one, as they last agreed
(the hash is ``exercises.i18n.fingerprint``, the one the checker's ``messages.stamp`` uses).
``tests/test_lessons_zh.py`` fails when one edition of a cell changed and the other did not.

A lesson listed in ``PENDING`` has no Chinese yet. To give it its Chinese edition: after each English prose cell
write its ``lang="zh"`` counterpart (same ``##`` headings and numbering), give ``start(...)`` its ``zh=`` title and
each ``lesson.say``/``lesson.t`` its Chinese, remove the lesson from ``PENDING``, run
``python -m chapter09.edition stamp``, then ``python -m chapter09.notebooks 9.N`` writes ``notebooks/zh/9.N_*.ipynb``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cells import Cell, read_cells
from .exercises.i18n import fingerprint
from .lesson import section_scripts

STAMP = Path(__file__).resolve().parent / "editions.stamp"
LANG = "zh"

# Lessons whose Chinese is still to be written (their English is being rewritten); each, once done, leaves this list.
PENDING: dict[str, str] = {
}


def number(script: Path) -> str:
    return script.name.split("_")[0]


def has_chinese(script: Path) -> bool:
    return any(cell.lang == LANG for cell in read_cells(script))


def pairs(script: Path) -> list[tuple[Cell, Cell | None]]:
    """Each English prose cell with the Chinese cell right after it (None where there is none). A Chinese cell
    that does not follow an English one is paired with None on the English side."""
    cells = read_cells(script)
    found: list[tuple[Cell | None, Cell | None]] = []
    for index, cell in enumerate(cells):
        if cell.lang == "en":
            following = cells[index + 1] if index + 1 < len(cells) else None
            found.append((cell, following if following is not None and following.lang == LANG else None))
        elif cell.lang == LANG and (index == 0 or cells[index - 1].lang != "en"):
            found.append((None, cell))
    return found


def stamp_lines(scripts: list[Path] | None = None) -> list[str]:
    """The stamp as it would be written now: for every lesson with Chinese, each pair's number and two hashes."""
    lines = []
    for script in scripts if scripts is not None else section_scripts():
        if not has_chinese(script):
            continue
        for index, (english, chinese) in enumerate(pairs(script), start=1):
            lines.append(f"{number(script)}#{index} {fingerprint(english.text if english else '')} "
                         f"{fingerprint(chinese.text if chinese else '')}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.edition", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", nargs="?", choices=("status", "stamp"), default="status")
    args = parser.parse_args(argv)
    if args.action == "stamp":
        lines = stamp_lines()
        STAMP.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {STAMP} ({len(lines)} pairs of prose cells)")
        return 0
    recorded = set(STAMP.read_text(encoding="utf-8").splitlines()) if STAMP.exists() else set()
    for script in section_scripts():
        found = pairs(script)
        english = sum(e is not None for e, _ in found)
        chinese = sum(z is not None for _, z in found)
        stale = [line for line in stamp_lines([script]) if line not in recorded]
        state = PENDING.get(number(script), "") if not chinese else \
            (f"{len(stale)} pairs changed since the stamp" if stale else "in step")
        print(f"{number(script)}  prose cells: {english} English, {chinese} Chinese  ({state})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
