"""The chapter README's Chinese edition (chapter09/README.zh-CN.md) is the whole English one (chapter09/README.md):
the same command lines, the same ``##`` sections, and Chinese prose around them.

The same checks as tests/test_capstone_readme_zh.py makes on the capstone README; here code blocks are fenced."""
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CHAPTER = Path(__file__).resolve().parents[1] / "chapter09"
ENGLISH = CHAPTER / "README.md"
CHINESE = CHAPTER / "README.zh-CN.md"

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
FENCED = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
INLINE_COMMAND = re.compile(r"`((?:python -m chapter09|python run_all_sections\.py)[^`]*)`")
TRAILING_COMMENT = re.compile(r"\s+#.*$")  # comments after a command may be translated


def indented_code_lines(prose: str) -> list[str]:
    """Lines of indented (4+ spaces) blocks that follow a blank line, outside fenced blocks."""
    lines, found = prose.split("\n"), []
    in_block = False
    for previous, line in zip([""] + lines, lines):
        if line.startswith("    ") and line.strip() and (in_block or not previous.strip()):
            in_block = True
            found.append(line)
        elif line.strip():
            in_block = False
    return found


def command_lines(text: str) -> list[str]:
    """Every code-block line with its trailing comment cut, in order, then the inline commands, sorted."""
    code = [line for block in FENCED.findall(text) for line in block.split("\n")]
    prose = FENCED.sub("", text)
    cut = [TRAILING_COMMENT.sub("", line).strip() for line in code + indented_code_lines(prose)]
    return [line for line in cut if line] + sorted(INLINE_COMMAND.findall(prose))


def section_headings(text: str) -> list[str]:
    return [line for line in FENCED.sub("", text).split("\n") if line.startswith("## ")]


def prose_paragraphs(text: str) -> list[str]:
    """Paragraphs outside code blocks, tables and HTML comments, with inline code removed."""
    prose = re.sub(r"<!--.*?-->", "", FENCED.sub("", text), flags=re.S)
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", prose):
        kept = [line for line in paragraph.split("\n") if not line.startswith("    ") and not line.startswith("|")]
        stripped = re.sub(r"`[^`]*`", "", "\n".join(kept)).strip()
        if stripped:
            paragraphs.append(stripped)
    return paragraphs


def cjk_share(text: str) -> float:
    paragraphs = prose_paragraphs(text)
    chinese = sum(len(CJK.findall(p)) for p in paragraphs)
    latin = sum(len(LATIN.findall(p)) for p in paragraphs)
    return chinese / max(1, chinese + latin)


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
    english, chinese = (section_headings(text) for text in editions)
    assert len(english) >= 12
    assert len(chinese) == len(english), {"English": english, "Chinese": chinese}


def test_the_chinese_edition_is_chinese_prose(editions):
    english, chinese = editions
    assert cjk_share(english) < 0.01  # the measure tells the two apart
    assert cjk_share(chinese) > 0.6   # measured 0.72: model names, flags and file names stay in Latin letters
    untranslated = [p[:80] for p in prose_paragraphs(chinese) if len(LATIN.findall(p)) > 40 and not CJK.search(p)]
    assert not untranslated, untranslated


def test_the_checks_catch_a_section_left_untranslated(editions):
    """Dropping one English section from the Chinese edition, or pasting it in English, fails the checks above."""
    english, chinese = editions
    start = chinese.index("## 在终端里做视觉问答")
    dropped = chinese[:start] + chinese[chinese.index("## 硬件"):]
    assert command_lines(dropped) != command_lines(english)
    assert len(section_headings(dropped)) != len(section_headings(english))
    pasted = english[english.index("## Build-your-own VLM"):english.index("## How the captioner")]
    assert any(len(LATIN.findall(p)) > 40 and not CJK.search(p) for p in prose_paragraphs(chinese + "\n\n" + pasted))
