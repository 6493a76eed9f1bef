"""Solutions to the 9.4 exercises."""

BYTES_PER_PARAMETER = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def chat_prompt(history: list[tuple[str, str]], question: str, max_turns: int = 3) -> str:
    kept = history[-max_turns:] if max_turns else []  # history[-0:] would keep everything
    return " ".join([f"Question: {q} Answer: {a}." for q, a in kept] + [f"Question: {question} Answer:"])


def weights_gib(n_parameters: float, dtype: str) -> float:
    return n_parameters * BYTES_PER_PARAMETER[dtype] / 2**30


def fits_in_memory(n_parameters: float, dtype: str, free_bytes: int, headroom: float = 1.25) -> bool:
    return n_parameters * BYTES_PER_PARAMETER[dtype] * headroom <= free_bytes


def vqa_accuracy(answers: list[str], truths: list[str], kinds: list[str]) -> tuple[float, dict[str, float]]:
    def norm(text):  # what chapter09.vqa.normalise_answer does, and lesson 9.4 scores with
        return " ".join(text.split()).lower()

    right = [norm(a) == norm(t) for a, t in zip(answers, truths)]
    by_kind = {}
    for ok, kind in zip(right, kinds):
        by_kind.setdefault(kind, []).append(ok)
    return sum(right) / len(right), {kind: sum(oks) / len(oks) for kind, oks in by_kind.items()}
