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
            raise Failed(f"return the prompt as one string, not a {type(got).__name__}")
        expected = build_prompt(history, question, max_turns)
        if got == expected:
            continue
        if got.split() == expected.split():
            raise Failed(f"with {turns} earlier turns and max_turns={max_turns}: the right words, but not joined "
                         "by single spaces", "print repr() of your prompt: what separates the turns?")
        raise Failed(f"with {turns} earlier turns and max_turns={max_turns} the prompt differs from what "
                     "BLIP-2's chat sends (which turns are kept, their order, the '.' after each answer)",
                     "print your prompt for 5 turns with max_turns 3, for 2 turns with max_turns 3 and for "
                     "max_turns 0: what does a negative slice such as history[-0:] give?")


# ----------------------------------------------------------------------------- 9.4.2
def check_weights_gib(weights_gib, rng):
    sizes = [1e9, 2.0**30] + [float(rng.uniform(1e8, 8e9)) for _ in range(2)]
    for n in sizes:
        for dtype, per in BYTES.items():
            got = weights_gib(n, dtype)
            if np.isclose(got, n * per / 2**30, rtol=1e-6):
                continue
            if np.isclose(got, n * per / 1e9, rtol=1e-6):
                raise Failed(f"{dtype}: that is GB (10**9 bytes); the exercise asks for GiB",
                             "how many bytes is a GiB? It is a power of two")
            raise Failed(f"{dtype}: wrong size for {n:.4g} parameters",
                         "how many bytes (not bits) does one parameter take in each of the four dtypes?")


def check_fits_in_memory(fits_in_memory, rng):
    exact = 2**20  # float32 weights x 1.25 = 5,242,880 bytes exactly: "must not exceed" means <= fits
    for free, expected in ((int(exact * 4 * 1.25), True), (int(exact * 4 * 1.25) - 1, False)):
        if bool(fits_in_memory(float(exact), "float32", free)) != expected:
            raise Failed(f"float32, {exact} parameters, exactly weights x headroom free "
                         f"({'minus one byte' if not expected else 'to the byte'}): wrong verdict",
                         "'must not exceed' allows equality: which comparison says that?")
    for dtype, per in BYTES.items():
        n = float(rng.uniform(1e8, 8e9))
        needed = n * per * 1.25
        for free, expected in ((needed * 1.01, True), (needed * 0.99, False), (n * per * 1.1, False)):
            if bool(fits_in_memory(n, dtype, int(free))) != expected:
                raise Failed(f"{dtype}: wrong verdict when {free / (n * per):.2f}x the weights' bytes are free "
                             "(headroom 1.25)", "compare bytes with bytes: what are the weights' bytes in this "
                             "dtype, and what does the headroom do to them?")
        if not fits_in_memory(n, dtype, int(n * per * 1.6), headroom=1.5) or \
                fits_in_memory(n, dtype, int(n * per * 1.4), headroom=1.5):
            raise Failed("the headroom argument is not used")


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
        raise Failed("return (overall accuracy, {kind: accuracy})")
    overall, by_kind = got
    expected = {k: np.mean([ok for ok, kk in zip(right, kinds) if kk == k]) for k in set(kinds)}
    if set(by_kind) != set(expected):
        raise Failed("the per-kind dict should have one entry per kind that occurs")
    if not np.isclose(float(overall), np.mean(right)):
        if np.isclose(float(overall), np.mean(list(expected.values()))):
            raise Failed("the overall accuracy is the mean of the kinds' accuracies, but kinds have different "
                         "numbers of questions", "what is the overall accuracy of 1 right of 1 and 0 right of 3?")
        raise Failed(f"the overall accuracy is wrong on {len(answers)} answers (is '  Two ' the same answer as "
                     "'two'? and 'a  cat' as 'A cat'? and 'acat' as 'a cat'?)",
                     "apply your normalisation to both sides of each pair above by hand: what should it leave "
                     "alone, and what must it change?")
    if any(not np.isclose(float(by_kind[k]), v) for k, v in expected.items()):
        raise Failed("a per-kind accuracy is wrong: each kind's share of right answers among its own questions")


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
    Check("9.4.1", "chat_prompt", check_chat_prompt,
          "lesson 9.4, step 5 (A chat that remembers)",
          "print chapter09.vqa.build_prompt and your prompt for the same 5-turn history at max_turns 3, 1 and 0, "
          "one above the other"),
    Check("9.4.2a", "weights_gib", check_weights_gib,
          "lesson 9.4, step 1 (Which route fits this machine?)",
          "a parameter in bfloat16 is 16 bits: how many bytes is that? And how many bytes make a GiB?"),
    Check("9.4.2b", "fits_in_memory", check_fits_in_memory,
          "lesson 9.4, step 1 (Which route fits this machine?)",
          "the weights alone are not what must fit, and a model that needs exactly the free memory does fit"),
    Check("9.4.3", "vqa_accuracy", check_vqa_accuracy,
          "lesson 9.4, step 4 (Visual question answering)",
          "write down what your comparison says for ('  Two ', 'two'), ('a  cat', 'A cat') and ('acat', 'a cat'); "
          "then, with kinds of 1 and 3 questions, is the overall accuracy the mean of the two kinds?"),
]
