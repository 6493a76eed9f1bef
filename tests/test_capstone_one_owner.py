"""One owner per decision: what counts as an image file (``images.FORMAT_SUFFIXES``), what is a URI
(``locations.is_uri``), the precision sidecars' one format (``precision_sidecar``), and who decides an index's
precision (``indexer``, for the command line and Python callers alike)."""
import re
import shutil
from pathlib import Path

import pytest

from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def toy_source(tmp_path_factory):
    from chapter09.toyworld import write_dataset

    return write_dataset(tmp_path_factory.mktemp("src"), n=8, seed=11, split="heldout")


def test_a_jfif_and_a_jpe_file_are_indexed_filtered_as_jpeg_and_found(toy_source, tmp_path):
    from PIL import Image

    from chapter09.capstone.filters import Filters
    from chapter09.capstone.indexer import build_index
    from chapter09.capstone.search import LibrarySearch
    from chapter09.clip import clip_encoder
    from chapter09.images import FORMAT_SUFFIXES, IMAGE_SUFFIXES

    assert {".jfif", ".jpe"} <= set(FORMAT_SUFFIXES["jpeg"]) and {".jfif", ".jpe"} <= IMAGE_SUFFIXES
    images = sorted(p for p in toy_source.glob("images/*.png"))[:3]
    library = tmp_path / "lib"
    library.mkdir()
    for image, name in zip(images, ("photo.jfif", "scan.jpe", "other.png")):
        if name.endswith(".png"):
            shutil.copy(image, library / name)
        else:
            Image.open(image).convert("RGB").save(library / name, format="JPEG", quality=95)
    settings = Settings("toy")
    summary = build_index(library, tmp_path / "index", {"clip": clip_encoder("clip", settings)}, workers=0,
                          progress=False)
    assert summary.total == 3 and summary.added == 3 and not summary.skipped and not summary.failed, summary.text()
    searcher = LibrarySearch(tmp_path / "index", settings)
    jpegs = searcher.search([searcher.term("a red circle")], k=3, filters=Filters.parse(types="jfif"))
    assert sorted(h.path for h in jpegs.hits) == ["photo.jfif", "scan.jpe"]
    term = searcher.term(str(library / "photo.jfif"))  # an indexed file: its stored vector
    assert (term.kind, term.value) == ("indexed", "photo.jfif")
    assert searcher.search([term], k=1).hits[0].path == "photo.jfif"


@pytest.mark.unit
def test_only_locations_decides_what_a_uri_is(tmp_path):
    import chapter09.capstone as capstone
    from chapter09.capstone import store
    from chapter09.capstone.locations import is_uri
    from chapter09.capstone.lock import IndexLock, ObjectStoreLock, lock_for

    assert is_uri("s3://bucket/index") and is_uri("memory://x") and not is_uri(tmp_path / "index")
    assert store.is_uri is is_uri  # still importable from the store, the same function
    assert isinstance(lock_for(tmp_path), IndexLock) and lock_for("memory://x") is None
    assert isinstance(lock_for("s3://bucket/index"), ObjectStoreLock)
    asks = re.compile(r"""["']://["']\s+(not\s+)?in\b""")  # the question itself, asked anywhere but in locations
    askers = [p.name for p in Path(capstone.__file__).parent.rglob("*.py")
              if p.name != "locations.py" and asks.search(p.read_text(encoding="utf-8"))]
    assert askers == []
