"""What every section's checker shares: a check, its outcome, loading a learner's file, running the checks.

A check receives the learner's function and a random generator seeded afresh for each run, so it
tests on data the learner never saw. It raises ``Failed`` with what went wrong (never the right
answer); ``NotImplementedError`` means the learner has not written the function yet.
"""
from __future__ import annotations

import importlib.util
import secrets
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parent
SECTIONS = ("9.1", "9.2", "9.3", "9.4", "9.5", "9.6")


class Failed(AssertionError):
    """A check's verdict: the learner's function gave a wrong result; the message says how, not what is right."""


@dataclass(frozen=True)
class Check:
    exercise: str  # "9.2.1", as the lesson numbers it
    function: str  # the name the learner fills in
    test: Callable[[Callable, np.random.Generator], None]
    hint: str  # shown when the check fails: where to look, not the answer


@dataclass(frozen=True)
class Outcome:
    exercise: str
    function: str
    passed: bool
    message: str
    hint: str


def file_name(section: str) -> str:
    return f"ex{section.replace('.', '_')}.py"


def starter_path(section: str) -> Path:
    return PACKAGE_DIR / "starters" / file_name(section)


def solution_path(section: str) -> Path:
    return PACKAGE_DIR / "solutions" / file_name(section)


def load_module(path: Path, name: str | None = None) -> ModuleType:
    """Import a learner's file by path (it need not be on sys.path nor inside a package)."""
    path = Path(path)
    name = name or f"ch09_exercise_{path.stem}_{secrets.token_hex(4)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def checks_for(section: str) -> list[Check]:
    if section not in SECTIONS:
        raise ValueError(f"no exercises for section {section!r}; choose one of {', '.join(SECTIONS)}")
    module = importlib.import_module(f"chapter09.exercises.check_{section.replace('.', '_')}")
    return module.CHECKS


def new_seed() -> int:
    return secrets.randbits(31)


def run_checks(section: str, module: ModuleType, seed: int | None = None) -> list[Outcome]:
    """Every check of ``section`` against ``module``'s functions, each on fresh data from ``seed``."""
    seed = new_seed() if seed is None else seed
    outcomes = []
    for index, check in enumerate(checks_for(section)):
        function = getattr(module, check.function, None)
        rng = np.random.default_rng([seed, index])
        if not callable(function):
            outcomes.append(Outcome(check.exercise, check.function, False,
                                    f"your file has no function `{check.function}`", check.hint))
            continue
        try:
            check.test(function, rng)
        except NotImplementedError:
            outcomes.append(Outcome(check.exercise, check.function, False, "not written yet", check.hint))
        except Failed as verdict:
            outcomes.append(Outcome(check.exercise, check.function, False, str(verdict), check.hint))
        except Exception as error:  # the learner's code crashed: show where, in their file
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == module.__file__]
            where = f" (line {frames[-1].lineno}: {frames[-1].line})" if frames else ""
            outcomes.append(Outcome(check.exercise, check.function, False,
                                    f"raised {type(error).__name__}: {error}{where}", check.hint))
        else:
            outcomes.append(Outcome(check.exercise, check.function, True, "passed", ""))
    return outcomes


# ----------------------------------------------------------------------------- helpers the checks share
def close(got, expected, what: str, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Fail unless ``got`` has ``expected``'s shape and values; the message names the gap, not the values."""
    got_array = np.asarray(to_numpy(got), dtype=np.float64)
    expected_array = np.asarray(to_numpy(expected), dtype=np.float64)
    if got_array.shape != expected_array.shape:
        raise Failed(f"{what}: shape {got_array.shape}, expected {expected_array.shape}")
    if np.isnan(got_array).any() and not np.isnan(expected_array).any():
        raise Failed(f"{what}: contains NaN")
    if not np.allclose(got_array, expected_array, atol=atol, rtol=rtol):
        worst = float(np.nanmax(np.abs(got_array - expected_array)))
        wrong = int((~np.isclose(got_array, expected_array, atol=atol, rtol=rtol)).sum())
        raise Failed(f"{what}: {wrong} of {expected_array.size} values are off (largest gap {worst:.3g})")


def to_numpy(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().float().numpy()
    return value


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    vectors = rng.normal(size=(n, d))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
