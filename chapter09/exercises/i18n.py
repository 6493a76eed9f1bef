"""The checker's two languages: one ``lang`` setting, and every text it prints defined once in English and Chinese.

Where the texts live (each an ``id: (English, Chinese)`` pair, placeholders in ``{braces}`` the same in both):

- ``MESSAGES`` below: what every section shares (the command line's lines, the helpers in ``core``);
- ``MESSAGES`` in each ``check_9_N.py``: that section's messages and hints, ids starting with ``"9.N."``;
- ``STEPS`` below: the lesson steps the checks send a learner to, ``"9.N/step": (English heading, Chinese)``.

A check raises ``Failed("9.1.input_changed")`` (an id, with keyword fields for its placeholders) and names
its step and hint by id (``Check(..., read="9.1/3", hint="9.1.1.hint")``); the text is chosen only when an
outcome is written down (``render``), so a verdict never depends on the language.

The language: ``--lang en|zh`` on the command line, else the environment variable ``CH09_LANG``, else English.
``tests/test_exercises_zh.py`` keeps the two editions in step: every id has both, with the same placeholders,
numbers and code names, and ``messages.stamp`` records a hash of each edition, so a change to one edition
without the other fails; after changing both, record it with ``python -m chapter09.exercises.stamp``.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .sections import SECTIONS

LANGS = ("en", "zh")
ENV = "CH09_LANG"
DEFAULT = "en"
STAMP = Path(__file__).resolve().parent / "messages.stamp"  # one line per id: id, hash of its English, of its Chinese


def resolve(flag: str | None = None) -> str:
    """The language to print in: the flag if given, else ``$CH09_LANG``, else English ("zh_CN.UTF-8" reads as zh)."""
    value = (flag or os.environ.get(ENV, "") or DEFAULT).strip().lower().replace("_", "-")
    for lang in LANGS:
        if value == lang or value.startswith(lang + "-") or value.startswith(lang + "."):
            return lang
    raise ValueError(f"{ENV}={value!r}: choose one of {', '.join(LANGS)} / 请选择 {' 或 '.join(LANGS)}")


# The language of the work at hand where one caller decides it for what it calls (the web UI: each request's);
# None: ``resolve()``. A context variable, so two requests served at once each keep their own.
SPEAKING: ContextVar[str | None] = ContextVar("chapter09_speaking", default=None)


@contextlib.contextmanager
def speaking(lang: str):
    """Inside the block, ``t`` without a ``lang`` speaks ``lang`` (``en`` or ``zh``)."""
    token = SPEAKING.set(lang)
    try:
        yield
    finally:
        SPEAKING.reset(token)


def t(en, zh=None, lang: str | None = None):
    """One text of an (English, Chinese) pair in ``lang`` (None: the ``speaking`` block's, else ``resolve()``, so
    ``$CH09_LANG``; a value it does not know reads as English here: the entry points refuse it); ``zh`` None: the
    English. The lessons (``Lesson.t``), the capstone's messages and its web UI all pick their language here."""
    if lang is None:
        lang = SPEAKING.get()
    if lang is None:
        try:
            lang = resolve()
        except ValueError:
            lang = DEFAULT
    return zh if lang == "zh" and zh is not None else en


@dataclass(frozen=True)
class Msg:
    """A text by id, with the values of its placeholders (a value may itself be a ``Msg``)."""
    key: str
    fields: tuple[tuple[str, object], ...] = ()

    def text(self, lang: str = DEFAULT) -> str:
        return render(self, lang)


def msg(key: str, **fields) -> Msg:
    return Msg(key, tuple(fields.items()))


def as_msg(value: str | Msg | None, **fields) -> Msg | None:
    return value if value is None or isinstance(value, Msg) else msg(value, **fields)


