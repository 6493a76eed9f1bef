"""Combined queries, filters, caption text and paths-only output of `search`, each against a brute-force
reference (numpy over every stored vector) on a toy library with folders, formats, sizes and dates."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from chapter09.capstone.__main__ import main as capstone
from chapter09.models import Settings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DAY = 86_400
BASE = 1_700_000_000  # 2023-11-14 22:13 UTC


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """60 toy scenes: 20 in trip/ as JPEG with new dates, 10 of those upscaled to 256 px; the rest PNG."""
    from PIL import Image

    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import load_scenes, write_dataset

    source = write_dataset(tmp_path_factory.mktemp("src"), n=60, seed=4242, split="heldout")
    library = tmp_path_factory.mktemp("lib")
    scenes, layout = load_scenes(source), {}
    for i, (name, scene) in enumerate(sorted(load_scenes(source).items())):
        if i < 20:
            relative = f"trip/{Path(name).stem}.jpg"
            image = Image.open(source / name).convert("RGB")
            if i < 10:
                image = image.resize((256, 256))
            (library / "trip").mkdir(exist_ok=True)
            image.save(library / relative, quality=95)
            when = BASE + 30 * DAY + i * DAY
        else:
            relative = f"home/{Path(name).name}"
            (library / "home").mkdir(exist_ok=True)
            shutil.copy(source / name, library / relative)
            when = BASE + i
        os.utime(library / relative, (when, when))
        layout[relative] = scenes[name]
    index = tmp_path_factory.mktemp("idx")
    encoders = {role: clip_encoder(role, Settings("toy")) for role in ("clip", "chinese_clip")}
    build_index(library, index, encoders, workers=0, progress=False)
    searcher = LibrarySearch(index, Settings("toy"))
    return {"library": library, "index": index, "scenes": layout, "searcher": searcher}


def stored(searcher, role="clip"):
    paths, vectors = searcher.store.images(role).vectors()
    return paths, vectors.astype(np.float32)


def reference(searcher, parts, k, keep=None, role="clip"):
    """Brute force: sum of weight * unit vector (texts encoded here, indexed images read from the table),
    normalised; scores over every stored vector, top-k among the rows ``keep`` accepts."""
    from chapter09.clip import clip_encoder

    paths, vectors = stored(searcher, role)
    encoder = clip_encoder(role, searcher.query_settings)
    total = np.zeros(vectors.shape[1], np.float32)
    for kind, value, weight in parts:
        v = encoder.encode_texts([value])[0] if kind == "text" else vectors[paths.index(value)]
        total += weight * v / np.linalg.norm(v)
    scores = vectors @ (total / np.linalg.norm(total))
    order = [i for i in np.argsort(-scores, kind="stable") if keep is None or keep(paths[i])]
    return [(paths[i], float(scores[i])) for i in order[:k]]


def same_ranking(hits, expected):
    assert len(hits) == len(expected)
    assert [round(h["score"], 4) for h in hits] == pytest.approx([s for _, s in expected], abs=2e-3)
    got = {h["path"] for h in hits}
    strict = {p for p, s in expected if s > expected[-1][1] + 2e-3}  # ties at the cut may swap
    assert strict <= got, (strict - got)


def test_a_combined_query_equals_the_brute_force_sum(toy):
    from chapter09.capstone.search.library_search import Term

    searcher, scenes = toy["searcher"], toy["scenes"]
    name = "home/" + sorted(p for p in scenes if p.startswith("home/"))[0].split("/")[1]
    text = scenes[name].captions("en")[0]
    minus = "a blue square"
    result = searcher.search([Term("text", text, 2.0), Term("indexed", name), Term("text", minus, -1.0)], k=8)
    assert result["query_kind"] == "combined" and result["search"] == "exact"
    same_ranking(result["hits"], reference(searcher, [("text", text, 2.0), ("indexed", name, 1.0),
                                                      ("text", minus, -1.0)], 8))
    # the same from the command line, weights in rclip's syntax, an indexed path resolved to its stored vector
    cli = run_json(toy, "--text", f"2:{text}", "--add", name, "--subtract", minus, "--k", "8")
    assert [h["path"] for h in cli["hits"]] == [h["path"] for h in result["hits"]]
    assert [t["kind"] for t in cli["terms"]] == ["text", "indexed", "text"]
    assert [t["weight"] for t in cli["terms"]] == [2.0, 1.0, -1.0]
    # subtracting moves results: the subtracted concept drops
    plain = searcher.search([Term("text", "a red circle")], k=10)["hits"]
    minus_red = searcher.search([Term("text", "a red circle"), Term("text", "red", -1.0)], k=10)["hits"]
    assert [h["path"] for h in plain] != [h["path"] for h in minus_red]


def test_an_image_file_term_is_encoded_and_an_indexed_one_is_read(toy, tmp_path):
    searcher, library = toy["searcher"], toy["library"]
    name = "trip/" + sorted(p.name for p in (library / "trip").iterdir())[12]
    assert searcher.term(str(library / name)).kind == "indexed"  # inside the library and indexed: no re-encode
    assert searcher.term(name).kind == "indexed"
    outside = tmp_path / "copy.jpg"
    shutil.copy(library / name, outside)
    term = searcher.term(f"0.5:{outside}")
    assert (term.kind, term.weight) == ("image", 0.5)
    found = searcher.search([term], k=3)["hits"]
    assert found[0]["path"] == name and found[0]["score"] > 0.99
    assert searcher.term("-1:a red circle").kind == "text"
    from chapter09.capstone.search.queries import QueryError

    with pytest.raises(QueryError, match="no such file here"):
        searcher.term("holiday/missing.jpg")
    with pytest.raises(QueryError, match="cancel out"):
        searcher.search([searcher.term("a red circle"), searcher.term("-1:a red circle")], k=3)


def test_chinese_clip_text_with_image_terms_searches_the_chinese_clip_vectors(toy):
    """Image terms are read in the role of the text terms: Chinese-CLIP's stored vectors for an indexed path."""
    from chapter09.capstone.search.library_search import Term

    searcher, scenes = toy["searcher"], toy["scenes"]
    name = sorted(scenes)[30]
    text = scenes[name].captions("zh")[0]
    result = searcher.search([Term("text", text), Term("indexed", name, 0.5)], k=5, strategy="chinese_clip")
    same_ranking(result["hits"], reference(searcher, [("text", text, 1.0), ("indexed", name, 0.5)], 5,
                                           role="chinese_clip"))
    assert result["hits"][0]["path"] == name


