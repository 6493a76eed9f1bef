"""What every section's checker shares: a check, its outcome, loading a learner's file, running the checks.

A check receives the learner's function and a random generator seeded afresh for each run. It first runs
fixed cases chosen so that the usual mistakes (an axis, a sign, an off-by-one, a missing normalisation, a
gradient that never reaches an input) cannot pass, then cases drawn from the generator, so it also tests on
data the learner never saw. It raises ``Failed`` with which property went wrong (never the right answer);
``NotImplementedError`` means the learner has not written the function yet.

Help comes in two levels, neither of them the algorithm: a failed check names the property that failed and
the lesson step where that idea is taught (``Check.read``); ``check --hint`` adds a more specific hint (the
check's own, or the one the failure carries, ``Failed(..., hint=...)``). The untouched starter gets no
hint at all, only the lesson step to read first.

Every text is an id in ``i18n``'s catalogue (English and Chinese); an outcome is written in the language asked
for (``run_checks(..., lang="zh")``), and only written: what passes and fails never depends on it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import secrets
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from .i18n import Msg, as_msg, msg, render
from .sections import SECTIONS

PACKAGE_DIR = Path(__file__).resolve().parent
NOT_WRITTEN = "not written yet"  # the English of the "not_written" message


class Failed(AssertionError):
    """A check's verdict: the learner's function gave a wrong result; the message says how, not what is right.

    ``message`` is a message id (its placeholders filled from ``fields``) or a ``Msg``; ``hint``, when given
    (an id or a ``Msg``), replaces the check's second-level hint for this failure (it is more specific)."""

    def __init__(self, message: str | Msg, hint: str | Msg | None = None, **fields):
        self.message = as_msg(message, **fields)
        self.hint = as_msg(hint)
        super().__init__(self.message.key)

    def __str__(self) -> str:
        return render(self.message)


@dataclass(frozen=True)
class Check:
    exercise: str  # "9.2.1", as the lesson numbers it
    function: str  # the name the learner fills in
    test: Callable[[Callable, np.random.Generator], None]
    read: str  # the step id in i18n.STEPS where the idea is taught: "9.2/2" (lesson 9.2, step 2)
    hint: str  # the id of the second level (check --hint): a question or a property to test, not the steps


@dataclass(frozen=True)
class Outcome:
    """One check's result, its texts written in ``lang``; ``key`` is the message's id, the same in every language."""
    exercise: str
    function: str
    passed: bool
    message: str
    read: str = ""  # the lesson step to (re)read; empty on a pass
    hint: str = ""  # the second-level hint; empty on a pass and for a function not written yet
    key: str = ""  # the message id: "not_written", "passed", "9.1.input_changed", ...
    lang: str = "en"

    @property
    def written(self) -> bool:
        return self.key != "not_written"


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


@contextlib.contextmanager
def _one_torch_thread():
    """The checks' tensors are tiny: on a busy machine torch's thread pool makes each call 50x slower, so a check
    runs on one thread (and the process gets its setting back afterwards)."""
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch:
            torch.set_num_threads(before)


def run_one(check: Check, function, seed: int, index: int = 0, learner_file: str | None = None,
            lang: str = "en") -> Outcome:
    """One check against one function, on the data that (``seed``, ``index``) draws; its texts in ``lang``."""
    def outcome(passed: bool, message: Msg, read: str = "", hint: Msg | str | None = None) -> Outcome:
        return Outcome(check.exercise, check.function, passed, render(message, lang), render(read, lang),
                       render(as_msg(hint), lang), message.key, lang)

    def failed(message: Msg, hint: Msg | None = None) -> Outcome:
        return outcome(False, message, check.read, hint or check.hint)

    if not callable(function):
        return failed(msg("no_function", function=check.function))
    try:
        with _one_torch_thread():
            check.test(function, np.random.default_rng([seed, index]))
    except NotImplementedError:
        return outcome(False, msg("not_written"), check.read)
    except Failed as verdict:
        return failed(verdict.message, verdict.hint)
    except Exception as error:  # the learner's code crashed: show where, in their file
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == learner_file]
        where = msg("raised_at", line=frames[-1].lineno, code=frames[-1].line) if frames else ""
        return failed(msg("raised", error=type(error).__name__, text=error, where=where))
    return outcome(True, msg("passed"))


