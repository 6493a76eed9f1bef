"""Shared fixtures: the repo on sys.path, and toy-world data sets built once per session."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def heldout_dir(tmp_path_factory):
    """600 held-out scenes (all colour x shape pairs, unseen seeds) on disk."""
    from chapter09.toyworld import write_dataset

    return write_dataset(tmp_path_factory.mktemp("heldout"), n=600, seed=4242, split="heldout")


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
