"""The search records (``capstone.records``): one JSON form, in the key order the dict results had, the omitted
keys left out, and the dict-style reading that notebooks and tests rely on; a search on a toy index returns them."""
import dataclasses
import json

import pytest

from chapter09.capstone.search.records import Hit, SearchResult


def _result(**changes) -> SearchResult:
    hits = (Hit(1, "a/b.jpg", 0.5, {"en": "a dog"}, {"sha1": "ab", "size": 3, "mtime_ns": 7}),
            Hit(2, "c.png", 0.25))
    values = dict(strategy="clip", query_kind="text", terms=[{"kind": "text", "value": "dog", "weight": 1.0}],
                  query="dog", encoded_text="dog", search="exact", library_size=2, ms=1.5, hits=hits)
    return SearchResult(**{**values, **changes})


@pytest.mark.unit
def test_the_json_keeps_the_dict_results_keys_in_order_and_leaves_out_what_is_absent():
    plain = _result().to_json()
    assert list(plain) == ["strategy", "query_kind", "terms", "query", "encoded_text", "search", "ann_nprobe",
                           "ann_recall_at_10", "library_size", "ms", "hits"]
    assert plain["ann_nprobe"] is None and plain["hits"][0] == {
        "rank": 1, "path": "a/b.jpg", "score": 0.5, "captions": {"en": "a dog"},
        "indexed": {"sha1": "ab", "size": 3, "mtime_ns": 7}}
    assert plain["hits"][1]["captions"] == {} and isinstance(plain["terms"], list)

    filtered = _result(filters={"folder": "a"}, matching=1, filter_search="exact", notes=["n"]).to_json()
    # a filter's facts come with it, filter_nprobe too when None (the exact search has none)
    assert list(filtered)[5:10] == ["filters", "matching", "filter_search", "filter_nprobe", "notes"]
    assert filtered["filter_nprobe"] is None and filtered["notes"] == ["n"]
    web = dataclasses.replace(_result(), refresh_ms=0.2, refreshed=False).to_json()
    assert list(web)[-2:] == ["refresh_ms", "refreshed"] and web["refreshed"] is False
    assert json.loads(json.dumps(web)) == web  # JSON-ready as it is


@pytest.mark.unit
def test_the_records_read_like_the_dicts_they_replace():
    result = _result()
    assert result["hits"][0]["path"] == "a/b.jpg" == result.hits[0].path
    assert "query" in result and "notes" not in result and "filter_nprobe" not in result
    assert result.get("notes", ()) == () and result.get("strategy") == "clip"
    with pytest.raises(KeyError):
        result["caption_text"]  # noqa: B018 -- absent from its JSON, so absent as a key
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.ms = 0
    assert result.keys() == list(result.to_json())
    assert _result(filters={"f": 1}, filter_search="ivf", filter_nprobe=8, matching=3).filter_how == "ivf, nprobe 8"


def test_a_search_returns_records_whose_json_is_what_search_json_prints(tmp_path, capsys):
    from chapter09.capstone.__main__ import main as capstone
    from chapter09.capstone.index.build import build_index
    from chapter09.capstone.search.library_search import LibrarySearch
    from chapter09.clip import clip_encoder
    from chapter09.models import Settings
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path / "lib", n=12, seed=7, split="heldout")
    index = tmp_path / "index"
    build_index(library, index, {"clip": clip_encoder("clip", Settings("toy"))}, workers=0, progress=False)
    result = LibrarySearch(index, Settings("toy")).by_text("a red circle", 5, "clip")
    assert isinstance(result, SearchResult) and all(isinstance(h, Hit) for h in result.hits)
    assert [h.rank for h in result.hits] == [1, 2, 3, 4, 5]
    assert all(h.indexed["sha1"] and h.indexed["size"] > 0 for h in result.hits)
    assert capstone(["search", "--index", str(index), "--text", "a red circle", "--strategy", "clip",
                     "--k", "5", "--models", "toy", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = result.to_json()
    printed.pop("ms"), expected.pop("ms")  # the one timing
    assert printed == json.loads(json.dumps(expected))
