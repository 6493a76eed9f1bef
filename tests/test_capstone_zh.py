"""The capstone's own messages in a Chinese run (``CH09_LANG=zh``, or ``lang="zh"`` passed in): the index
summary, the strategy comparison, the route a query takes and the query's errors, each picked by the one
helper the lessons use (``exercises.i18n.t``). Data made here; the English editions are checked alongside, so a
check that cannot tell the languages apart fails."""
import re

import pytest

from chapter09.capstone.evaluate import format_captions, format_comparison, format_retrieval
from chapter09.capstone.index.summary import IndexSummary
from chapter09.capstone.search.queries import QueryError, check_query, pick_strategy, route_reason
from chapter09.exercises import i18n

# Names that stay as they are in Chinese text: strategies, models, metrics, units, values the code prints.
NAMES = {"auto", "clip", "translate", "multilingual", "chinese_clip", "CLIP", "Chinese-CLIP", "opus-mt", "ANN",
         "IVF-SQ8", "nprobe", "recall@10", "BLEU-4", "CIDEr-D", "ray", "actor", "local", "R@1", "R@5", "R@10",
         "strategy", "GPU", "CPU", "GPS", "GeoNames", "toy", "direct", "jpg", "png", "tmp", "lib", "idx"}
WORD = re.compile(r"[A-Za-z][A-Za-z@\-0-9_]*")


def english_words(text: str) -> list[str]:
    """Words of English left in ``text`` once paths, flags and the names above are set aside."""
    text = re.sub(r"[\w\-]+\.(?:jpg|png)", "", text)  # file names are names
    kept = " ".join(token for token in text.split() if "/" not in token and not token.startswith("--"))
    return [w for w in WORD.findall(kept) if w not in NAMES and not w.startswith("--") and len(w) > 2
            and not (w.startswith("R@") or w.startswith("recall@"))]


def summary() -> IndexSummary:
    return IndexSummary(
        "/photos", "/tmp/idx", engine="ray", total=12, added=5, updated=2, unchanged=4, removed=1, moved=2, copied=1,
        touched=1, hashed=4, excluded=3, excluded_removed=1, excludes=["*/cache/*"], excluded_paths=["a/cache/"],
        metadata_filled=6, metadata_s=0.4, failed=[{"path": "bad.jpg", "reason": "x", "retried": False}],
        skipped=[{"path": "pipe.png", "reason": "y"}], seconds=3.5, images_per_s=2.0, startup_s=1.2,
        ray={"nodes": 2, "cpus": 4, "gpus": 0, "actors": 2, "cpus_per_actor": 1, "actor_nodes": 2, "decode_nodes": 2},
        ann={"clip": {"build_s": 0.3, "nprobe": 8, "recall_at_10": 0.97}})


def comparison() -> dict:
    scores = {"R@1": 0.5, "R@5": 0.75, "R@10": 1.0}
    both = {"text_to_image": scores, "image_to_text": scores}
    return {"dataset": "toy", "images": 40, "texts": 80, "missing": 2, "missing_examples": ["gone.jpg"],
            "strategies": {"clip": {"zh": both, "en": both}, "chinese_clip": {"error": "x"},
                           "translate": {"zh": both}}}


def test_the_index_summary_in_chinese_has_no_english_prose_and_the_same_numbers():
    english, chinese = summary().text("en"), summary().text("zh")
    assert len(english.splitlines()) == len(chinese.splitlines()) == 9
    for line in chinese.splitlines():
        assert not english_words(line), line
    assert english_words(english)  # the English edition is English
    assert re.findall(r"\d+(?:\.\d+)?", english) == re.findall(r"\d+(?:\.\d+)?", chinese)


def test_the_summary_follows_ch09_lang(monkeypatch):
    monkeypatch.setenv("CH09_LANG", "zh")
    assert summary().text() == summary().text("zh")
    monkeypatch.setenv("CH09_LANG", "en")
    assert summary().text() == summary().text("en")


def test_the_strategy_comparison_in_chinese_keeps_its_columns():
    chinese = format_comparison(comparison(), "zh")
    for line in chinese.splitlines():
        assert not english_words(line), line
    assert "strategy" in format_comparison(comparison(), "en")
    header, *rows = chinese.splitlines()[2:]  # after the heading and its MISSING line
    # the "|" stands in the same terminal column (a Chinese character takes two) in the header and every row
    columns = sum(2 if ord(c) >= 0x2E80 else 1 for c in header[:header.index("|")])
    assert [row.index("|") for row in rows if "|" in row] == [columns] * 3