def test_filters_return_the_true_top_k_among_matching_rows(toy):
    from PIL import Image

    from chapter09.capstone.search.filters import Filters
    from chapter09.capstone.search.library_search import Term

    searcher, library = toy["searcher"], toy["library"]

    def shorter(p):
        with Image.open(library / p) as im:
            return min(im.size)

    cases = [
        (Filters.parse(folder="trip"), lambda p: p.startswith("trip/"), 20),
        (Filters.parse(folder=str(library / "home"), library=str(library)), lambda p: p.startswith("home/"), 40),
        (Filters.parse(types="png"), lambda p: p.endswith(".png"), 40),
        (Filters.parse(types="jpg"), lambda p: p.endswith(".jpg"), 20),
        (Filters.parse(min_size=200), lambda p: shorter(p) >= 200, 10),
        (Filters.parse(taken_after="2023-12-20", taken_before="2023-12-25"),
         lambda p: 1_703_030_400 <= (library / p).stat().st_mtime < 1_703_462_400, 5),  # those days, UTC
        (Filters.parse(folder="trip", min_size=200, types="jpeg"), lambda p: p.startswith("trip/") and shorter(p) >= 200,
         10),
    ]
    for filters, keep, matching in cases:
        result = searcher.search([Term("text", "a small red circle")], k=8, filters=filters)
        assert result["matching"] == matching, filters
        assert result["filter_search"] == "exact"
        same_ranking(result["hits"], reference(searcher, [("text", "a small red circle", 1.0)], 8, keep))
        assert all(keep(h["path"]) for h in result["hits"])
    # the toy photos carry no EXIF: their capture time is the file's, and no camera is stored
    assert searcher.metadata("clip").has("taken_s") and "notes" not in searcher.search(
        [Term("text", "a red circle")], k=3, filters=cases[5][0])
    from chapter09.capstone.search.filters import Metadata
    from chapter09.errors import UsageError

    with pytest.raises(UsageError, match="re-run `index`"):
        searcher.search([Term("text", "a red circle")], k=3, filters=Filters.parse(camera="canon"))
    # an index built before metadata was stored: same rows from modification times and suffixes, and it says so
    columns = searcher.metadata("clip").table
    old = Metadata(columns.drop_columns([c for c in ("taken_s", "camera_make", "camera_model", "format")
                                         if c in columns.column_names]))
    for filters, _, _ in (cases[2], cases[3], cases[5]):
        assert (old.mask(filters) == searcher.metadata("clip").mask(filters)).all(), filters
    assert any("modification times" in note for note in old.notes(cases[5][0]))
    assert any("suffixes" in note for note in old.notes(cases[2][0]))
    with pytest.raises(UsageError, match="not inside the library"):
        Filters.parse(folder="/etc", library=str(library))


