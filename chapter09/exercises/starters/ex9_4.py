"""Exercises for 9.4 BLIP-2 vision Q&A. Fill in each function, then run

    python -m chapter09.exercises check 9.4

Plain Python. Keep each function's signature.

9.4 BLIP-2 视觉问答练习。把每个函数写完，然后运行

    python -m chapter09.exercises check 9.4 --lang zh

只用纯 Python。不要改动函数签名。
"""


def chat_prompt(history: list[tuple[str, str]], question: str, max_turns: int = 3) -> str:
    """Exercise 9.4.1. The prompt BLIP-2 reads on the chat route (``chapter09.vqa.ChatSession``).

    The last ``max_turns`` answered turns, each as ``Question: <q> Answer: <a>.``, then the new
    ``Question: <question> Answer:``, all joined by single spaces. ``max_turns=0`` keeps no history.

    练习 9.4.1：对话路线上 BLIP-2 读到的提示词（``chapter09.vqa.ChatSession``）。

    先是最近 ``max_turns`` 轮已回答的对话，每轮写成 ``Question: <q> Answer: <a>.``，再接上新的
    ``Question: <question> Answer:``，各部分用单个空格连接。``max_turns=0`` 时不保留任何历史。
    """
    raise NotImplementedError


def weights_gib(n_parameters: float, dtype: str) -> float:
    """Exercise 9.4.2a. Memory the weights take, in GiB (2**30 bytes).

    ``dtype`` is one of "float32", "bfloat16", "float16", "int8".

    练习 9.4.2a：权重占用的内存，单位 GiB（2**30 字节）。

    ``dtype`` 取 "float32"、"bfloat16"、"float16"、"int8" 之一。
    """
    raise NotImplementedError


def fits_in_memory(n_parameters: float, dtype: str, free_bytes: int, headroom: float = 1.25) -> bool:
    """Exercise 9.4.2b. Does a model fit? Its weights in ``dtype`` times ``headroom`` (activations and the
    generation cache) must not exceed ``free_bytes``.

    练习 9.4.2b：模型放得下吗？按 ``dtype`` 计算的权重大小乘以 ``headroom``（留给激活值和生成缓存的余量）
    不得超过 ``free_bytes``。
    """
    raise NotImplementedError


def vqa_accuracy(answers: list[str], truths: list[str], kinds: list[str]) -> tuple[float, dict[str, float]]:
    """Exercise 9.4.3. Exact-answer accuracy overall and per question kind.

    An answer is right when it equals the truth ignoring case, spaces at either end and repeated
    spaces inside ("  Two " == "two"). Returns (overall accuracy, {kind: accuracy}).

    练习 9.4.3：精确匹配准确率，包括总体的和按问题类型分的。

    忽略大小写、首尾空格和中间的连续空格后与标准答案相同，就算答对（"  Two " == "two"）。
    返回 (总准确率, {类型: 准确率})。
    """
    raise NotImplementedError