def test_retrieval_and_caption_reports_in_chinese():
    report = {"dataset": "toy", "images": 40, "texts": 80, "unreadable": 1, "unreadable_examples": ["b.jpg"],
              "languages": {"zh": {"strategy": "translate", "queries": 40,
                                   "text_to_image": {"R@1": 0.5, "R@5": 0.9, "R@10": 1.0},
                                   "image_to_text": {"R@1": 0.5, "R@5": 0.9, "R@10": 1.0}}}}
    captions = {"dataset": "toy", "images": 40, "route": "direct",
                "languages": {"zh": {"BLEU-4": 50.0, "CIDEr-D": 1.2, "images": 40}}}
    for text in (format_retrieval(report, "zh"), format_captions(captions, "zh")):
        for line in text.splitlines():
            assert not english_words(line), line
    assert "UNREADABLE: 1 listed image(s) could not be decoded" in format_retrieval(report, "en")


@pytest.mark.parametrize("requested,text", [("auto", "红色圆形"), ("auto", "a red circle"), ("clip", "红色圆形"),
                                            ("multilingual", "红色圆形"), ("chinese_clip", "a red circle")])
def test_the_route_a_query_takes_is_explained_in_both_languages(requested, text):
    chinese, english = route_reason(requested, text, "zh"), route_reason(requested, text, "en")
    used = pick_strategy(requested, text).name
    assert used in chinese and used in english
    assert not english_words(chinese), chinese
    assert english_words(english)
    assert ("接近随机" in chinese) == (used == "clip" and text == "红色圆形")  # CLIP reading Chinese is warned


def test_query_errors_follow_ch09_lang(monkeypatch):
    monkeypatch.setenv("CH09_LANG", "zh")
    with pytest.raises(QueryError, match="查询是空的"):
        check_query("   ")
    with pytest.raises(QueryError, match="未知的策略"):
        pick_strategy("fastest", "a cat")
    monkeypatch.setenv("CH09_LANG", "en")
    with pytest.raises(QueryError, match="the query is empty"):
        check_query("")


def test_one_helper_picks_the_language(monkeypatch):
    monkeypatch.setenv("CH09_LANG", "zh_CN.UTF-8")
    assert i18n.t("cat", "猫") == "猫" and i18n.t("cat") == "cat" and i18n.t("cat", "猫", "en") == "cat"
    monkeypatch.setenv("CH09_LANG", "fr")  # a language the chapter does not speak: English (entry points refuse it)
    assert i18n.t("cat", "猫") == "cat"


@pytest.mark.e2e  # a whole command: eval on six toy images (~15 s)
def test_the_command_line_speaks_chinese_with_lang_zh_and_refuses_a_language_it_lacks(tmp_path, capsys,
                                                                                       monkeypatch):
    from chapter09.capstone.__main__ import main
    from chapter09.toyworld import write_dataset

    library = write_dataset(tmp_path / "lib", n=6, seed=83, split="heldout")
    monkeypatch.delenv("CH09_LANG", raising=False)
    assert main(["eval", "--dataset", str(library), "--models", "toy", "--lang", "zh"]) == 0
    report = capsys.readouterr().out.strip().splitlines()
    assert report[0].endswith("6 张图片，24 条文本") and "文本->图像 R@1" in report[1], report
    assert all(not english_words(line) for line in report), report
    monkeypatch.setenv("CH09_LANG", "fr")
    with pytest.raises(SystemExit) as refused:
        main(["eval", "--dataset", str(library), "--models", "toy"])
    assert refused.value.code == 2 and "CH09_LANG='fr'" in capsys.readouterr().err


def test_search_output_in_chinese_has_no_english_prose():
    from types import SimpleNamespace

    from chapter09.capstone.cli_text import search_lines
    from chapter09.capstone.search.records import Hit, SearchResult
    from chapter09.exercises.i18n import speaking

    result = SearchResult(strategy="translate", query_kind="text", terms=({"kind": "text", "value": "红色圆形",
                                                                           "weight": 1.0},),
                          query="红色圆形", encoded_text="a red circle", ocr_text=None,
                          filters={"folder": "2024"}, matching=3, filter_search="exact over the matching rows",
                          filter_nprobe=None, search="exact", library_size=10, ms=1.5,
                          hits=(Hit(1, "trip/a.jpg", 0.91, {"zh": "红色圆形"}, {}, ocr_text="出口", ocr_match=("出口",)),))
    searcher = SimpleNamespace(store=SimpleNamespace(absolute=lambda path: "/photos/" + path))
    with speaking("zh"):
        lines = search_lines(result, searcher, "auto")
    with speaking("en"):
        english = search_lines(result, searcher, "auto")
    assert len(lines) == len(english) and "1.5" in lines[0] and "/photos/trip/a.jpg" in lines[-3]
    for line in lines:
        prose = line.replace("a red circle", "")  # what the encoder read is data, shown as it is
        assert not english_words(prose), line
