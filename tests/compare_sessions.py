"""Run the scripted capstone session (``tests/capstone_session.py``) on two trees and diff the JSON.

Proof that a refactoring changed nothing a user sees (issue 30: the modules moved into folders). The same
session script, this tree's, runs on both: it uses only the command line and HTTP, never a module path.

    git archive 079b29d | (mkdir -p /tmp/old && tar -x -C /tmp/old)    # the tree before the move
    python tests/compare_sessions.py /tmp/old . --keep /tmp/sessions    # prints "identical" or the differences

(``git worktree add --detach /tmp/old 079b29d`` gives the old tree too.) Each session runs with
``PYTHONPATH=TREE`` in the tree's folder, one after the other (each takes a few minutes on the toy models);
``--keep DIR`` keeps both JSON files there. ``python tests/compare_sessions.py OLD.json NEW.json`` diffs two
kept files without running anything. Exit code 0: identical; 1: they differ; 2: a session failed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = Path(__file__).resolve().with_name("capstone_session.py")
SHOWN = 40  # differences printed; the rest are counted


def run_session(tree: Path, out: Path, script: Path) -> float:
    """The session on ``tree`` (its ``chapter09`` first on the path) into ``out``; the seconds it took."""
    env = {**os.environ, "PYTHONPATH": str(tree), "CH09_MODELS": "toy"}
    imported = subprocess.run([sys.executable, "-c", "import chapter09; print(chapter09.__file__)"], cwd=tree,
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
    if not Path(imported).resolve().is_relative_to(tree):  # an installed copy would win: the diff would lie
        raise SystemExit(f"compare_sessions: {tree} imports chapter09 from {imported}, not from that tree")
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(script), str(out)], cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        print(f"the session failed on {tree} (exit {done.returncode}) after {seconds:.0f} s:\n{done.stderr[-4000:]}",
              file=sys.stderr)
        sys.exit(2)
    print(f"session on {tree}: {seconds:.0f} s, {len(json.loads(out.read_text()))} steps", flush=True)
    return seconds


def differences(old, new, where: str = "") -> list[str]:
    """Where ``old`` and ``new`` differ, one line each: the key path, then both values."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            here = f"{where}.{key}" if where else str(key)
            if key not in new:
                found.append(f"{here}: only in old: {json.dumps(old[key], ensure_ascii=False)[:200]}")
            elif key not in old:
                found.append(f"{here}: only in new: {json.dumps(new[key], ensure_ascii=False)[:200]}")
            else:
                found += differences(old[key], new[key], here)
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = [line for i, (a, b) in enumerate(zip(old, new)) for line in differences(a, b, f"{where}[{i}]")]
        if len(old) != len(new):
            found.append(f"{where}: {len(old)} items in old, {len(new)} in new")
        return found
    if old == new and type(old) is type(new):
        return []
    return [f"{where}: old {json.dumps(old, ensure_ascii=False)[:200]} != new {json.dumps(new, ensure_ascii=False)[:200]}"]


def compare(old_steps: list, new_steps: list) -> list[str]:
    """Differences step by step, each named by its command line (the old one's)."""
    found = []
    for i, (old, new) in enumerate(zip(old_steps, new_steps)):
        name = " ".join(str(a) for a in old.get("argv", []))[:100]
        found += [f"step {i} ({name}): {line}" for line in differences(old, new)]
    if len(old_steps) != len(new_steps):
        found.append(f"{len(old_steps)} steps in old, {len(new_steps)} in new")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path, help="the tree before (or a session's JSON)")
    parser.add_argument("new", type=Path, help="the tree after (or a session's JSON)")
    parser.add_argument("--keep", type=Path, help="keep both sessions' JSON in this folder")
    args = parser.parse_args(argv)
    if args.old.suffix == ".json" and args.new.suffix == ".json":
        old_steps, new_steps = (json.loads(p.read_text(encoding="utf-8")) for p in (args.old, args.new))
    else:
        for tree in (args.old, args.new):
            if not (tree / "chapter09" / "capstone" / "__main__.py").is_file():
                parser.error(f"{tree} is not a tree of this repository (no chapter09/capstone/__main__.py)")
        with tempfile.TemporaryDirectory(prefix="ch09-compare-") as scratch:
            keep = args.keep or Path(scratch)
            keep.mkdir(parents=True, exist_ok=True)
            script = Path(scratch) / SESSION.name  # one script for both trees: the one beside this file
            shutil.copy(SESSION, script)
            outs = keep / "old.json", keep / "new.json"
            for tree, out in zip((args.old, args.new), outs):
                run_session(tree.resolve(), out, script)
            old_steps, new_steps = (json.loads(p.read_text(encoding="utf-8")) for p in outs)
    found = compare(old_steps, new_steps)
    if not found:
        print(f"identical ({len(old_steps)} steps)")
        return 0
    for line in found[:SHOWN]:
        print(line)
    if len(found) > SHOWN:
        print(f"... and {len(found) - SHOWN} more differences")
    print(f"{len(found)} differences")
    return 1


if __name__ == "__main__":
    sys.exit(main())