def test_the_cli_filters_and_paths_only(toy, capsys):
    result = run_json(toy, "--text", "a red circle", "--folder", "trip", "--type", "jpeg", "--min-size", "200",
                      "--k", "20")
    assert result["matching"] == 10 and len(result["hits"]) == 10
    assert capstone(["search", "--index", str(toy["index"]), "--text", "a red circle", "--folder", "trip",
                     "--paths-only", "--k", "5", "--models", "toy"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 5 and out.endswith("\n")
    assert all(Path(line).is_absolute() and Path(line).is_file() and "/trip/" in line for line in lines)
    assert capstone(["search", "--index", str(toy["index"]), "--text", "a red circle", "--taken-after", "yesterday",
                     "--models", "toy"]) == 2
    assert "give an ISO date" in capsys.readouterr().err


def test_caption_text_alone_and_hybrid_with_filters(toy):
    from chapter09.capstone.search.filters import Filters
    from chapter09.capstone.search.library_search import LibrarySearch, Term
    from chapter09.capstone.store.database import Store
    from chapter09.images import file_sha1

    library, index = toy["library"], toy["index"]
    captioned = {"trip/" + sorted(p.name for p in (library / "trip").iterdir())[3]: ("a zebra by the sea", "海边的斑马"),
                 sorted(p for p in toy["scenes"] if p.startswith("home/"))[5]: ("a zebra in a garden", "花园里的斑马")}
    with Store.open(index, library=library, write=True) as store:
        store.put_captions([{"path": p, "sha1": file_sha1(library / p), "en": en, "zh": zh}
                            for p, (en, zh) in captioned.items()])
        store.finish()
    searcher = LibrarySearch(index, Settings("toy"))
    found = searcher.search([], k=5, caption_text="zebra")
    assert {h["path"] for h in found["hits"]} == set(captioned) and found["query_kind"] == "caption text"
    assert {h["path"] for h in searcher.search([], k=5, caption_text="斑马")["hits"]} == set(captioned)
    only_trip = searcher.search([], k=5, caption_text="zebra", filters=Filters.parse(folder="trip"))
    assert [h["path"] for h in only_trip["hits"]] == [p for p in captioned if p.startswith("trip/")]
    hybrid = searcher.search([Term("text", "a zebra")], k=5, caption_text="zebra", hybrid=True)
    assert set(captioned) <= {h["path"] for h in hybrid["hits"][:2]} and hybrid["query_kind"] == "hybrid"
    from chapter09.capstone.search.queries import QueryError

    with pytest.raises(QueryError, match="--hybrid"):
        searcher.search([Term("text", "a zebra")], k=5, caption_text="zebra")


def test_refresh_finds_rows_added_after_the_search_opened(toy, tmp_path):
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search.library_search import LibrarySearch, Term
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    library = tmp_path / "lib"
    shutil.copytree(toy["library"] / "home", library / "home")
    index = tmp_path / "idx"
    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    build_index(library, index, encoders, workers=0, progress=False)
    searcher = LibrarySearch(index, Settings("toy"))
    assert not searcher.refresh()
    extra = write_dataset(tmp_path / "extra", n=3, seed=999, split="heldout")
    shutil.copytree(extra / "images", library / "new")
    build_index(library, index, encoders, workers=0, progress=False)
    assert searcher.refresh()
    result = searcher.search([Term("text", "a red circle")], k=50)
    assert result["library_size"] == 43 and sum(h["path"].startswith("new/") for h in result["hits"]) == 3


@pytest.mark.parametrize("held_rows", [50_000, 0], ids=["captions held in memory", "captions looked up"])
def test_a_live_searcher_asks_lancedb_nothing_until_the_index_changes(toy, tmp_path, monkeypatch, held_rows):
    """``serve``'s searcher (``live``) keeps its table handles: with the index unchanged a refresh reads only the
    folder listings; captions written by ``caption --index`` after it opened show on the next search (held in
    memory, or over ``HELD_CAPTION_ROWS`` looked up per search), and photos added by ``index`` reopen it."""
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search import library_search
    from chapter09.capstone.search.library_search import LibrarySearch, Term
    from chapter09.capstone.store.database import Store
    from chapter09.clip import clip_encoder
    from chapter09.toyworld import write_dataset

    library = tmp_path / "lib"
    shutil.copytree(toy["library"] / "home", library / "home")
    index = tmp_path / "idx"
    encoders = {"clip": clip_encoder("clip", Settings("toy"))}
    build_index(library, index, encoders, workers=0, progress=False)
    monkeypatch.setattr(library_search, "HELD_CAPTION_ROWS", held_rows)
    searcher = LibrarySearch(index, Settings("toy"), live=True)
    first = searcher.search([Term("text", "a red circle")], k=3)
    assert not searcher.stale() and not searcher.refresh()
    assert all(not h["captions"] for h in first["hits"])
    captioned = first["hits"][0]["path"]
    with Store.open(index, write=True) as store:
        sha1 = store.images("clip").rows_of([captioned]).column("sha1")[0].as_py()
        store.put_captions([{"path": captioned, "sha1": sha1, "en": "a caption written later"}])
    assert searcher.stale() and not searcher.refresh()  # captions only: nothing to reopen, the handle moved on
    again = searcher.search([Term("text", "a red circle")], k=3)
    assert again["hits"][0]["captions"] == {"en": "a caption written later"}
    assert (searcher._held_captions is None) == (held_rows == 0)
    extra = write_dataset(tmp_path / "extra", n=2, seed=998, split="heldout")
    shutil.copytree(extra / "images", library / "new")
    build_index(library, index, encoders, workers=0, progress=False)
    assert searcher.stale() and searcher.refresh() and not searcher.stale()
    assert searcher.search([Term("text", "a red circle")], k=3)["library_size"] == 42


def run_json(toy, *argv):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert capstone(["search", "--index", str(toy["index"]), *argv, "--models", "toy", "--json"]) == 0
    return json.loads(out.getvalue())
