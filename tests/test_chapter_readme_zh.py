"""The chapter README's Chinese edition (chapter09/README.zh-CN.md) is the whole English one (chapter09/README.md):
the same command lines, the same ``##`` sections, and Chinese prose around them.

The same checks as tests/test_capstone_readme_zh.py makes on the capstone README; here code blocks are fenced."""
from pathlib import Path

import pytest
from readme_editions import cjk_share, command_lines, headings, untranslated

pytestmark = pytest.mark.unit

CHAPTER = Path(__file__).resolve().parents[1] / "chapter09"
ENGLISH = CHAPTER / "README.md"
CHINESE = CHAPTER / "README.zh-CN.md"


@pytest.fixture(scope="module")
def editions() -> tuple[str, str]:
    return ENGLISH.read_text(encoding="utf-8"), CHINESE.read_text(encoding="utf-8")


def test_each_edition_links_the_other_in_its_first_lines(editions):
    english, chinese = editions
    assert "(README.zh-CN.md)" in "\n".join(english.split("\n")[:4])
    assert "(README.md)" in "\n".join(chinese.split("\n")[:4])


def test_the_same_command_lines_in_both_editions(editions):
    english, chinese = (command_lines(text) for text in editions)
    assert len(english) > 60  # the parser found the README's code blocks at all (measured: 83 lines)
    assert any(line.startswith("python -m chapter09.vqa chat") for line in english)
    assert chinese == english, {"only in English": [c for c in english if c not in chinese],
                                "only in Chinese": [c for c in chinese if c not in english]}


def test_the_same_number_of_sections_in_both_editions(editions):
    english, chinese = (headings(text, "## ") for text in editions)
    assert len(english) >= 12
    assert len(chinese) == len(english), {"English": english, "Chinese": chinese}


def test_the_chinese_edition_is_chinese_prose(editions):
    english, chinese = editions
    assert cjk_share(english) < 0.01  # the measure tells the two apart
    assert cjk_share(chinese) > 0.6   # measured 0.72: model names, flags and file names stay in Latin letters
    left = untranslated(chinese)
    assert not left, left


def test_the_checks_catch_a_section_left_untranslated(editions):
    """Dropping one English section from the Chinese edition, or pasting it in English, fails the checks above."""
    english, chinese = editions
    start = chinese.index("## 在终端里做视觉问答")
    dropped = chinese[:start] + chinese[chinese.index("## 硬件"):]
    assert command_lines(dropped) != command_lines(english)
    assert len(headings(dropped, "## ")) != len(headings(english, "## "))
    pasted = english[english.index("## Build-your-own VLM"):english.index("## How the captioner")]
    assert untranslated(chinese + "\n\n" + pasted)
