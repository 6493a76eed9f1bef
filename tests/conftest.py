"""Shared fixtures (toy-world data sets and real-architecture checkpoints, built once per session) and the
test groups: every test is ``unit``, ``quality`` or ``e2e`` (pyproject.toml), so a maintainer can run

    python -m pytest -q -m unit       # seconds per file: functions and classes on their own
    python -m pytest -q -m quality    # the trained twins' measured figures on held-out data
    python -m pytest -q -m e2e        # whole commands, lessons, notebooks, the web UI in a browser
"""
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Under pytest-xdist (run_tests.sh: one worker per core) each worker keeps to one torch thread: the toy models
# are too small for two threads to help, and two workers with two threads each fight over two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
# Each test's index measures its own precision verdict unless a test turns the user-wide cache on itself
# (chapter09/capstone/precision/verdicts.py): a verdict left by another test would change what is measured.
os.environ.setdefault("CH09_PRECISION_CACHE", "0")
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # run_all_sections.py, and test helpers (real_artifacts) by name

# A file's group, unless a test marks itself otherwise.
GROUPS = {
    "quality": {"test_clip_quality", "test_multilingual", "test_vl_toy_quality", "test_translation", "test_toy_blip2",
                "test_capstone_strategies", "test_capstone_finetune", "test_precision"},
    "e2e": {"test_runner", "test_sections_4_6", "test_vl_notebooks", "test_notebooks", "test_capstone_demo",
            "test_capstone_serve", "test_capstone_bench", "test_capstone_describe", "test_capstone_library",
            "test_real_path_e2e", "test_capstone_ray"},
}
MARKERS = ("unit", "quality", "e2e")

# run_tests.sh sets this: a skipped test fails the run, so a missing install step cannot hide behind "N skipped".
ENV_STRICT = "CH09_TESTS_STRICT"
# What a skipped group needs (a word of its reason) and the command that brings it, for the closing summary.
ENABLERS = {
    "requirements-real-artifacts": "pip install --no-deps -r requirements-real-artifacts.txt",
    "ray": "pip install -r requirements-scale.txt",
    "chromium": "apt-get install -y --no-install-recommends chromium fonts-wqy-microhei fonts-liberation",
    "playwright": "pip install -r requirements-test.txt",
}
_skipped: list[str] = []


# The files that take longest (measured with --durations on a 2-core machine), run first: under pytest-xdist
# (--dist loadfile) a long file handed out last keeps one worker busy while the others have finished.
LONGEST_FIRST = ("test_sections_4_6", "test_capstone_store_ray", "test_capstone_store", "test_capstone_demo",
                 "test_capstone_strategies", "test_real_path_e2e", "test_toy_train", "test_capstone_library",
                 "test_runner", "test_capstone_s3", "test_capstone_serve", "test_capstone_caption_text",
                 "test_capstone_faults", "test_capstone_crash", "test_capstone_serve_search", "test_real_model_paths",
                 "test_capstone_finetune", "test_capstone_watch", "test_capstone_login", "test_vl_notebooks",
                 "test_real_preprocessing", "test_capstone_bench", "test_vl_toy_quality")


def _file_rank(item) -> int:
    module = Path(str(item.fspath)).stem
    return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items):
    for item in items:
        if any(item.get_closest_marker(name) for name in MARKERS):
            continue
        module = Path(str(item.fspath)).stem
        group = next((name for name, modules in GROUPS.items() if module in modules), "unit")
        item.add_marker(getattr(pytest.mark, group))
    items.sort(key=_file_rank)  # stable: a file's own tests keep their order


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(_skip_reason(report))


def pytest_terminal_summary(terminalreporter):
    """Every skipped group, its reason and the command that enables it (none skipped: one line says so)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if not _skipped:
        terminalreporter.write_line("skipped groups: none (every test ran)")
        return
    terminalreporter.section("skipped groups")
    for reason, count in Counter(_skipped).most_common():
        enable = next((command for word, command in ENABLERS.items() if word in reason), None)
        line = f"{count:4d} skipped: {reason}"
        if enable and enable not in reason:
            line += f"\n      enable with: {enable}"
        terminalreporter.write_line(line)
    if os.environ.get(ENV_STRICT):
        terminalreporter.write_line(f"{ENV_STRICT} is set: a skipped test fails this run (install what it needs)")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller gathers every worker's reports and decides
    if os.environ.get(ENV_STRICT) and _skipped and exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(scope="session")
def heldout_dir(tmp_path_factory):
    """600 held-out scenes (all colour x shape pairs, unseen seeds) on disk."""
    from chapter09.toyworld import write_dataset

    return write_dataset(tmp_path_factory.mktemp("heldout"), n=600, seed=4242, split="heldout")


@pytest.fixture(scope="session")
def hard_dir(tmp_path_factory):
    """600 scenes of the hard split (2-4 objects, families of binding and position swaps), unseen seeds."""
    from chapter09.toyworld import write_dataset

    return write_dataset(tmp_path_factory.mktemp("hard"), n=600, seed=4243, split="hard")


# Real tokenizers and architectures with random weights (tests/real_artifacts.py), built once per session.
def _real_artifacts_or_skip():
    import real_artifacts

    reason = real_artifacts.missing_reason()
    if reason:
        pytest.skip(reason)
    return real_artifacts


@pytest.fixture(scope="session")
def real_clip_dir(tmp_path_factory):
    """A folder that loads as openai/clip-vit-base-patch32 (CLIPModel, 151 M random weights)."""
    return _real_artifacts_or_skip().build_clip(tmp_path_factory.mktemp("real_clip"))


@pytest.fixture(scope="session")
def real_chinese_clip_dir(tmp_path_factory):
    """A folder that loads as OFA-Sys/chinese-clip-vit-base-patch16 (ChineseCLIPModel, 188 M random weights)."""
    return _real_artifacts_or_skip().build_chinese_clip(tmp_path_factory.mktemp("real_chinese_clip"))


@pytest.fixture(scope="session")
def real_clip(real_clip_dir):
    from chapter09.clip import ClipEncoder
    from chapter09.models import Settings

    return ClipEncoder("clip", Settings(mode="real", device="cpu", dtype="float32"), local_dir=real_clip_dir)


@pytest.fixture(scope="session")
def real_chinese_clip(real_chinese_clip_dir):
    from chapter09.clip import ClipEncoder
    from chapter09.models import Settings

    return ClipEncoder("chinese_clip", Settings(mode="real", device="cpu", dtype="float32"),
                       local_dir=real_chinese_clip_dir)


@pytest.fixture(autouse=True)
def _no_language_left_spoken():
    """Each test starts with no language being spoken (``exercises.i18n.SPEAKING``): a web handler called directly
    sets the request's language in the test's own context (Gradio runs each event in a context of its own), which
    would otherwise carry into the next test of the same worker."""
    from chapter09.exercises.i18n import SPEAKING

    token = SPEAKING.set(None)
    yield
    SPEAKING.reset(token)
