"""The capstone README's Chinese edition (chapter09/capstone/README.zh-CN.md) keeps step with the English one:
the same commands, the same sections, and Chinese prose around them.

Commands are compared as the lines of the indented code blocks (a trailing ``# comment`` may be translated) and
the ``python -m chapter09...`` commands quoted inline in the prose."""
import re
from pathlib import Path

from readme_editions import cjk_share, command_lines, heading_levels, untranslated

CAPSTONE = Path(__file__).resolve().parents[1] / "chapter09" / "capstone"
ENGLISH = CAPSTONE / "README.md"
CHINESE = CAPSTONE / "README.zh-CN.md"


def test_the_chinese_readme_exists_and_each_links_the_other():
    english, chinese = ENGLISH.read_text(encoding="utf-8"), CHINESE.read_text(encoding="utf-8")
    assert "(README.zh-CN.md)" in english.split("\n\n", 2)[1]  # the English README's top lines
    assert "(README.md)" in chinese.split("\n\n", 2)[1]


def test_the_same_commands_in_both_editions():
    english = command_lines(ENGLISH.read_text(encoding="utf-8"))
    chinese = command_lines(CHINESE.read_text(encoding="utf-8"))
    assert len(english) > 60  # the parser found the README's commands at all
    # a section added to the English README comes to the Chinese one too (helpers: chapter09/capstone/zh-fragments/)
    assert chinese == english, {"only in English": [c for c in english if c not in chinese],
                                "only in Chinese": [c for c in chinese if c not in english]}


def test_the_same_sections_in_both_editions():
    english = heading_levels(ENGLISH.read_text(encoding="utf-8"))
    assert len(english) >= 8
    assert heading_levels(CHINESE.read_text(encoding="utf-8")) == english, "the Chinese README's headings, by level"


def test_the_chinese_edition_is_chinese_prose():
    english, chinese = ENGLISH.read_text(encoding="utf-8"), CHINESE.read_text(encoding="utf-8")
    assert cjk_share(english) < 0.01  # the measure tells the two apart
    assert cjk_share(chinese) > 0.7   # measured 0.81: names (LanceDB, FAISS) and flags stay in Latin letters
    left = untranslated(chinese)
    assert not left, left


def test_the_chinese_faq_answers_every_english_question_with_the_same_names():
    """chapter09's FAQ in both editions: every flag, variable, command and file the English answers name is in the
    Chinese answers too (an answer missing from one edition, or one naming another flag, fails)."""
    chapter = CAPSTONE.parent
    english = (chapter / "README.md").read_text(encoding="utf-8")
    chinese = (chapter / "README.zh-CN.md").read_text(encoding="utf-8")
    english_faq = english[english.index("## FAQ"):english.index("## Glossary")]
    chinese_faq = chinese[chinese.index("## 常见问题"):chinese.index("## 术语表")]
    spans = re.compile(r"`([^`\n]+)`")
    named = set(spans.findall(english_faq))
    assert len(named) > 20 and re.findall(r"^\*\*", english_faq, re.M)
    assert named <= set(spans.findall(chinese_faq)), sorted(named - set(spans.findall(chinese_faq)))
    assert len(re.findall(r"^\*\*", chinese_faq, re.M)) >= len(re.findall(r"^\*\*", english_faq, re.M))
