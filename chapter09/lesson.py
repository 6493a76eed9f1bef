"""What every section script shares: its options, its output folder, narration and results.

A section starts with ``lesson = start("9.1", "CLIP basics")`` and then reads top to
bottom. The same options work from the command line, from ``run_all_sections.py``
and (with their defaults, or the CH09_* environment variables) inside a notebook.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config


def in_notebook() -> bool:
    return "ipykernel" in sys.modules


@dataclass
class Lesson:
    number: str
    title: str
    out: Path
    models: str
    device: str | None
    dtype: str | None
    results: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def say(self, text: str) -> None:
        """Narrate a step in plain words (wrapped like a paragraph)."""
        print()
        for paragraph in textwrap.dedent(text).strip().split("\n\n"):
            print(textwrap.fill(" ".join(paragraph.split()), width=88))

    def save_figure(self, figure, name: str) -> Path:
        import matplotlib.pyplot as plt

        path = self.out / name
        figure.savefig(path, dpi=110, bbox_inches="tight")
        if not in_notebook():
            plt.close(figure)
        print(f"  [figure] {path}")
        return path

    def record(self, **values) -> None:
        """Keep figures worth reporting; ``finish`` writes them to results.json."""
        self.results.update(values)

    def finish(self) -> Path:
        path = self.out / "results.json"
        self.results["seconds"] = round(time.time() - self.started, 1)
        path.write_text(json.dumps({"section": self.number, "title": self.title, "models": self.models,
                                    **self.results}, indent=2, ensure_ascii=False, default=str))
        print(f"\n[{self.number}] done in {self.results['seconds']} s; results in {path}")
        return path


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--models/--device/--dtype, shared by every entry point of the chapter."""
    parser.add_argument("--models", choices=config.MODEL_MODES, default=None,
                        help="auto: real weights if available, else the toy twins (default; or $CH09_MODELS)")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: best for device)")


def start(number: str, title: str, argv: list[str] | None = None) -> Lesson:
    parser = argparse.ArgumentParser(description=f"Section {number}: {title}")
    parser.add_argument("--out", default=None, help=f"output folder (default: {config.DEFAULT_OUT_DIR})")
    add_model_options(parser)
    if argv is None:
        argv = [] if in_notebook() else sys.argv[1:]
    args, _unknown = parser.parse_known_args(argv)
    if not in_notebook():
        import matplotlib

        matplotlib.use("Agg")  # figures go to files; no window pops up
    from .models import models_mode

    out = Path(args.out or config.DEFAULT_OUT_DIR) / f"section_{number}"
    out.mkdir(parents=True, exist_ok=True)
    lesson = Lesson(number, title, out, models_mode(args.models), args.device, args.dtype)
    print("=" * 88)
    print(f"Section {number}: {title}    (models: {lesson.models}; output: {out})")
    print("=" * 88)
    return lesson


def why_unavailable(error) -> str:
    """Why a model cannot be loaded, in one line. For a role the toy world has no twin of (BLIP-2,
    SmolVLM), say that, rather than suggest a training command that does not exist."""
    import re

    from .toy_train import TRAINERS

    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    missing = re.search(r"toy twin for '(\w+)' is missing", text)
    if missing and missing.group(1) not in TRAINERS:
        role = missing.group(1)
        return (f"{config.model_spec(role).hub_id} is not here (hub, Hugging Face cache or "
                f"{config.ENV_MODEL_DIR_PREFIX}{role.upper()}), and the toy world has no {role} twin")
    return text


_encoders: dict = {}


def clip_encoder(lesson: Lesson, role: str = "clip"):
    """One ClipEncoder per role and settings, shared by the sections run in one process."""
    from .clip_utils import ClipEncoder

    key = (role, lesson.models, lesson.device, lesson.dtype)
    if key not in _encoders:
        _encoders[key] = ClipEncoder(role, models=lesson.models, device=lesson.device, dtype=lesson.dtype)
    return _encoders[key]
