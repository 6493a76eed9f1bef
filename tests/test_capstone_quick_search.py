"""The cold quick search (issue 34): a plain text ``search`` answered from INDEX/quick without torch, printing what
the full search prints; a stale, corrupt or missing snapshot falls back to the full search with no error."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chapter09.capstone.__main__ import main
from chapter09.capstone.search import quick as quick_search

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--models", "toy", "--device", "cpu"]
SCORE_TOLERANCE = 1e-4  # the saved tower is ONNX Runtime's export of the toy's torch fp32: rounding differs


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory):
    """A toy index, with this module's own ONNX cache (the translator reader's files live there, and a test
    changes one of them: another worker's tests must not see it). Set before any snapshot is written, since the
    snapshot's stamp holds the ``CH09_`` environment."""
    from chapter09.toyworld import write_dataset

    work = tmp_path_factory.mktemp("quick")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CH09_CACHE", str(work / "cache"))
        library = write_dataset(work / "lib", n=16, seed=7, split="heldout")
        index = work / "index"
        assert main(["index", str(library), "--index", str(index), "--precision", "fp32", "--no-progress",
                     *FLAGS]) == 0
        yield library, index


def _search(capsys, index, *extra, quick: bool = True) -> str:
    os.environ[quick_search.ENV_QUICK] = "1" if quick else "0"
    try:
        capsys.readouterr()
        assert main(["search", "--index", str(index), *extra, *FLAGS]) == 0
        return capsys.readouterr().out
    finally:
        os.environ.pop(quick_search.ENV_QUICK, None)


def _same_json(full: str, quick: str) -> None:
    """Equal JSON but for the timing (ms) and scores within float rounding, ranks and paths equal."""
    a, b = json.loads(full), json.loads(quick)
    a_hits, b_hits = a.pop("hits"), b.pop("hits")
    a.pop("ms"), b.pop("ms")
    assert a == b
    assert [h["path"] for h in a_hits] == [h["path"] for h in b_hits]
    for x, y in zip(a_hits, b_hits):
        assert abs(x.pop("score") - y.pop("score")) < SCORE_TOLERANCE
        assert x == y


def _without_ms(text: str) -> list[str]:
    return [re.sub(r"[0-9.]+ ms", "(ms)", line) for line in text.splitlines()]


def test_quick_output_equals_full_output(toy_index, capsys):
    _, index = toy_index
    shutil.rmtree(index / quick_search.FOLDER, ignore_errors=True)
    full_json = _search(capsys, index, "--text", "a red circle", "--json", "--k", "5", quick=False)
    assert quick_search.snapshot_folder(index) is None  # turned off: nothing written either
    _search(capsys, index, "--text", "a red circle")  # no snapshot yet: the full search answers and writes it
    assert quick_search.snapshot_folder(index) is not None
    snapshot = quick_search.open_snapshot(index, _flags())
    assert snapshot is not None and snapshot.meta["rows"] == 16
    _same_json(full_json, _search(capsys, index, "--text", "a red circle", "--json", "--k", "5"))
    for extra in ([], ["--lang", "zh"], ["--strategy", "clip", "--k", "3"]):
        full = _search(capsys, index, "--text", "a blue square", *extra, quick=False)
        assert _without_ms(_search(capsys, index, "--text", "a blue square", *extra)) == _without_ms(full)


# a cold `search` in a fresh interpreter, then the heavy libraries it imported and its exit code on a last line
COLD_PROBE = ("import runpy, sys; sys.argv = ['capstone'] + sys.argv[1:]\n"
              "try:\n    runpy.run_module('chapter09.capstone', run_name='__main__')\nexcept SystemExit as e:\n"
              "    code = e.code\n"
              "print('HEAVY', sorted({m.split('.')[0] for m in sys.modules} & "
              "{'torch', 'transformers', 'lancedb', 'pyarrow', 'faiss'}), code)")


