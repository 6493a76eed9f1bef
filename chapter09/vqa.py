"""Visual question answering with BLIP-2, or BLIP on machines that cannot hold BLIP-2, and a chat with memory.

    python -m chapter09.vqa ask IMAGE "what colour is the star?"
    python -m chapter09.vqa chat IMAGE            # terminal chat; an empty line or 'quit' ends it

BLIP-2 (``Salesforce/blip2-opt-2.7b``, 3.74 B parameters: about 14 GB in fp32, 7.5 GB in
bf16/fp16) answers from a prompt "Question: ... Answer:", so earlier turns can go into
the prompt. BLIP-VQA (``Salesforce/blip-vqa-base``, 385 M) reads one question at a
time; the chat still keeps the history, but the model sees only the last question.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field

from .captioning import images_to_rgb, toy_safe_dtype
from .errors import UsageError
from .language import tidy_text
from .models import (
    ModelUnavailableError,
    ResolvedModel,
    Settings,
    announce,
    pick_device,
    pick_dtype,
    quiet_loading,
    resolve,
)

# What BLIP-2 needs beyond its weights (activations, generation cache, the Python process).
MEMORY_HEADROOM = 1.25
BLIP2_PARAMS = 3.74e9


def available_memory_bytes(device: str) -> int:
    """Free memory on ``device``: the GPU's free memory, or the system's MemAvailable for the CPU."""
    import torch

    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def checkpoint_bytes(resolved: ResolvedModel, bytes_per_param: int) -> int:
    """Weights' size in memory: measured from the files for a local folder, else from the published count."""
    from pathlib import Path

    folder = Path(resolved.location)
    if folder.is_dir():
        files = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
        if files:
            stored = sum(f.stat().st_size for f in files)
            # stored files are fp32 or fp16; scale to the dtype we will load in
            return int(stored * bytes_per_param / (4 if stored > 0 and _is_fp32(files[0]) else 2))
    return int(BLIP2_PARAMS * bytes_per_param)


def _is_fp32(path) -> bool:
    if path.suffix != ".safetensors":
        return True
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        first = next(iter(handle.keys()))
        return str(handle.get_slice(first).get_dtype()).upper() in ("F32", "FLOAT32")


@dataclass
class Route:
    name: str  # "blip2" or "blip"
    reason: str
    resolved: ResolvedModel | None = None


def choose_route(settings: Settings | None = None, prefer: str = "auto") -> Route:
    """BLIP-2 when its weights can be had and fit in memory; otherwise BLIP-VQA, saying why."""
    import torch

    settings = settings or Settings()
    if prefer == "blip":
        return Route("blip", "you asked for the BLIP route (--route blip)")
    device = pick_device(settings.device)
    torch_dtype = pick_dtype(device, settings.dtype)
    try:
        resolved = resolve("blip2", settings)
    except ModelUnavailableError as error:
        if prefer == "blip2":
            raise
        return Route("blip", f"BLIP-2 weights are not available here: {error}")
    needed = checkpoint_bytes(resolved, torch.finfo(torch_dtype).bits // 8) * MEMORY_HEADROOM
    free = available_memory_bytes(device)
    if needed > free and prefer != "blip2":
        return Route("blip", f"BLIP-2 needs about {needed / 2**30:.1f} GiB in {str(torch_dtype)[6:]} on {device}, "
                             f"but only {free / 2**30:.1f} GiB is free; BLIP-VQA (385 M) fits")
    return Route("blip2", f"BLIP-2 fits: about {_size(needed)} needed, {free / 2**30:.1f} GiB free "
                          f"on {device}", resolved)


def _size(n_bytes: float) -> str:
    """GiB with one decimal, or MiB for the toy twin's few MB (which would read "0.0 GiB")."""
    return f"{n_bytes / 2**30:.1f} GiB" if n_bytes >= 2**30 / 10 else f"{n_bytes / 2**20:.1f} MiB"


# ----------------------------------------------------------------------------- prompts
def build_prompt(history: list[tuple[str, str]], question: str, max_turns: int = 3) -> str:
    """BLIP-2's VQA prompt with the last ``max_turns`` answered turns in front, as in the BLIP-2 paper."""
    turns = [f"Question: {q} Answer: {a}." for q, a in history[-max_turns:]] if max_turns else []
    return " ".join(turns + [f"Question: {question} Answer:"])


def normalise_answer(text: str) -> str:
    """An answer as exact-answer scoring compares it: case ignored, spaces at either end dropped, runs of
    spaces inside made one ("  Two " and "two" are the same answer; "a  cat" and "a cat" too; "acat" is not).
    Lesson 9.4 scores with it, and exercise 9.4.3 checks a learner's scoring against it."""
    return " ".join(str(text).split()).lower()


def answers_match(answer: str, truth: str) -> bool:
    """Is ``answer`` the ``truth``, exactly, once both are normalised the same way?"""
    return normalise_answer(answer) == normalise_answer(truth)


def ensure_image_tokens(processor, model) -> None:
    """Make the processor expand ``<image>`` into the model's query tokens (transformers >= 4.47 style).

    Newer BLIP-2 checkpoints save ``num_query_tokens`` in the processor and ``image_token_index``
    in the model config; older ones did not, and prompts then came out without image slots.
    We fill in whatever is missing from the model config, so both kinds work.
    """
    expected = model.config.num_query_tokens
    if getattr(processor, "num_query_tokens", None) != expected:
        processor.num_query_tokens = expected
    image_token_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token.content)
    if model.config.image_token_index is None:
        model.config.image_token_index = image_token_id
    if model.config.image_token_index != image_token_id:
        raise ValueError(f"the processor's image token id ({image_token_id}) differs from the model's "
                         f"({model.config.image_token_index}); load both from the same checkpoint")


