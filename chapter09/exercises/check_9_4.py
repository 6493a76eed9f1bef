"""Checks for the 9.4 exercises: BLIP-2's chat prompt, what fits in memory, exact-answer accuracy."""
from __future__ import annotations

import numpy as np

from .core import Check, Failed

WORDS = ["red", "blue", "star", "circle", "two", "three", "left", "top", "a cat", "the sofa", "红色", "两个"]
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def _sentence(rng, n=3):
    return " ".join(rng.choice(WORDS, size=n))


def check_chat_prompt(chat_prompt, rng):
    from ..vqa import build_prompt  # the library's prompt is the reference

    for turns, max_turns in ((0, 3), (2, 3), (5, 3), (4, 0), (int(rng.integers(3, 8)), int(rng.integers(1, 3)))):
        history = [(f"{_sentence(rng)}?", _sentence(rng, 1)) for _ in range(turns)]
        question = f"{_sentence(rng)}?"
        got = chat_prompt(list(history), question, max_turns)
        if got != build_prompt(history, question, max_turns):
            raise Failed(f"with {turns} earlier turns and max_turns={max_turns} the prompt differs from what "
                         f"BLIP-2's chat sends (check which turns are kept, their order, the '.' and the spaces)")


def check_weights_gib(weights_gib, rng):
    for dtype, per in BYTES.items():
        n = float(rng.uniform(1e8, 8e9))
        got = weights_gib(n, dtype)
        if not np.isclose(got, n * per / 2**30, rtol=1e-6):
            if np.isclose(got, n * per / 1e9, rtol=1e-6):
                raise Failed(f"{dtype}: that is GB (10**9 bytes); the exercise asks for GiB")
            raise Failed(f"{dtype}: wrong size for {n:.3g} parameters")


def check_fits_in_memory(fits_in_memory, rng):
    for dtype, per in BYTES.items():
        n = float(rng.uniform(1e8, 8e9))
        needed = n * per * 1.25
        for free, expected in ((needed * 1.01, True), (needed * 0.99, False), (n * per * 1.1, False)):
            if bool(fits_in_memory(n, dtype, int(free))) != expected:
                raise Failed(f"{dtype}: wrong verdict when {free / (n * per):.2f}x the weights is free "
                             f"(headroom 1.25)")
        if not fits_in_memory(n, dtype, int(n * per * 1.6), headroom=1.5) or \
                fits_in_memory(n, dtype, int(n * per * 1.4), headroom=1.5):
            raise Failed("the headroom argument is not used")


def check_vqa_accuracy(vqa_accuracy, rng):
    kinds_pool = ["count (en)", "colour (en)", "shape (zh)", "position (zh)"]
    n = int(rng.integers(20, 40))
    truths = [str(rng.choice(WORDS)) for _ in range(n)]
    kinds = [str(rng.choice(kinds_pool)) for _ in range(n)]
    answers, right = [], []
    for truth in truths:
        roll = rng.random()
        if roll < 0.3:
            answers.append(str(rng.choice(WORDS)))
        elif roll < 0.6:  # the right answer, written differently
            answers.append("  " + "  ".join(truth.upper().split()) + " ")
        else:
            answers.append(truth)
        right.append(" ".join(answers[-1].split()).lower() == truth.lower())
    got = vqa_accuracy(list(answers), list(truths), list(kinds))
    if not isinstance(got, tuple) or len(got) != 2:
        raise Failed("return (overall accuracy, {kind: accuracy})")
    overall, by_kind = got
    if not np.isclose(float(overall), np.mean(right)):
        raise Failed("the overall accuracy is wrong (is '  Two ' the same answer as 'two'?)")
    expected = {k: np.mean([ok for ok, kk in zip(right, kinds) if kk == k]) for k in set(kinds)}
    if set(by_kind) != set(expected):
        raise Failed("the per-kind dict should have one entry per kind that occurs")
    if any(not np.isclose(float(by_kind[k]), v) for k, v in expected.items()):
        raise Failed("a per-kind accuracy is wrong: each kind's share of right answers among its own questions")


CHECKS = [
    Check("9.4.1", "chat_prompt", check_chat_prompt,
          "keep the *last* max_turns turns, oldest first; mind what history[-0:] gives"),
    Check("9.4.2a", "weights_gib", check_weights_gib, "how many bytes does one parameter take in each dtype? A GiB is 2**30 bytes, a GB 10**9"),
    Check("9.4.2b", "fits_in_memory", check_fits_in_memory, "the weights alone are not enough: the headroom multiplies them"),
    Check("9.4.3", "vqa_accuracy", check_vqa_accuracy,
          "normalise both answer and truth the same way before comparing; a kind's accuracy uses only its "
          "own questions"),
]
