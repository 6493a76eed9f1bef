"""A lesson script's cells, and running them in a terminal with each step's heading shown.

The lessons are jupytext "percent" scripts: ``# %%`` starts a code cell, ``# %% [markdown]`` a prose
cell whose lines are comments. A notebook shows the prose; a plain ``python 9.N_*.py`` run skips it.
``run_cells`` runs the code cells in order, in one namespace as ``runpy`` would, and before each
step prints the heading of the prose cell above it and that cell's first sentence, so the terminal
run reads as a sequence of named steps with one line of explanation each.

Two editions in one script: an English prose cell may be followed by its Chinese counterpart, a cell
marked ``# %% [markdown] lang="zh"`` (jupytext's percent-format cell metadata). Code cells are shared.
``edition`` picks one language's prose; an English cell without a counterpart stands in for the Chinese
one, so a lesson whose Chinese is not written yet still reads (in English) in a Chinese run.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CELL_MARK = "# %%"
MARKDOWN_MARK = "# %% [markdown]"
LANG_MARK = re.compile(r'\blang="?([a-z]{2})"?')  # '# %% [markdown] lang="zh"'
DEFAULT_LANG = "en"


@dataclass(frozen=True)
class Cell:
    kind: str  # "code" or "markdown"
    text: str  # the code, or the prose with its comment marks removed
    first_line: int  # 1-based line of the cell's first line in the script (after its marker)
    lang: str | None = None  # a prose cell's language ("en" unless marked); None for code


def read_cells(path: Path) -> list[Cell]:
    """The script's cells in order; lines before the first marker (the module docstring) form a code cell."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    cells: list[Cell] = []
    kind, lang, start, body = "code", None, 1, []
    for number, line in enumerate(lines, start=1):
        if line.startswith(CELL_MARK):
            cells.append(Cell(kind, _text(kind, body), start, lang))
            kind = "markdown" if line.startswith(MARKDOWN_MARK) else "code"
            marked = LANG_MARK.search(line[len(MARKDOWN_MARK):]) if kind == "markdown" else None
            lang = (marked.group(1) if marked else DEFAULT_LANG) if kind == "markdown" else None
            start, body = number + 1, []
        else:
            body.append(line)
    cells.append(Cell(kind, _text(kind, body), start, lang))
    return [cell for cell in cells if cell.text.strip()]


def keep_for(langs: list[str | None], lang: str) -> list[bool]:
    """Which cells one edition keeps, given each cell's language (None for code, which every edition keeps):
    the prose in ``lang``; in another edition than English, an English prose cell stands in where no
    counterpart in ``lang`` follows it."""
    keep = []
    for index, cell_lang in enumerate(langs):
        if cell_lang is None or cell_lang == lang:
            keep.append(True)
        elif cell_lang == DEFAULT_LANG:
            following = langs[index + 1] if index + 1 < len(langs) else None
            keep.append(following != lang)
        else:
            keep.append(False)
    return keep


def edition(cells: list[Cell], lang: str = DEFAULT_LANG) -> list[Cell]:
    """The cells one language's reader sees: all code, and the prose in ``lang`` (see ``keep_for``)."""
    return [cell for cell, keep in zip(cells, keep_for([c.lang for c in cells], lang)) if keep]


def _text(kind: str, lines: list[str]) -> str:
    if kind == "code":
        return "\n".join(lines)
    return "\n".join(re.sub(r"^# ?", "", line) for line in lines)


def step_line(prose: str) -> str | None:
    """'## 2. Search with util ...' and the sentence after it -> two lines for the terminal; None without a heading."""
    heading = next((line for line in prose.splitlines() if re.match(r"#{2,3} ", line)), None)
    if heading is None:
        return None
    after = prose.split(heading, 1)[1].strip()
    paragraph = " ".join(after.split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?:])\s|(?<=[。！？：])", paragraph, maxsplit=1)[0] if paragraph else ""
    title = heading.lstrip("#").strip()
    return f"\n--- {title}" + (f"\n    {sentence}" if sentence else "")


def run_cells(path: Path, narrate: Callable[[str], None] = print, lang: str = DEFAULT_LANG) -> dict:
    """Run the script's code cells as ``__main__`` in one namespace, narrating each step (in ``lang``'s
    edition of the prose); returns the namespace.

    Each cell is compiled with the script's file name and its own line numbers, so a traceback points at
    the script's line as it would under ``runpy``.
    """
    path = Path(path)
    namespace = {"__name__": "__main__", "__file__": str(path), "__builtins__": __builtins__}
    for cell in edition(read_cells(path), lang):
        if cell.kind == "markdown":
            line = step_line(cell.text)
            if line:
                narrate(line)
            continue
        code = compile("\n" * (cell.first_line - 1) + cell.text, str(path), "exec")
        exec(code, namespace)  # noqa: S102 - running the learner's own lesson script is the point
    return namespace