# ----------------------------------------------------------------------------- answerers
class Blip2Answerer:
    """Captions and answers with ``Blip2ForConditionalGeneration``; sees the chat history in its prompt."""

    uses_history = True

    def __init__(self, resolved: ResolvedModel, settings: Settings | None = None):
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        settings = settings or Settings()
        announce(resolved)
        self.resolved = resolved
        self.device = pick_device(settings.device)
        self.dtype = toy_safe_dtype(resolved, self.device, settings.dtype)
        with quiet_loading():
            self.processor = AutoProcessor.from_pretrained(resolved.location)
            self.model = Blip2ForConditionalGeneration.from_pretrained(
                resolved.location, dtype=self.dtype).to(self.device).eval()
        ensure_image_tokens(self.processor, self.model)
        # a decoder-only LM continues the last position: pad batched prompts on the left so each ends where
        # its answer starts, whatever side the checkpoint's tokenizer pads on
        self.processor.tokenizer.padding_side = "left"

    def _generate(self, images, prompts, max_new_tokens):
        import torch

        inputs = self.processor(images=images, text=prompts, return_tensors="pt", padding=True).to(self.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        prompt_length = inputs["input_ids"].shape[1]
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        # generate returns prompt + answer for decoder-only language models: keep the answer
        out = out[:, prompt_length:] if out.shape[1] > prompt_length else out
        return [tidy_text(t).strip() for t in self.processor.batch_decode(out, skip_special_tokens=True)]

    def caption(self, images, max_new_tokens: int = 30) -> list[str]:
        images = images_to_rgb(images)
        return self._generate(images, [""] * len(images), max_new_tokens)

    def caption_batch(self, images, max_new_tokens: int = 40, batch_size: int = 64) -> list[str]:
        """``caption`` in batches of ``batch_size`` images (the toy world scores hundreds at once)."""
        images = images_to_rgb(images)
        return [caption for start in range(0, len(images), batch_size)
                for caption in self.caption(images[start:start + batch_size], max_new_tokens)]

    def answer(self, image, question: str, history=(), max_new_tokens: int = 10) -> str:
        prompt = build_prompt(list(history), question)
        return self._generate(images_to_rgb([image]), [prompt], max_new_tokens)[0]

    def answer_batch(self, images, questions: list[str], max_new_tokens: int = 10, batch_size: int = 64) -> list[str]:
        """One question per image, no history, batched (prompts are left-padded, see ``__init__``)."""
        images = images_to_rgb(images)
        prompts = [build_prompt([], question) for question in questions]
        return [answer for start in range(0, len(images), batch_size)
                for answer in self._generate(images[start:start + batch_size], prompts[start:start + batch_size],
                                             max_new_tokens)]


class BlipAnswerer:
    """One question at a time with ``BlipForQuestionAnswering`` (the CPU route)."""

    uses_history = False

    def __init__(self, settings: Settings | None = None, resolved: ResolvedModel | None = None):
        from transformers import AutoProcessor, BlipForQuestionAnswering

        settings = settings or Settings()
        self.resolved = resolved or resolve("vqa", settings)
        announce(self.resolved)
        self.device = pick_device(settings.device)
        self.dtype = toy_safe_dtype(self.resolved, self.device, settings.dtype)
        with quiet_loading():
            self.processor = AutoProcessor.from_pretrained(self.resolved.location)
            self.model = BlipForQuestionAnswering.from_pretrained(
                self.resolved.location, dtype=self.dtype).to(self.device).eval()

    def answer_batch(self, images, questions: list[str], max_new_tokens: int = 10, batch_size: int = 64) -> list[str]:
        import torch

        images = images_to_rgb(images)
        answers = []
        for start in range(0, len(images), batch_size):
            inputs = self.processor(images=images[start:start + batch_size],
                                    text=questions[start:start + batch_size],
                                    return_tensors="pt", padding=True).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
            answers += [tidy_text(t) for t in self.processor.batch_decode(out, skip_special_tokens=True)]
        return answers

    def answer(self, image, question: str, history=(), max_new_tokens: int = 10) -> str:
        return self.answer_batch([image], [question], max_new_tokens)[0]


def load_answerer(settings: Settings | None = None, prefer: str = "auto", stream=None):
    """The best answerer this machine can hold, after printing which route was chosen and why."""
    route = choose_route(settings, prefer)
    print(f"[vqa] route: {route.name} - {route.reason}", file=stream or sys.stdout)
    if route.name == "blip2":
        return Blip2Answerer(route.resolved, settings)
    return BlipAnswerer(settings)


# ----------------------------------------------------------------------------- chat
@dataclass
class ChatSession:
    """Questions about one image, remembering the answers; works in a terminal loop and in a notebook."""

    answerer: object
    image: object
    max_turns: int = 3
    history: list[tuple[str, str]] = field(default_factory=list)

    def ask(self, question: str) -> str:
        question = " ".join(question.split())
        if not question:
            raise UsageError("the question is empty: type a question about the image")
        if len(question) > 500:
            raise UsageError(f"the question is {len(question)} characters long; keep it under 500")
        answer = self.answerer.answer(self.image, question, history=self.history[-self.max_turns:])
        self.history.append((question, answer))
        return answer

    def prompt_for(self, question: str) -> str:
        """The prompt the next question would send (BLIP-2 route), to show learners what the model reads."""
        return build_prompt(self.history, question, self.max_turns)

    def reset(self) -> None:
        self.history.clear()


def chat_loop(session: ChatSession, read=input, write=print) -> None:
    write("Ask about the image; an empty line or 'quit' ends the chat, 'reset' forgets the history.")
    while True:
        try:
            question = read("you> ").strip()
        except EOFError:
            break
        if question.lower() in ("", "quit", "exit"):
            break
        if question.lower() == "reset":
            session.reset()
            write("(history cleared)")
            continue
        try:
            write(f"model> {session.ask(question)}")
        except ValueError as error:
            write(f"(!) {error}")


def main(argv: list[str] | None = None) -> int:
    from .cli import add_model_options, run_cli
    from .images import load_image

    parser = argparse.ArgumentParser(prog="python -m chapter09.vqa", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("ask", "chat"))
    parser.add_argument("image")
    parser.add_argument("question", nargs="?", help="the question (ask)")
    parser.add_argument("--route", choices=("auto", "blip2", "blip"), default="auto")
    add_model_options(parser)
    args = parser.parse_args(argv)
    if args.command == "ask" and not args.question:
        parser.error("ask needs a question")

    def run() -> int:
        session = ChatSession(load_answerer(Settings.from_args(args), args.route), load_image(args.image))
        if args.command == "ask":
            print(session.ask(args.question))
        else:
            chat_loop(session)
        return 0

    return run_cli(run)


if __name__ == "__main__":
    sys.exit(main())
