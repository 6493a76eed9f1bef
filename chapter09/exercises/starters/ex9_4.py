"""Exercises for 9.4 BLIP-2 vision Q&A. Fill in each function, then run

    python -m chapter09.exercises check 9.4

Plain Python. Keep each function's signature.
"""


def chat_prompt(history: list[tuple[str, str]], question: str, max_turns: int = 3) -> str:
    """Exercise 9.4.1. The prompt BLIP-2 reads on the chat route (``chapter09.vqa.ChatSession``).

    The last ``max_turns`` answered turns, each as ``Question: <q> Answer: <a>.``, then the new
    ``Question: <question> Answer:``, all joined by single spaces. ``max_turns=0`` keeps no history.
    """
    raise NotImplementedError


def weights_gib(n_parameters: float, dtype: str) -> float:
    """Exercise 9.4.2a. Memory the weights take, in GiB (2**30 bytes).

    ``dtype`` is one of "float32", "bfloat16", "float16", "int8".
    """
    raise NotImplementedError


def fits_in_memory(n_parameters: float, dtype: str, free_bytes: int, headroom: float = 1.25) -> bool:
    """Exercise 9.4.2b. Does a model fit? Its weights in ``dtype`` times ``headroom`` (activations and the
    generation cache) must not exceed ``free_bytes``."""
    raise NotImplementedError


def vqa_accuracy(answers: list[str], truths: list[str], kinds: list[str]) -> tuple[float, dict[str, float]]:
    """Exercise 9.4.3. Exact-answer accuracy overall and per question kind.

    An answer is right when it equals the truth ignoring case, spaces at either end and repeated
    spaces inside ("  Two " == "two"). Returns (overall accuracy, {kind: accuracy}).
    """
    raise NotImplementedError
