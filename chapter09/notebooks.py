"""Notebooks generated from the section scripts, never edited by hand.

    python -m chapter09.notebooks            # write notebooks/9.N_name.ipynb for every section
    python -m chapter09.notebooks --check    # fail if a committed notebook is out of date

Each section script is in jupytext's percent format (``# %%`` code cells,
``# %% [markdown]`` text cells), so the notebook is the script, cell by cell.
The package is installed (``pip install -r requirements.txt`` installs it in editable mode),
so a notebook runs from any folder. The CH09_MODELS / CH09_OUT environment variables choose
models and output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import config
from .lesson import section_scripts

NOTEBOOK_DIR = config.REPO_DIR / "notebooks"


def notebook_path(script: Path) -> Path:
    return NOTEBOOK_DIR / f"{script.stem}.ipynb"


def render(script: Path) -> str:
    """The notebook's JSON text for ``script`` (outputs empty, stable metadata, so diffs stay small)."""
    import jupytext
    import nbformat

    notebook = jupytext.reads(script.read_text(encoding="utf-8"), fmt="py:percent")
    notebook.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"},
                         "generated_from": f"chapter09/{script.name} by `python -m chapter09.notebooks`"}
    for index, cell in enumerate(notebook.cells):
        cell.metadata = {}
        cell["id"] = f"cell-{index}"
    return nbformat.writes(notebook) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report notebooks that are missing or stale")
    args = parser.parse_args(argv)
    NOTEBOOK_DIR.mkdir(exist_ok=True)
    stale = []
    for script in section_scripts():
        target, text = notebook_path(script), render(script)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(config.REPO_DIR)}")
    if args.check and stale:
        print("out of date (run `python -m chapter09.notebooks`): " + ", ".join(p.name for p in stale))
        return 1
    print(f"{len(section_scripts())} notebooks up to date in {NOTEBOOK_DIR.relative_to(config.REPO_DIR)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
