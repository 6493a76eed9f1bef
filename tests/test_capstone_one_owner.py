"""One owner per decision: what counts as an image file (``images.FORMAT_SUFFIXES``), what is a URI
(``locations.is_uri``), the precision sidecars' one format (``precision_sidecar``), and who decides an index's
precision (``indexer``, for the command line and Python callers alike)."""
import json
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

    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search.filters import Filters
    from chapter09.capstone.search.library_search import LibrarySearch
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
    from chapter09.capstone.store import database as store
    from chapter09.capstone.store.locations import is_uri
    from chapter09.capstone.store.lock import IndexLock, ObjectStoreLock, lock_for

    assert is_uri("s3://bucket/index") and is_uri("memory://x") and not is_uri(tmp_path / "index")
    assert store.is_uri is is_uri  # still importable from the store, the same function
    assert isinstance(lock_for(tmp_path), IndexLock) and lock_for("memory://x") is None
    assert isinstance(lock_for("s3://bucket/index"), ObjectStoreLock)
    asks = re.compile(r"""["']://["']\s+(not\s+)?in\b""")  # the question itself, asked anywhere but in locations
    askers = [p.name for p in Path(capstone.__file__).parent.rglob("*.py")
              if p.name != "locations.py" and asks.search(p.read_text(encoding="utf-8"))]
    assert askers == []


# ----------------------------------------------------------------------------- the precision sidecars
def test_an_old_flat_precision_json_still_reads_and_is_rewritten_in_the_one_format(tmp_path):
    from chapter09.capstone.precision import library as library_precision
    from chapter09.capstone.precision.sidecar import FORMAT, read_verdicts
    from chapter09.cpu import describe

    index = tmp_path / "index"
    index.mkdir()
    old = {"precision": "int8", "reason": "auto picked int8", "locations": {"clip": "/models/clip"},
           "runtime": "torch", "identity": "int8-x", "cpu": describe(), "recorded_at": "2026-01-02 03:04:05"}
    (index / "precision.json").write_text(json.dumps(old), encoding="utf-8")  # as indexes recorded it before
    assert library_precision.read_sidecar(index) == old
    assert library_precision.recorded_precision(index, {"clip": "/models/clip"}) == "int8"
    assert library_precision.recorded_precision(index, {"clip": "/models/other"}) is None

    library_precision.write_sidecar(index, {"precision": "fp32", "reason": "fp32 as asked",
                                            "locations": {"clip": "/models/clip"}})
    written = json.loads((index / "precision.json").read_text(encoding="utf-8"))
    assert written["format"] == FORMAT and len(written["verdicts"]) == 1  # an index holds one verdict
    assert read_verdicts(index / "precision.json")[0]["precision"] == "fp32"
    assert library_precision.recorded_precision(index, {"clip": "/models/clip"}) == "fp32"