def render(value, lang: str = DEFAULT) -> str:
    """``value`` in ``lang``: a ``Msg`` through the catalogue (an id the catalogue lacks prints as it is, so a
    checker not yet translated still works; the tests fail on it), a step id through ``STEPS``, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, str) and value in STEPS:
        section, number = value.split("/")
        return render(msg("step", section=section, number=number, title=STEPS[value][LANGS.index(lang)]), lang)
    if not isinstance(value, Msg):
        return str(value)
    pair = catalogue().get(value.key)
    if pair is None:
        return value.key
    fields = {name: render(v, lang) if isinstance(v, Msg) else v for name, v in value.fields}
    return pair[LANGS.index(lang)].format(**fields)


@lru_cache(maxsize=1)
def catalogue() -> dict[str, tuple[str, str]]:
    """Every id's (English, Chinese): the shared ``MESSAGES`` and each section's ``check_9_N.MESSAGES``."""
    merged = dict(MESSAGES)
    for section in SECTIONS:
        module = importlib.import_module(f"chapter09.exercises.check_{section.replace('.', '_')}")
        messages = getattr(module, "MESSAGES", {})  # a section without one prints its ids; the tests fail on it
        twice = set(merged) & set(messages)
        if twice:
            raise ValueError(f"message ids defined twice: {sorted(twice)}")
        merged.update(messages)
    return merged


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def stamp_lines() -> list[str]:
    """The stamp as it would be written now: every message and step, with a hash of each edition."""
    pairs = {**catalogue(), **{f"step {key}": titles for key, titles in STEPS.items()}}
    return [f"{key} {fingerprint(en)} {fingerprint(zh)}" for key, (en, zh) in sorted(pairs.items())]


# ----------------------------------------------------------------------------- the lesson steps checks point at
# "9.N/step": (the lesson's heading, its Chinese). The English must be the lesson script's "# ## N. heading".
STEPS: dict[str, tuple[str, str]] = {
    "9.1/1": ("Tokenization", "分词"),
    "9.1/2": ("Image preprocessing", "图像预处理"),
    "9.1/3": ("Embeddings and normalisation", "嵌入向量与归一化"),
    "9.1/4": ("Cosine similarity", "余弦相似度"),
    "9.2/2": ("The diagonal is what CLIP was trained for", "对角线正是 CLIP 的训练目标"),
    "9.2/3": ("Zero-shot classification with prompt templates", "用提示词模板做零样本分类"),
    "9.2/4": ("Top-k retrieval, both ways", "双向 top-k 检索"),
    "9.3/1": ("One interface for images and text", "图像和文本共用一套接口"),
    "9.3/2": ("Search with util.semantic_search and util.cos_sim", "用 util.semantic_search 和 util.cos_sim 检索"),
    "9.3/3": ("Chinese queries: CLIP's own text tower, then a multilingual text encoder",
              "中文查询：先用 CLIP 自己的文本塔，再换多语言文本编码器"),
    "9.4/1": ("Which route fits this machine?", "这台机器适合哪条路线？"),
    "9.4/5": ("Visual question answering", "视觉问答"),
    "9.4/6": ("A chat that remembers", "能记住上文的对话"),
    "9.5/2": ("Build your own: vision encoder + projector + language model", "自己搭一个：视觉编码器 + 投影层 + 语言模型"),
    "9.5/4": ("fp32 vs bf16 vs dynamic int8 vs ONNX Runtime, measured here",
              "fp32、bf16、动态 int8 与 ONNX Runtime：在本机实测"),
    "9.6/2": ("Measure what is here", "实测本机现有的模型"),
    "9.6/3": ("The learning path, in one breath", "学习路线一览"),
    "9.7/4": ("Filters: the top-k among the rows that match", "过滤：在符合条件的行中取 top-k"),
    "9.7/6": ("Caption words and vectors, fused", "描述文字与向量融合"),
    "9.7/7": ("A second stage re-scores the shortlist", "第二阶段为入围候选重新打分"),
}

# ----------------------------------------------------------------------------- what every section shares
MESSAGES: dict[str, tuple[str, str]] = {
    # the command line
    "step": ("lesson {section}, step {number} ({title})", "第 {section} 节第 {number} 步（{title}）"),
    "pass": ("PASS", "通过"),
    "fail": ("FAIL", "失败"),
    "read_first": ("read first: {read}", "先读：{read}"),
    "idea_in": ("the idea is in {read}", "讲解见：{read}"),
    "hint": ("hint: {hint}", "提示：{hint}"),
    "checking": ("checking {path} ({section}) on fresh data, seed {seed}",
                 "用新数据检查 {path}（{section}），随机种子 {seed}"),
    "summary": ("{passed} of {total} passed", "{total} 题中通过 {passed} 题"),
    "well_done": ("{passed} of {total} passed: well done.", "{passed}/{total} 题全部通过，做得好！"),
    "stuck": ("stuck after rereading that step? This adds a more specific hint to each failure, on the same "
              "data:\n    {command}",
              "重读那一步后还是卡住？下面的命令在同一批数据上为每道失败的题再给一条更具体的提示：\n    {command}"),
    "no_file": ("{path} does not exist; make it with\n    {command}", "{path} 不存在，先用下面的命令生成：\n    {command}"),
    "cannot_import": ("{path} cannot be imported: {error}", "无法导入 {path}：{error}"),
    "exists": ("{path} already exists: keep working in it, or pass --force to start over (it is overwritten)",
               "{path} 已存在：接着在里面写；想从头开始就加 --force（会覆盖原文件）"),
    "wrote": ("wrote {path}: fill in the functions, then run\n    {command}",
              "已生成 {path}：把其中的函数写完，然后运行\n    {command}"),
    # what core says about any check
    "not_written": ("not written yet", "还没写"),
    "passed": ("passed", "通过"),
    "no_function": ("your file has no function `{function}`", "你的文件里没有函数 `{function}`"),
    "raised": ("raised {error}: {text}{where}", "抛出了 {error}：{text}{where}"),
    "raised_at": (" (line {line}: {code})", "（第 {line} 行：{code}）"),
    "not_numbers": ("{what}: got {type}, which is not an array of numbers",
                    "{what}：得到的是 {type}，不是数值数组"),
    "wrong_shape": ("{what}: shape {got}, expected {expected}", "{what}：形状是 {got}，应为 {expected}"),
    "has_nan": ("{what}: contains NaN", "{what}：含有 NaN"),
    "values_off": ("{what}: {wrong} of {size} values are off (largest gap {worst:.3g})",
                   "{what}：{size} 个值中有 {wrong} 个不对（最大偏差 {worst:.3g}）"),
    "the_loss": ("the loss", "损失"),
    "scalar": ("{what}: return a single-number torch tensor (0-d), so it can be backpropagated",
               "{what}：请返回只含一个数的 torch 张量（0 维），这样才能反向传播"),
    "no_grad_at_all": ("{what} carries no gradient: backward() cannot reach any input",
                       "{what}不带梯度：backward() 传不到任何输入"),
    "no_grad_reaches": ("no gradient reaches {name}, so training could never change it",
                        "没有梯度传到 {name}，训练永远改变不了它"),
    "gradient_of": ("the gradient of {what} with respect to {name}", "{what}对 {name} 的梯度"),
    "no_gradient_hint": ("a value that leaves torch (float(), .item(), math.*, NumPy, torch.tensor(...) of a result) "
                         "is a constant to autograd: keep every step a torch operation on the tensors you were given",
                         "一旦数值离开 torch（float()、.item()、math.*、NumPy，或对结果再套 torch.tensor(...)），"
                         "autograd 就只把它当常数：每一步都要用 torch 运算处理传进来的张量"),
}
