"""The Chinese learning path says what the English one says: the same commands, the mirror and the
download-by-hand answers in both FAQs, and README.md links to it in its first lines."""
from __future__ import annotations

import re

import pytest

from chapter09 import config

pytestmark = pytest.mark.unit

ROOT = config.REPO_DIR
COMMAND = re.compile(r"(python3?(\.\d+)? |pip |jupyter |hf |export |CH09_\w+=)")


def commands(text: str) -> set[str]:
    """Command lines of fenced and indented code blocks (comments dropped), and inline code that is a command."""
    found = set()
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        found |= {line.split("  #")[0].strip() for line in block.splitlines() if line.strip()}
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found |= {line.strip() for line in prose.splitlines() if line.startswith("    ") and COMMAND.match(line.strip())}
    found |= {span.strip() for span in re.findall(r"`([^`\n]+)`", prose) if COMMAND.match(span.strip())}
    return found


def test_the_chinese_learning_path_has_the_same_commands_as_the_english_one():
    # the Chinese README translates the whole English one (tests/test_chapter_readme_zh.py checks order too)
    english = commands((ROOT / "chapter09" / "README.md").read_text(encoding="utf-8"))
    chinese = commands((ROOT / "chapter09" / "README.zh-CN.md").read_text(encoding="utf-8"))
    assert len(english) >= 15
    assert chinese == english, {"only in English": sorted(english - chinese), "only in Chinese": sorted(chinese - english)}


def test_the_chinese_front_page_commands_are_the_english_ones():
    english = commands((ROOT / "README.md").read_text(encoding="utf-8"))
    chinese = commands((ROOT / "README.zh-CN.md").read_text(encoding="utf-8"))
    assert chinese and chinese <= english, sorted(chinese - english)


def test_both_faqs_cover_the_hub_mirror_and_downloading_by_hand():
    for name in ("README.md", "README.zh-CN.md"):
        text = (ROOT / "chapter09" / name).read_text(encoding="utf-8")
        faq = text[text.index("FAQ" if name == "README.md" else "常见问题"):]
        assert "HF_ENDPOINT=" in faq and "CH09_MODEL_DIR_CLIP=" in faq and "--local-dir" in faq, name


def test_the_front_pages_link_each_other_in_their_first_lines():
    english = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:5]
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8").splitlines()[:5]
    assert any("(README.zh-CN.md)" in line for line in english)
    assert any("(README.md)" in line for line in chinese)
    chinese_text = (ROOT / "chapter09" / "README.zh-CN.md").read_text(encoding="utf-8")
    assert len(re.findall(r"[\u4e00-\u9fff]", chinese_text)) > 1500  # written in Chinese, not a stub