def run_checks(section: str, module: ModuleType, seed: int | None = None, lang: str = "en") -> list[Outcome]:
    """Every check of ``section`` against ``module``'s functions, each on fresh data from ``seed``."""
    seed = new_seed() if seed is None else seed
    return [run_one(check, getattr(module, check.function, None), seed, index, getattr(module, "__file__", None),
                    lang) for index, check in enumerate(checks_for(section))]


# ----------------------------------------------------------------------------- helpers the checks share
def close(got, expected, what: str | Msg, atol: float = 1e-5, rtol: float = 1e-4, hint: str | Msg | None = None) -> None:
    """Fail unless ``got`` has ``expected``'s shape and values; the message names the gap, not the values.
    ``what`` (the thing compared) and ``hint`` are message ids or ``Msg``s."""
    what = as_msg(what)
    try:
        got_array = np.asarray(to_numpy(got), dtype=np.float64)
    except (TypeError, ValueError):
        raise Failed("not_numbers", what=what, type=type(got).__name__) from None
    expected_array = np.asarray(to_numpy(expected), dtype=np.float64)
    if got_array.shape != expected_array.shape:
        raise Failed("wrong_shape", hint, what=what, got=got_array.shape, expected=expected_array.shape)
    if np.isnan(got_array).any() and not np.isnan(expected_array).any():
        raise Failed("has_nan", hint, what=what)
    if not np.allclose(got_array, expected_array, atol=atol, rtol=rtol):
        worst = float(np.nanmax(np.abs(got_array - expected_array)))
        wrong = int((~np.isclose(got_array, expected_array, atol=atol, rtol=rtol)).sum())
        raise Failed("values_off", hint, what=what, wrong=wrong, size=expected_array.size, worst=worst)


def to_numpy(value):
    if hasattr(value, "detach"):
        return value.detach().cpu().double().numpy()
    return value


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    vectors = rng.normal(size=(n, d))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def scalar_tensor(got, what: str | Msg = "the_loss"):
    """``got`` as a one-number torch tensor, or Failed saying the contract."""
    if not hasattr(got, "detach") or got.numel() != 1:
        raise Failed("scalar", what=as_msg(what))
    return got


NO_GRADIENT_HINT = "no_gradient_hint"


def gradients_match(function, reference, inputs: dict, learnt: tuple[str, ...], what: str | Msg = "the_loss") -> None:
    """Backpropagate ``function(**inputs)`` and ``reference(**inputs)``; the gradient reaching each input
    named in ``learnt`` must exist and equal the reference's (a loss is only a loss if it can be learnt from)."""
    import torch

    def leaves():
        return {name: tensor.detach().clone().requires_grad_(name in learnt) for name, tensor in inputs.items()}

    what = as_msg(what)
    mine, theirs = leaves(), leaves()
    got = scalar_tensor(function(*mine.values()), what)
    if not got.requires_grad:
        raise Failed("no_grad_at_all", NO_GRADIENT_HINT, what=what)
    got.reshape(()).backward()
    reference(*theirs.values()).backward()
    for name in learnt:
        gradient = mine[name].grad
        if gradient is None or not torch.isfinite(gradient).all() or \
                (not gradient.any() and theirs[name].grad.any()):
            raise Failed("no_grad_reaches", NO_GRADIENT_HINT, name=name)
        close(gradient, theirs[name].grad, msg("gradient_of", what=what, name=name), atol=1e-5, rtol=1e-3)
