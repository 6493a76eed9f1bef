"""Checks for the 9.4 exercises: BLIP-2's chat prompt, what fits in memory, exact-answer accuracy."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed

WORDS = ["red", "blue", "star", "circle", "two", "three", "left", "top", "a cat", "the sofa", "红色", "两个"]
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def _sentence(rng, n=3):
    return " ".join(rng.choice(WORDS, size=n))


# ----------------------------------------------------------------------------- 9.4.1
def check_chat_prompt(chat_prompt, rng):
    from ..vqa import build_prompt  # the library's prompt is the reference

    cases = [(0, 3), (2, 3), (3, 3), (5, 3), (4, 0), (4, 1), (int(rng.integers(3, 8)), int(rng.integers(1, 3)))]
    for turns, max_turns in cases:
        history = [(f"{_sentence(rng)}?", _sentence(rng, 1)) for _ in range(turns)]
        question = f"{_sentence(rng)}?"
        got = chat_prompt(list(history), question, max_turns)
        if not isinstance(got, str):
            raise Failed("9.4.one_string", type=type(got).__name__)
        expected = build_prompt(history, question, max_turns)
        if got == expected:
            continue
        if got.split() == expected.split():
            raise Failed("9.4.spaces", "9.4.spaces.hint", turns=turns, max_turns=max_turns)
        raise Failed("9.4.prompt_differs", "9.4.prompt_differs.hint", turns=turns, max_turns=max_turns)


# ----------------------------------------------------------------------------- 9.4.2
def check_weights_gib(weights_gib, rng):
    sizes = [1e9, 2.0**30] + [float(rng.uniform(1e8, 8e9)) for _ in range(2)]
    for n in sizes:
        for dtype, per in BYTES.items():
            got = weights_gib(n, dtype)
            if np.isclose(got, n * per / 2**30, rtol=1e-6):
                continue
            if np.isclose(got, n * per / 1e9, rtol=1e-6):
                raise Failed("9.4.gb", "9.4.gb.hint", dtype=dtype)
            raise Failed("9.4.wrong_size", "9.4.wrong_size.hint", dtype=dtype, n=n)


def check_fits_in_memory(fits_in_memory, rng):
    exact = 2**20  # float32 weights x 1.25 = 5,242,880 bytes exactly: "must not exceed" means <= fits
    for free, expected in ((int(exact * 4 * 1.25), True), (int(exact * 4 * 1.25) - 1, False)):
        if bool(fits_in_memory(float(exact), "float32", free)) != expected:
            raise Failed("9.4.exact_minus_one" if not expected else "9.4.exact", "9.4.exact.hint", exact=exact)
    for dtype, per in BYTES.items():
        n = float(rng.uniform(1e8, 8e9))
        needed = n * per * 1.25
        for free, expected in ((needed * 1.01, True), (needed * 0.99, False), (n * per * 1.1, False)):
            if bool(fits_in_memory(n, dtype, int(free))) != expected:
                raise Failed("9.4.verdict", "9.4.verdict.hint", dtype=dtype, ratio=free / (n * per))
        if not fits_in_memory(n, dtype, int(n * per * 1.6), headroom=1.5) or \
                fits_in_memory(n, dtype, int(n * per * 1.4), headroom=1.5):
            raise Failed("9.4.headroom_unused")


# ----------------------------------------------------------------------------- 9.4.3
FIXED_ANSWERS = [  # (answer, truth, kind): kinds of different sizes, so a mean of kinds is not the overall mean
    ("  Two ", "two", "count (en)"),
    ("a  cat", "A cat", "shape (en)"),  # repeated space inside, and the truth has a capital
    ("RED", "red", "colour (en)"),
    ("acat", "a cat", "shape (en)"),  # not the same answer
    ("blue", "blue", "colour (en)"),
    ("Star", "circle", "shape (en)"),
]


def _verify_accuracy(vqa_accuracy, answers, truths, kinds) -> None:
    from ..vqa import answers_match  # how lesson 9.4 scores its answers

    right = [answers_match(a, t) for a, t in zip(answers, truths)]
    got = vqa_accuracy(list(answers), list(truths), list(kinds))
    if not isinstance(got, tuple) or len(got) != 2 or not isinstance(got[1], dict):
        raise Failed("9.4.accuracy_pair")
    overall, by_kind = got
    expected = {k: np.mean([ok for ok, kk in zip(right, kinds) if kk == k]) for k in set(kinds)}
    if set(by_kind) != set(expected):
        raise Failed("9.4.kinds")
    if not np.isclose(float(overall), np.mean(right)):
        if np.isclose(float(overall), np.mean(list(expected.values()))):
            raise Failed("9.4.mean_of_kinds", "9.4.mean_of_kinds.hint")
        raise Failed("9.4.overall", "9.4.overall.hint", n=len(answers))
    if any(not np.isclose(float(by_kind[k]), v) for k, v in expected.items()):
        raise Failed("9.4.per_kind")


def check_vqa_accuracy(vqa_accuracy, rng):
    _verify_accuracy(vqa_accuracy, *zip(*FIXED_ANSWERS))
    kinds_pool = ["count (en)", "colour (en)", "shape (zh)", "position (zh)"]
    n = int(rng.integers(20, 40))
    truths = [str(rng.choice(WORDS)) for _ in range(n)]
    kinds = [str(rng.choice(kinds_pool)) for _ in range(n)]
    answers = []
    for truth in truths:
        roll = rng.random()
        if roll < 0.3:
            answers.append(str(rng.choice(WORDS)))
        elif roll < 0.6:  # the right answer, written differently
            answers.append("  " + "  ".join(truth.upper().split()) + " ")
        else:
            answers.append(truth)
    _verify_accuracy(vqa_accuracy, answers, truths, kinds)


CHECKS = [
    Check("9.4.1", "chat_prompt", check_chat_prompt, "9.4/6", "9.4.1.hint"),
    Check("9.4.2a", "weights_gib", check_weights_gib, "9.4/1", "9.4.2a.hint"),
    Check("9.4.2b", "fits_in_memory", check_fits_in_memory, "9.4/1", "9.4.2b.hint"),
    Check("9.4.3", "vqa_accuracy", check_vqa_accuracy, "9.4/5", "9.4.3.hint"),
]

# Every text this section's checks print: id -> (English, Chinese). See i18n.py.
MESSAGES = {
    "9.4.one_string": ("return the prompt as one string, not a {type}", "请把提示词作为一个字符串返回，而不是 {type}"),
    "9.4.spaces": ("with {turns} earlier turns and max_turns={max_turns}: the right words, but not joined by single "
                   "spaces",
                   "前面有 {turns} 轮对话、max_turns={max_turns} 时：词都对，但没有用单个空格连接"),
    "9.4.spaces.hint": ("print repr() of your prompt: what separates the turns?",
                        "用 repr() 打印你的提示词：各轮之间隔着什么？"),
    "9.4.prompt_differs": ("with {turns} earlier turns and max_turns={max_turns} the prompt differs from what "
                           "BLIP-2's chat sends (which turns are kept, their order, the '.' after each answer)",
                           "前面有 {turns} 轮对话、max_turns={max_turns} 时，提示词与 BLIP-2 对话实际发送的不同"
                           "（保留哪几轮、先后顺序、每个回答后的 '.'）"),
    "9.4.prompt_differs.hint": ("print your prompt for 5 turns with max_turns 3, for 2 turns with max_turns 3 and "
                                "for max_turns 0: what does a negative slice such as history[-0:] give?",
                                "分别打印 5 轮对话、max_turns 为 3，2 轮对话、max_turns 为 3，以及 max_turns 为 0 "
                                "时的提示词：history[-0:] 这样的负数切片会得到什么？"),
    "9.4.gb": ("{dtype}: that is GB (10**9 bytes); the exercise asks for GiB",
               "{dtype}：这是 GB（10**9 字节）；题目要的是 GiB"),
    "9.4.gb.hint": ("how many bytes is a GiB? It is a power of 2", "一个 GiB 是多少字节？它是 2 的幂"),
    "9.4.wrong_size": ("{dtype}: wrong size for {n:.4g} parameters", "{dtype}：{n:.4g} 个参数的大小算错了"),
    "9.4.wrong_size.hint": ("how many bytes (not bits) does one parameter take in each of the four dtypes?",
                            "四种 dtype 下，一个参数各占多少字节（不是比特）？"),
    "9.4.exact": ("float32, {exact} parameters, exactly weights x headroom free (to the byte): wrong verdict",
                  "float32、{exact} 个参数，空闲内存恰好等于权重 x 余量（分毫不差）：判断错了"),
    "9.4.exact_minus_one": ("float32, {exact} parameters, exactly weights x headroom free (minus one byte): "
                            "wrong verdict",
                            "float32、{exact} 个参数，空闲内存恰好等于权重 x 余量（少一个字节）：判断错了"),
    "9.4.exact.hint": ("'must not exceed' allows equality: which comparison says that?",
                       "“不得超过”包括相等：哪个比较运算符表达的是这个意思？"),
    "9.4.verdict": ("{dtype}: wrong verdict when {ratio:.2f}x the weights' bytes are free (headroom 1.25)",
                    "{dtype}：空闲内存是权重字节数的 {ratio:.2f} 倍时判断错了（余量 1.25）"),
    "9.4.verdict.hint": ("compare bytes with bytes: what are the weights' bytes in this dtype, and what does the "
                         "headroom do to them?",
                         "字节要和字节比：这种 dtype 下权重占多少字节？余量又让它变成多少？"),
    "9.4.headroom_unused": ("the headroom argument is not used", "没有用到 headroom 参数"),
    "9.4.accuracy_pair": ("return (overall accuracy, {{kind: accuracy}})", "请返回 (总准确率, {{类型: 准确率}})"),
    "9.4.kinds": ("the per-kind dict should have one entry per kind that occurs",
                  "按类型统计的 dict 应为出现过的每种类型各设一项"),
    "9.4.mean_of_kinds": ("the overall accuracy is the mean of the kinds' accuracies, but kinds have different numbers "
                          "of questions",
                          "总准确率被算成了各类型准确率的平均，可各类型的题目数并不相同"),
    "9.4.mean_of_kinds.hint": ("what is the overall accuracy of 1 right of 1 and 0 right of 3?",
                               "一类 1 题对 1 题，另一类 3 题对 0 题，总准确率是多少？"),
    "9.4.overall": ("the overall accuracy is wrong on {n} answers (is '  Two ' the same answer as 'two'? and "
                    "'a  cat' as 'A cat'? and 'acat' as 'a cat'?)",
                    "{n} 个回答的总准确率算错了（'  Two ' 和 'two' 算同一个答案吗？'a  cat' 和 'A cat' 呢？"
                    "'acat' 和 'a cat' 呢？）"),
    "9.4.overall.hint": ("apply your normalisation to both sides of each pair above by hand: what should it leave "
                         "alone, and what must it change?",
                         "对上面每一对的两边手工套用你的归一化：哪些地方应该保持原样，哪些必须改掉？"),
    "9.4.per_kind": ("a per-kind accuracy is wrong: each kind's share of right answers among its own questions",
                     "某个类型的准确率算错了：它应是该类型题目中答对的比例"),
    "9.4.1.hint": ("print chapter09.vqa.build_prompt and your prompt for the same 5-turn history at max_turns 3, 1 "
                   "and 0, one above the other",
                   "对同一段 5 轮的对话历史，分别在 max_turns 为 3、1、0 时，把 chapter09.vqa.build_prompt 的结果"
                   "和你的提示词上下对齐打印出来"),
    "9.4.2a.hint": ("a parameter in bfloat16 is 16 bits: how many bytes is that? And how many bytes make a GiB?",
                    "bfloat16 的一个参数占 16 比特：合多少字节？一个 GiB 又是多少字节？"),
    "9.4.2b.hint": ("the weights alone are not what must fit, and a model that needs exactly the free memory does fit",
                    "要放下的不只是权重；模型所需内存恰好等于空闲内存时，也算放得下"),
    "9.4.3.hint": ("write down what your comparison says for ('  Two ', 'two'), ('a  cat', 'A cat') and ('acat', "
                   "'a cat'); then, with kinds of 1 and 3 questions, is the overall accuracy the mean of the two kinds?",
                   "写下你的比较对 ('  Two ', 'two')、('a  cat', 'A cat') 和 ('acat', 'a cat') 的判断；再想想："
                   "两类题目分别有 1 道和 3 道时，总准确率等于两类准确率的平均吗？"),
}