def _answers_cold_without_torch(capsys, index, text: str) -> None:
    """A fresh process answers ``search --text TEXT`` importing none of the heavy libraries, printing what the
    full search prints."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", COLD_PROBE, "search", "--index", str(index), "--text", text, *FLAGS],
                         capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY [] 0", out.stderr[-2000:]
    full = _search(capsys, index, "--text", text, quick=False)
    assert _without_ms("\n".join(out.stdout.strip().splitlines()[:-1])) == _without_ms(full.strip())


def test_quick_path_imports_no_torch(toy_index, capsys):
    _, index = toy_index
    _search(capsys, index, "--text", "a green triangle")  # a fresh snapshot
    _answers_cold_without_torch(capsys, index, "a green triangle")


def test_stale_snapshot_falls_back_and_is_rewritten(toy_index, capsys):
    library, index = toy_index
    _search(capsys, index, "--text", "a red circle")
    before = quick_search.snapshot_folder(index)
    source = sorted((library / "images").iterdir())[0]
    shutil.copy(source, library / "images" / "added_copy.png")
    assert main(["index", str(library), "--index", str(index), "--precision", "fp32", "--no-progress", *FLAGS]) == 0
    assert quick_search.open_snapshot(index, _flags()) is None  # the index changed after the export
    answered = json.loads(_search(capsys, index, "--text", "a red circle", "--json", "--k", "17"))
    assert answered["library_size"] == 17 and len(answered["hits"]) == 17
    assert quick_search.snapshot_folder(index) not in (None, before)  # the full search wrote a fresh one
    _same_json(_search(capsys, index, "--text", "a red circle", "--json", "--k", "17", quick=False),
               _search(capsys, index, "--text", "a red circle", "--json", "--k", "17"))


def _flags() -> dict:
    return {**dict.fromkeys(quick_search.MODEL_FLAGS), "models": "toy", "device": "cpu"}


@pytest.mark.parametrize("damage", ["meta", "tower", "weights", "pointer"])
def test_corrupt_or_missing_snapshot_falls_back(toy_index, capsys, damage):
    _, index = toy_index
    _search(capsys, index, "--text", "a red circle")
    folder = quick_search.snapshot_folder(index)
    assert quick_search.open_snapshot(index, _flags()) is not None
    if damage == "meta":
        (folder / "meta.json").write_text("{not json", encoding="utf-8")
    elif damage == "tower":
        (folder / "text.onnx").write_bytes(b"\x00garbage")
    elif damage == "weights":  # an interrupted copy: the mapped weights file cut short
        weights = folder / quick_search.TEXT_WEIGHTS
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        (index / quick_search.FOLDER / quick_search.POINTER).unlink()
    full = _search(capsys, index, "--text", "a red circle", "--json", quick=False)
    _same_json(full, _search(capsys, index, "--text", "a red circle", "--json"))


def test_the_tower_weights_lie_beside_it_to_be_mapped(toy_index, capsys):
    _, index = toy_index
    shutil.rmtree(index / quick_search.FOLDER, ignore_errors=True)
    _search(capsys, index, "--text", "a red circle")
    folder = quick_search.snapshot_folder(index)
    graph, weights = folder / "text.onnx", folder / quick_search.TEXT_WEIGHTS
    assert weights.stat().st_size > 4 * graph.stat().st_size  # the weights are in the mapped file, not the graph
    answer = quick_search.open_snapshot(index, _flags()).search("a red circle", 3, "auto", "en")
    assert [hit.rank for hit in answer.result.hits] == [1, 2, 3]


def test_queries_it_does_not_answer(toy_index):
    _, index = toy_index
    snapshot = quick_search.open_snapshot(index, _flags())
    if snapshot is None:
        pytest.skip("no snapshot left by the tests before")
    assert snapshot.answers("a red circle", "auto", "auto")
    assert snapshot.answers("红色圆形", "auto", "auto") == (snapshot.translator() is not None)  # with its reader
    assert not snapshot.answers("2:a red circle", "auto", "auto")  # a weight
    assert not snapshot.answers("a red circle", "translate", "auto")
    assert not snapshot.answers("a red circle", "auto", "ann")
    assert not snapshot.answers("   ", "auto", "auto")


# ----------------------------------------------------------------------------- Chinese queries (opus-mt in ONNX)
def test_chinese_query_quick_after_one_full_chinese_search(toy_index, capsys):
    _, index = toy_index
    shutil.rmtree(index / quick_search.FOLDER, ignore_errors=True)
    _search(capsys, index, "--text", "a red circle")  # an English snapshot: no translator in it yet
    assert not quick_search.open_snapshot(index, _flags()).answers("红色圆形", "auto", "auto")
    full_json = _search(capsys, index, "--text", "红色圆形", "--json", "--k", "5", quick=False)
    _search(capsys, index, "--text", "红色圆形")  # the full search translates, then leaves a Chinese reader
    snapshot = quick_search.open_snapshot(index, _flags())
    assert snapshot.answers("红色圆形", "auto", "auto") and snapshot.answers("红色圆形", "translate", "auto")
    quick_json = _search(capsys, index, "--text", "红色圆形", "--json", "--k", "5")
    assert json.loads(quick_json)["strategy"] == "translate" and json.loads(quick_json)["encoded_text"]
    _same_json(full_json, quick_json)
    for text, extra in (("紅色圓形", []), ("左上方有一个小的蓝色正方形。", ["--lang", "zh"]),
                        ("一个绿色三角形", ["--strategy", "translate", "--k", "3"])):
        full = _search(capsys, index, "--text", text, *extra, quick=False)
        assert _without_ms(_search(capsys, index, "--text", text, *extra)) == _without_ms(full), text


def test_chinese_quick_path_imports_no_torch(toy_index, capsys):
    _, index = toy_index
    _search(capsys, index, "--text", "蓝色正方形")  # a snapshot with its Chinese reader
    _answers_cold_without_torch(capsys, index, "蓝色正方形")


def test_chinese_reader_declines_what_it_cannot_read_and_survives_a_rewrite(toy_index, capsys):
    library, index = toy_index
    _search(capsys, index, "--text", "红色圆形")
    snapshot = quick_search.open_snapshot(index, _flags())
    assert snapshot.translator() is not None
    assert not snapshot.answers("红色圆形", "clip", "auto")  # Chinese through CLIP's own tower: the full search
    assert not snapshot.answers("红色圆形</s>", "auto", "auto")  # a special token's text: MarianTokenizer splits it
    assert not snapshot.answers("2:红色圆形", "auto", "auto")
    shutil.copy(sorted((library / "images").iterdir())[1], library / "images" / "added_for_zh.png")
    assert main(["index", str(library), "--index", str(index), "--precision", "fp32", "--no-progress", *FLAGS]) == 0
    _search(capsys, index, "--text", "a red circle")  # an English full search rewrites the stale snapshot...
    assert quick_search.open_snapshot(index, _flags()).answers("红色圆形", "auto", "auto")  # ...keeping the reader


def test_a_changed_reader_file_sends_chinese_to_the_full_search(toy_index, capsys):
    _, index = toy_index
    _search(capsys, index, "--text", "红色圆形")
    snapshot = quick_search.open_snapshot(index, _flags())
    settings = Path(snapshot.meta["translator"]["folder"]) / "reader.json"
    original = settings.read_text(encoding="utf-8")
    try:
        settings.write_text(original.replace('"max_new_tokens": ', '"max_new_tokens": 1'), encoding="utf-8")
        assert not quick_search.open_snapshot(index, _flags()).answers("红色圆形", "auto", "auto")
        full = _search(capsys, index, "--text", "红色圆形", "--json", quick=False)
        _same_json(full, _search(capsys, index, "--text", "红色圆形", "--json"))
    finally:
        settings.write_text(original, encoding="utf-8")


def test_reader_refuses_generation_it_does_not_do():
    from types import SimpleNamespace

    from transformers import GenerationConfig

    from chapter09.capstone.search.quick_translator_export import unsupported

    def model(**settings):
        return SimpleNamespace(generation_config=GenerationConfig(decoder_start_token_id=3, eos_token_id=0,
                                                                  pad_token_id=3, **settings))

    assert unsupported(model(forced_eos_token_id=0, bad_words_ids=[[3]])) is None  # opus-mt's own settings
    assert "repetition_penalty" in unsupported(model(repetition_penalty=1.2))
    assert unsupported(model(bad_words_ids=[[5, 6]])) == "it bans sequences of several tokens"
    assert unsupported(model(forced_eos_token_id=7)) == "it forces another end token"


def test_a_query_the_reader_declines_does_not_cost_it_its_reader(toy_index, capsys):
    _, index = toy_index
    shutil.rmtree(index / quick_search.FOLDER, ignore_errors=True)
    _search(capsys, index, "--text", "a red circle")
    _search(capsys, index, "--text", "红色</s>圆形")  # answered by the full search; the reader is still saved
    assert quick_search.open_snapshot(index, _flags()).answers("红色圆形", "auto", "auto")
