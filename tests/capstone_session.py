"""A scripted session through the capstone's command line, dumped as JSON with timings and paths normalised.

Proof that a refactoring changed nothing a user sees: run it on two trees and diff the outputs.

    PYTHONPATH=/path/to/tree python tests/capstone_session.py OUT.json

Not a test (no ``test_`` prefix): it takes a minute or two on the toy models. It covers indexing (fp32 with
Chinese-CLIP, a second run with nothing to do, int8 into another index, an excluded folder, a broken and a
non-image file), every search strategy, each filter, combined terms, image search (a file and an indexed path),
caption text alone and hybrid, paths-only, captioning an index and single files, match, eval (retrieval, every
strategy, captions), dedup, and the error cases (exit code and message).
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

TIMING_KEYS = re.compile(r"(^|_)(ms|s|seconds|per_s)$|_ms$|_s$|^images_per_s$|^refreshed$|^commits$")  # commits: on time
DAY = 86_400
BASE = 1_700_000_000


def make_library(work: Path) -> tuple[Path, Path]:
    """(library, data set): 30 toy scenes in folders, formats and dates; a copy, a broken file, a text file."""
    from PIL import Image

    from chapter09.toyworld import write_dataset

    source = write_dataset(work / "src", n=30, seed=4242, split="heldout")
    library = work / "lib"
    for i, image_path in enumerate(sorted((source / "images").iterdir())):
        folder = "trip" if i < 12 else "home"
        (library / folder).mkdir(parents=True, exist_ok=True)
        if i < 12:
            target = library / folder / f"{image_path.stem}.jpg"
            Image.open(image_path).convert("RGB").resize((256, 256) if i < 6 else (128, 128)).save(target, quality=95)
        else:
            target = library / folder / image_path.name
            shutil.copy(image_path, target)
        when = BASE + (30 * DAY + i * DAY if i < 12 else i)
        os.utime(target, (when, when))
    shutil.copy(library / "home" / sorted(os.listdir(library / "home"))[0], library / "home" / "copy.png")
    (library / "broken.jpg").write_bytes(b"not a jpeg at all")
    (library / "notes.txt").write_text("not an image")
    (library / "raw").mkdir()
    shutil.copy(library / "home" / "copy.png", library / "raw" / "left_out.png")
    for path in library.rglob("*"):
        if path.is_file() and not BASE <= path.stat().st_mtime < BASE + 60 * DAY:  # not dated above: a fixed date
            os.utime(path, (BASE, BASE))
    return library, source


def normalise(value, paths: dict[str, str]):
    if isinstance(value, dict):
        return {normalise(k, paths): ("<timing>" if TIMING_KEYS.search(k) and isinstance(v, (int, float, bool))
                                      else normalise(v, paths)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, paths) for v in value]
    if isinstance(value, float):
        return value if not math.isfinite(value) else round(value, 4)
    if isinstance(value, str):
        for real, name in paths.items():
            value = value.replace(real, name)
        return re.sub(r"\d+(\.\d+)? (ms|s)\b", "<t> \\2", value)
    return value


def run(argv: list[str], paths: dict[str, str]) -> dict:
    from chapter09.capstone.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([*argv, "--models", "toy"])
        except SystemExit as exit_:  # argparse refusing a flag
            code = exit_.code
    text = out.getvalue()
    try:
        result = json.loads(text)
    except ValueError:
        result = text
    errors = [line for line in err.getvalue().splitlines() if line.startswith(("error", "usage", "warning"))
              or ": error:" in line]
    return {"argv": normalise(argv, paths), "code": code, "out": normalise(result, paths),
            "errors": normalise(errors, paths)}


def session(work: Path) -> list[dict]:
    library, data = make_library(work)
    fp32, int8 = work / "idx32", work / "idx8"
    import chapter09

    tree = str(Path(chapter09.__file__).resolve().parents[1])  # the models' folders name the tree under test
    paths = {str(work.resolve()): "<work>", str(work): "<work>", tree: "<tree>"}
    image = str(library / "home" / "copy.png")
    steps = []

    def step(*argv):
        steps.append(run([str(a) for a in argv], paths))

    idx = ["--index", fp32]
    common = ["--workers", "0", "--no-progress", "--json", "--exclude", "raw"]
    step("index", library, *idx, "--precision", "fp32", "--chinese-clip", *common)
    step("index", library, *idx, "--precision", "fp32", "--chinese-clip", *common)
    step("index", library, "--index", int8, "--precision", "int8", *common)
    for strategy in ("auto", "clip", "translate", "multilingual", "chinese_clip"):
        step("search", *idx, "--text", "a red circle", "--strategy", strategy, "--json")
        step("search", *idx, "--text", "红色圆形", "--strategy", strategy, "--json")
    step("search", "--index", int8, "--text", "a blue square", "--json")
    for flag, value in (("--folder", "trip"), ("--taken-after", "2023-12-01"), ("--taken-before", "2023-12-01"),
                        ("--camera", "canon"), ("--type", "png"), ("--min-size", "200"), ("--min-width", "200"),
                        ("--min-height", "100")):
        step("search", *idx, "--text", "a green triangle", flag, value, "--json")
    step("search", *idx, "--text", "2:a red circle", "--add", "a blue square", "--subtract", "a green triangle",
         "--json")
    step("search", *idx, "--image", image, "--json")
    step("search", *idx, "--image", "home/copy.png", "--k", "3", "--json")
    step("search", *idx, "--text", "a red circle", "--add", "home/copy.png", "--search", "exact", "--json")
    step("search", *idx, "--text", "a red circle", "--paths-only")
    step("search", *idx, "--text", "a red circle", "--k", "3")
    step("caption", "--index", fp32, "--lang", "en,zh", "--precision", "fp32", "--no-progress", "--json")
    step("caption", "--index", fp32, "--lang", "en,zh", "--precision", "fp32", "--no-progress", "--json")
    step("search", *idx, "--caption-text", "circle", "--json")
    step("search", *idx, "--caption-text", "圆形", "--json")
    step("search", *idx, "--text", "a red circle", "--caption-text", "circle", "--hybrid", "--json")
    step("search", *idx, "--text", "a red circle", "--hybrid", "--k", "4")
    step("caption", image, "--lang", "en,zh", "--json")
    step("match", image, "a red circle", "a blue square", "红色圆形", "--json")
    step("dedup", *idx, "--json")
    step("dedup", *idx)
    step("eval", "--dataset", data, "--json")
    step("eval", "--dataset", data, "--strategy", "all", "--json")
    step("eval", "--dataset", data, "--captions", "--limit", "5", "--json")
    # the error cases: exit code and the one-line message
    step("search", "--index", work / "nowhere", "--text", "a red circle")
    step("search", *idx, "--image", work / "missing.jpg")
    step("search", *idx, "--text", "a red circle", "--taken-after", "yesterday")
    step("search", *idx, "--text", "a red circle", "--type", "docx")
    step("search", *idx, "--text", "a red circle", "--folder", "../elsewhere")
    step("search", *idx)
    step("index", library, "--index", work / "idx-bad", "--batch-size", "0", "--precision", "fp32", "--no-progress")
    step("index", work / "no-library", "--index", work / "idx-bad", "--precision", "fp32", "--no-progress")
    step("index", library, "--index", work / "idx-bad", "--exclude", " ", "--precision", "fp32", "--no-progress")
    step("caption", image, "--index", fp32)
    step("caption")
    step("caption", "--index", fp32, "--engine", "spark")
    step("serve", "--index", fp32, "--host", "0.0.0.0")
    step("serve", "--index", fp32, "--no-auth", "--auth", "ann:pw")
    step("eval", "--dataset", work / "nothing")
    step("dedup", "--index", work / "nowhere")
    step("match", work / "missing.jpg", "a red circle")
    return steps


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("CH09_MODELS", "toy")
    with tempfile.TemporaryDirectory(prefix="ch09-session-") as work:
        steps = session(Path(work))
    text = json.dumps(steps, indent=1, ensure_ascii=False, sort_keys=True)
    if argv:
        Path(argv[0]).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