def test_an_old_captions_precision_json_still_reads_and_both_sidecars_share_one_format(tmp_path):
    from chapter09.capstone.precision import sidecar as precision_sidecar
    from chapter09.capstone.precision.library import pick_caption_precision, write_sidecar
    from chapter09.captioning import captioner
    from chapter09.cpu import cpu_name, flags
    from chapter09.onnx_captioner import CAPTION_INT8_METHOD

    settings = Settings("toy")
    location = captioner(settings, "blip", "fp32").location
    candidates = ["bf16", "fp32", "int8"]
    here = json.dumps(["blip", location, candidates, cpu_name(), sorted(flags())])
    elsewhere = json.dumps(["blip", location, candidates, "Another CPU", ["sse2"]])
    index = tmp_path / "index"
    index.mkdir()
    sidecar = index / "captions-precision.json"
    sidecar.write_text(json.dumps({here: {"precision": "fp32", "reason": "fp32: recorded by an older version",
                                          "fidelity": {}},
                                   elsewhere: {"precision": "int8", "reason": "int8 elsewhere", "fidelity": {}}}),
                       encoding="utf-8")  # the old format: a key per captioner, candidates and CPU
    subject = {"captioner": "blip", "location": location, "candidates": candidates}
    found = precision_sidecar.find_verdict(sidecar, subject)
    assert found["precision"] == "fp32" and found["reason"].endswith("older version")
    assert len(precision_sidecar.read_verdicts(sidecar)) == 2  # the other CPU's verdict reads, and never matches

    # recorded for this CPU, but before int8 captioning named its method (it was torch's int8 of every linear
    # layer then): auto measures again; with no sample image to read it keeps fp32 and says why
    model, reason, kept = pick_caption_precision(index, None, [], ("en",), settings, "blip", "auto")
    assert model.precision == "fp32" and kept == []
    assert reason == "fp32: no sample image could be read to measure another precision"
    # a verdict for today's int8 method is read, not measured again (no sample, no store needed)
    current = {**subject, "int8": CAPTION_INT8_METHOD}
    precision_sidecar.record_verdict(sidecar, {"precision": "fp32", "reason": "fp32: measured before"}, current)
    model, reason, kept = pick_caption_precision(index, None, [], ("en",), settings, "blip", "auto")
    assert model.precision == "fp32" and kept == []
    assert reason == "fp32: measured before (measured on an earlier run of this index)"

    precision_sidecar.record_verdict(sidecar, {"precision": "int8", "reason": "int8 passes"}, subject)
    write_sidecar(index, {"precision": "fp32", "reason": "fp32 as asked", "locations": {"clip": "toy"}})
    captions = json.loads(sidecar.read_text(encoding="utf-8"))
    images = json.loads((index / "precision.json").read_text(encoding="utf-8"))
    assert captions["format"] == images["format"] == precision_sidecar.FORMAT
    assert [v["precision"] for v in captions["verdicts"]] == ["int8", "int8"]  # elsewhere's kept, here's replaced
    required = {"precision", "reason", "cpu", "recorded_at"}
    assert all(required <= set(v) for v in captions["verdicts"] + images["verdicts"])


# ----------------------------------------------------------------------------- who decides an index's precision
def test_build_index_from_python_decides_and_records_its_precision(toy_source, tmp_path):
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.precision.library import read_sidecar, recorded_precision
    from chapter09.clip import clip_encoder
    from chapter09.cpu import describe

    settings = Settings("toy")
    library = toy_source / "images"
    fp32 = build_index(library, tmp_path / "fp32", settings=settings, precision="fp32", workers=0, progress=False,
                       log=lambda m: None)
    assert fp32.total == 8 and fp32.precision["precision"] == "fp32" and not fp32.precision["measured"]
    assert fp32.to_json()["precision"] == fp32.precision and list(fp32.to_json())[-1] == "precision"
    recorded = read_sidecar(tmp_path / "fp32")
    assert recorded["precision"] == "fp32" and recorded["cpu"] == describe() and recorded["locations"]["clip"]

    auto = build_index(library, tmp_path / "auto", settings=settings, precision="auto", workers=0, progress=False,
                       log=lambda m: None)
    chosen = auto.precision["precision"]
    assert auto.precision["measured"] and set(auto.precision["fidelity"]["clip"]) >= {"fp32", chosen}
    assert read_sidecar(tmp_path / "auto")["precision"] == chosen
    assert recorded_precision(tmp_path / "auto", {"clip": recorded["locations"]["clip"]}) == chosen
    assert auto.added == 8 and any("kept from the precision check" in note for note in auto.notes)

    encoder = clip_encoder("clip", settings)  # its own default precision: fp32, or bf16 on a CPU with native bf16
    given = build_index(library, tmp_path / "given", {"clip": encoder}, workers=0,
                        progress=False)  # encoders built by the caller: their precision is recorded as given
    assert given.precision is None and "precision" not in given.to_json()
    recorded = read_sidecar(tmp_path / "given")
    assert recorded["precision"] == encoder.precision and "given" in recorded["reason"] and not recorded["measured"]
    with pytest.raises(TypeError, match="not both"):
        build_index(library, tmp_path / "given", {"clip": clip_encoder("clip", settings)}, precision="int8")
