"""Reading a README as its Chinese edition must match it: command lines, headings, prose paragraphs, the share of
Chinese in that prose. Shared by tests/test_capstone_readme_zh.py and tests/test_chapter_readme_zh.py.

Commands are the lines of fenced and indented code blocks (a trailing ``# comment`` may be translated) and the
``python -m chapter09...`` / ``python run_all_sections.py ...`` commands quoted inline in the prose."""
import re

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
FENCED = re.compile(r"^```[a-z]*\n(.*?)^```", re.S | re.M)
INLINE_COMMAND = re.compile(r"`((?:python -m chapter09|python run_all_sections\.py)[^`]*)`")
TRAILING_COMMENT = re.compile(r"\s+#.*$")


def indented_code_lines(prose: str) -> list[str]:
    """Lines of indented (4+ spaces) blocks that start after a blank line (markdown's code blocks)."""
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


def headings(text: str, level: str = "#") -> list[str]:
    """The heading lines (outside code) starting with ``level``."""
    return [line for line in FENCED.sub("", text).split("\n") if line.startswith(level)]


def heading_levels(text: str) -> list[str]:
    """Each heading's level marker (``##``, ``###``...), in order: the editions' outlines, whatever their words."""
    return [line.split(" ", 1)[0] for line in headings(text)]


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
    """Chinese characters over Chinese characters and Latin letters, in the prose."""
    paragraphs = prose_paragraphs(text)
    chinese = sum(len(CJK.findall(p)) for p in paragraphs)
    latin = sum(len(LATIN.findall(p)) for p in paragraphs)
    return chinese / max(1, chinese + latin)


def untranslated(text: str) -> list[str]:
    """Paragraphs of more than 40 Latin letters and no Chinese character (English left behind)."""
    return [p[:80] for p in prose_paragraphs(text) if len(LATIN.findall(p)) > 40 and not CJK.search(p)]
