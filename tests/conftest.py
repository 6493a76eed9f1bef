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
