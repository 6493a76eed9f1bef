"""What every section script shares: its options, its output folder, narration and results.

A section starts with ``lesson = start("9.1", "CLIP basics")`` and then reads top to
bottom. The same options work from the command line, from ``run_all_sections.py``
and (with their defaults, or the CH09_* environment variables) inside a notebook.

Two languages: ``--lang zh`` (or CH09_LANG=zh, read by ``exercises.i18n.resolve``) makes the lesson speak
Chinese. Each printed text is written once in both, beside each other: ``lesson.say(en, zh=...)`` for
narration, ``lesson.t(en, zh)`` for a label, a table header or a figure's title; a text with no Chinese yet
prints in English.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .cli import add_lang_option, add_model_options
from .exercises import i18n
from .models import Settings, announce_toy_world, in_notebook

# tqdm.auto warns in a Jupyter kernel without ipywidgets ("IProgress not found") and then prints plain
# bars: nothing is wrong, so a lesson does not show it (lessons import this module before any model)
warnings.filterwarnings("ignore", message="IProgress not found")


def section_scripts() -> list[Path]:
    """chapter09/9.N_*.py in section order (the runner and the notebook builder both read this list)."""
    return sorted(config.PACKAGE_DIR.glob("9.*_*.py"), key=lambda p: int(p.name.split("_")[0].split(".")[1]))


# The model roles with a toy twin that each lesson loads in the toy world: the notebook's one toy-world line
# names them when the lesson starts (tests/test_vl_notebooks.py checks each notebook shows exactly one such line).
LESSON_TWINS = {
    "9.1": ("clip",), "9.2": ("clip",), "9.3": ("sbert_clip", "multilingual_text"), "9.4": ("captioner", "vqa"),
    "9.5": ("clip",),
    "9.6": ("clip", "sbert_clip", "multilingual_text", "chinese_clip", "captioner", "vqa", "translator_en_zh",
            "translator_zh_en"),
    "9.7": ("clip", "chinese_clip", "multilingual_text", "translator_zh_en"),
}


@dataclass
class Lesson:
    number: str
    title: str
    out: Path
    settings: Settings
    results: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    lang: str = "en"  # "en" or "zh": which of each text's two editions this run prints

    def t(self, en, zh=None):
        """A short text (a label, a header, a figure title) in the lesson's language; ``zh`` None: the English.
        Any pair of values works the same way (``lesson.t(None, TABLE_HEADERS_ZH)``: headers only in Chinese)."""
        return i18n.t(en, zh, self.lang)

    @staticmethod
    def ljust(text: str, width: int) -> str:
        """``text`` padded to ``width`` terminal columns (a Chinese character takes two), for aligned tables."""
        return text + " " * max(0, width - _columns(text))

    @staticmethod
    def rjust(text: str, width: int) -> str:
        """``text`` right-aligned in ``width`` terminal columns (a Chinese character takes two)."""
        return " " * max(0, width - _columns(text)) + text

    def say(self, text: str, zh: str | None = None) -> None:
        """Narrate a step in plain words (wrapped like a paragraph), in the lesson's language."""
        text = self.t(text, zh)
        print()
        for paragraph in textwrap.dedent(text).strip().split("\n\n"):
            if self.lang == "zh" and zh is not None:  # Chinese has no spaces to break at: join the lines as written
                print(_fill_cjk(paragraph.splitlines()))
            else:
                print(textwrap.fill(" ".join(paragraph.split()), width=88))

    def save_figure(self, figure, name: str) -> None:
        """Write the figure to the output folder (and show it inline in a notebook). Returns nothing, so a
        cell ending in it shows no stray value."""
        import matplotlib.pyplot as plt

        path = self.out / name
        figure.savefig(path, dpi=110, bbox_inches="tight")
        if not in_notebook():
            plt.close(figure)
        print(f"  [{self.t('figure', '图')}] {path}")

    def record(self, **values) -> None:
        """Keep figures worth reporting; ``finish`` writes them to results.json."""
        self.results.update(values)

    def finish(self) -> None:
        """Write results.json (returns nothing: the last cell of a notebook shows no stray value)."""
        path = self.out / "results.json"
        self.results["seconds"] = round(time.time() - self.started, 1)
        path.write_text(json.dumps({"section": self.number, "title": self.title, "models": self.settings.mode,
                                    **self.results}, indent=2, ensure_ascii=False, default=str))
        print(self.t(f"\n[{self.number}] done in {self.results['seconds']} s; results in {path}",
                     f"\n[{self.number}] 完成，用时 {self.results['seconds']} 秒；结果见 {path}"))


_CJK_PUNCTUATION = re.compile(r".?[\u3000-\u303f\uff00-\uffef]")


def _columns(text: str) -> int:
    return sum(2 if ord(c) >= 0x2E80 else 1 for c in text)  # CJK characters take two terminal columns


_NO_LINE_START = frozenset("。，、；：！？）」』”’》〉")


