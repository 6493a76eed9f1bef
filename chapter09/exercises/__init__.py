"""Exercises for every section, with checkers: write the function, run one command, see what passes.

    python -m chapter09.exercises list               # every exercise, by section
    python -m chapter09.exercises start 9.2          # copy the 9.2 starter to my_exercises/ex9_2.py
    python -m chapter09.exercises check 9.2          # run the checks on data you never saw
    python -m chapter09.exercises check 9.2 --hint   # ... and add a more specific hint to each failure
    python -m chapter09.exercises check 9.2 --lang zh   # 用中文输出判分结果、说明和提示 (or CH09_LANG=zh)

Each section's exercises are functions in one file with a docstring saying what to write. ``check``
calls them first on fixed cases that separate right from wrong, then on data drawn afresh each run (its
seed is printed, ``--seed`` repeats a run) and prints, per exercise, PASS or FAIL. Help is graded and is
never the answer: not written yet -> the lesson step to read; a failure -> which property failed and the
lesson step that teaches it; ``--hint`` -> a more specific hint. The checks compare with
the chapter's own library where it has the function (the contrastive loss, BLIP-2's chat prompt,
the tiny VLM's forward pass). Everything ``start`` and ``check`` print, and every starter's instructions, are in
English and Chinese (``i18n.py`` says where the texts live). Solutions are in ``chapter09/exercises/solutions/``: look after trying.
"""
from .core import SECTIONS, Outcome, checks_for, run_checks

__all__ = ["SECTIONS", "Outcome", "checks_for", "run_checks"]
