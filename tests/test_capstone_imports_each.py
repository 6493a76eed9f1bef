"""Every capstone module imports on its own, in a fresh interpreter (issue 30: imports at the module top, so an
import circle would fail here, where ``test_imports``'s static graph cannot run Python's loader), and none loads
torch, transformers, LanceDB or Ray when imported: those stay inside the functions that need them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.slow]  # one interpreter per module: ~1 min of 2 cores

REPO = Path(__file__).resolve().parents[1]
CAPSTONE = REPO / "chapter09" / "capstone"
LAZY_EVERYWHERE = {"torch", "transformers", "lancedb", "ray"}
PROBE = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
         "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")


def capstone_modules() -> list[str]:
    names = []
    for path in sorted(CAPSTONE.rglob("*.py")):
        if path.name == "tour.py":  # importing the tour runs it
            continue
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _loaded(module: str) -> tuple[int, str, set[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, env=env,
                         timeout=120, cwd=REPO)
    tops = set(json.loads(out.stdout.strip().splitlines()[-1])) if out.returncode == 0 else set()
    return out.returncode, out.stderr[-1500:], tops


def test_every_capstone_module_imports_alone_and_leaves_the_heavy_libraries_lazy():
    modules = capstone_modules()
    assert "chapter09.capstone.cli_text" in modules and len(modules) > 50
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(modules, pool.map(_loaded, modules)))
    failed = {m: err for m, (code, err, _) in results.items() if code}
    assert not failed, "modules that do not import alone:\n" + "\n".join(f"{m}: {e}" for m, e in failed.items())
    heavy = {m: sorted(tops & LAZY_EVERYWHERE) for m, (_, _, tops) in results.items() if tops & LAZY_EVERYWHERE}
    assert not heavy, f"modules that load a heavy library when imported: {heavy}"
    gradio = sorted(m for m, (_, _, tops) in results.items() if "gradio" in tops)
    assert all(".capstone.web." in m or ".capstone.bench.web" in m for m in gradio), gradio