def _fill_cjk(lines: list[str], width: int = 88) -> str:
    """Chinese lines joined (a space only where a Latin word meets a word) and wrapped at ``width`` columns,
    never inside an ASCII word or number."""
    text = ""
    for line in (line.strip() for line in lines):
        if text and line and (text[-1].isascii() or line[0].isascii()) and not _CJK_PUNCTUATION.match(text[-1] + line[0]):
            text += " "  # between two ASCII words, or Chinese and a Latin word; never after or before 。，：
        text += line
    out, line = [], ""
    for piece in re.findall(r"[!-~]+|\s+|.", text):
        # closing punctuation never opens a line (Chinese typesetting's kinsoku rule): it may overhang instead
        if _columns(line) + _columns(piece) > width and line.strip() and piece not in _NO_LINE_START:
            out.append(line.rstrip())
            line = piece.lstrip()
        else:
            line += piece
    if line.strip():
        out.append(line.rstrip())
    return "\n".join(out)


def start(number: str, title: str, argv: list[str] | None = None, zh: str | None = None) -> Lesson:
    """Parse the lesson's options (a mistyped flag stops the lesson with a message), make its output folder.
    ``zh``: the title in Chinese, for a run with ``--lang zh``."""
    from .exercises.i18n import resolve

    parser = argparse.ArgumentParser(prog=f"section {number}", description=f"Section {number}: {title}")
    parser.add_argument("--out", default=None, help=f"output folder (default: {config.DEFAULT_OUT_DIR})")
    add_model_options(parser)
    add_lang_option(parser)
    if argv is None:
        argv = [] if in_notebook() else sys.argv[1:]
    args = parser.parse_args(argv)
    try:
        lang = resolve(args.lang)
    except ValueError as error:  # CH09_LANG names a language the chapter does not speak
        parser.error(str(error))
    if not in_notebook():
        import matplotlib

        matplotlib.use("Agg")  # figures go to files; no window pops up
    from .figures import use_cjk_font
    from .models import quiet_transformers

    use_cjk_font()  # figures can show Chinese: a font from a pinned package, registered with matplotlib
    quiet_transformers()  # a lesson is an entry point: library chatter off for its whole run
    out = Path(args.out or config.DEFAULT_OUT_DIR) / f"section_{number}"
    out.mkdir(parents=True, exist_ok=True)
    lesson = Lesson(number, title, out, Settings.from_args(args), lang=lang)
    print("=" * 88)
    print(lesson.t(f"Section {number}: {title}    (models: {lesson.settings.mode}; output: {out})",
                   f"第 {number} 节：{zh or title}    （模型：{lesson.settings.mode}；输出：{out}）"))
    print("=" * 88)
    if lesson.settings.mode == "toy":  # a notebook says so once, here; a terminal that chose toy is not told again
        announce_toy_world(LESSON_TWINS.get(number, ()), lang=lang)
    return lesson


def why_unavailable(error) -> str:
    """Why a model cannot be loaded, in one line (the error's own first line says what to do)."""
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def clip_encoder(lesson: Lesson, role: str = "clip"):
    """The process's ClipEncoder for ``role`` and the lesson's settings, shared by the sections run together."""
    from .clip import clip_encoder as shared_encoder

    return shared_encoder(role, lesson.settings)


def precision_verdict(rows: list[dict], native_bf16: bool, lang: str = "en") -> list[str]:
    """What a measured fp32 / bf16 / int8 table says, in sentences that hold on the CPU it was measured on.

    ``rows`` come from ``measure.variant_row`` (the first is fp32); ``native_bf16`` is whether this CPU has
    bf16 dot products in hardware (``cpu.has_native_bf16()``). Nothing is claimed that the rows do not show.
    ``lang``: "en" or "zh".
    """
    zh = lang == "zh"
    timed = {row["variant"]: row["ms_per_item"] for row in rows if "ms_per_item" in row}
    if "fp32" not in timed or len(timed) < 2:
        return ["测到的方案太少，无法比较。" if zh else "Too few variants were measured to compare."]
    fastest = min(timed, key=timed.get)
    ratio_fastest = timed[fastest] / timed["fp32"]
    lines = [f"本次运行最快的是 {fastest}（每项 {timed[fastest]} 毫秒，为 fp32 的 {ratio_fastest:.2f} 倍）。" if zh else
             f"Fastest in this run: {fastest} ({timed[fastest]} ms per item, {ratio_fastest:.2f}x fp32)."]
    if "bf16" in timed:
        ratio = timed["bf16"] / timed["fp32"]
        if zh:
            faster = "更快" if ratio < 0.97 else "更慢" if ratio > 1.03 else "差不多快"
            lines.append(f"这颗 CPU 有原生 bf16（AVX-512 BF16 或 AMX）：bf16 用时为 fp32 的 {ratio:.2f} 倍（{faster}）。"
                         "在没有原生 bf16 的 CPU 上，bf16 靠软件模拟，比 fp32 慢。" if native_bf16 else
                         f"这颗 CPU 没有原生 bf16（没有 AVX-512 BF16 / AMX）：bf16 用时为 fp32 的 {ratio:.2f} 倍"
                         f"（{faster}）；不过它仍让权重内存减半。")
            return lines
        faster = "faster" if ratio < 0.97 else "slower" if ratio > 1.03 else "about as fast"
        if native_bf16:
            lines.append(f"This CPU has native bf16 (AVX-512 BF16 or AMX): bf16 took {ratio:.2f}x the fp32 time "
                         f"({faster}). On a CPU without it bf16 is emulated and slower than fp32.")
        else:
            lines.append(f"This CPU has no native bf16 (no AVX-512 BF16 / AMX): bf16 took {ratio:.2f}x the fp32 "
                         f"time ({faster}); it still halves the weights' memory.")
    return lines
