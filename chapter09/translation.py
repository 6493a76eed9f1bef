"""English <-> Chinese translation with MarianMT (opus-mt), real or toy.

    translator = Translator("zh_en")
    translator.translate(["左上方有一个小的红色圆形。"])  # -> ['a small red circle at the top left']

Used by the capstone twice: Chinese captions are English captions translated
(``en_zh``), and the "translate then CLIP" search strategy turns a Chinese
query into English before CLIP's English text tower reads it (``zh_en``).
"""
from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from .models import ResolvedModel, Settings, announce, cached, pick_device, pick_dtype, quiet_loading, resolve

DIRECTIONS = {"en_zh": "translator_en_zh", "zh_en": "translator_zh_en"}
# opus-mt was trained on sentences of up to ~256 tokens; longer inputs are cut, never crash.
MAX_INPUT_TOKENS = 256


class Translator:
    """``translate(texts) -> texts`` in one direction ("en_zh" or "zh_en")."""

    def __init__(self, direction: str = "en_zh", settings: Settings | None = None,
                 resolved: ResolvedModel | None = None, max_new_tokens: int = 96):
        import torch
        from transformers import AutoTokenizer, MarianMTModel

        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
        settings = settings or Settings()
        self.direction = direction
        self.resolved = resolved or resolve(DIRECTIONS[direction], settings)
        announce(self.resolved)
        self.device = pick_device(settings.device)
        # bf16 halves memory but shifts greedy decoding on tiny models; translation is cheap: keep fp32
        # on CPU unless asked, half precision on GPUs.
        self.dtype = (pick_dtype(self.device, settings.dtype) if (settings.dtype or self.device != "cpu")
                      else torch.float32)
        with quiet_loading(), warnings.catch_warnings():  # MarianTokenizer recommends sacremoses, which only
            warnings.filterwarnings("ignore", message=".*sacremoses")  # the real route's normaliser would use
            self.tokenizer = AutoTokenizer.from_pretrained(self.resolved.location)
            self.model = MarianMTModel.from_pretrained(self.resolved.location, dtype=self.dtype).to(self.device).eval()
        # the real opus-mt reads 512 positions, the toy twin 128: never feed more than the model has
        self.max_input_tokens = min(MAX_INPUT_TOKENS, self.model.config.max_position_embeddings)
        self.max_new_tokens = min(max_new_tokens, self.model.config.max_position_embeddings - 1)
        self._torch = torch

    def translate(self, texts: Sequence[str], batch_size: int = 32, num_beams: int = 1) -> list[str]:
        texts = [str(text) for text in texts]
        results: list[str] = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            # empty strings translate to empty strings (generate() on nothing is undefined)
            todo = [i for i, text in enumerate(batch) if text.strip()]
            out = [""] * len(batch)
            if todo:
                tokens = self.tokenizer([batch[i] for i in todo], padding=True, truncation=True,
                                        max_length=self.max_input_tokens, return_tensors="pt").to(self.device)
                if tokens["attention_mask"].sum(dim=1).max() >= self.max_input_tokens:
                    print(f"[translate] warning: input cut to its first {self.max_input_tokens} tokens",
                          file=sys.stderr)
                with self._torch.inference_mode():
                    generated = self.model.generate(**tokens, max_new_tokens=self.max_new_tokens,
                                                    num_beams=num_beams, do_sample=False)
                decoded = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
                for i, text in zip(todo, decoded):
                    out[i] = text.strip()
            results += out
        return results


def translator(direction: str, settings: Settings | None = None) -> Translator:
    """The process's one ``Translator`` for ``direction`` and ``settings`` (see ``models.cached``)."""
    settings = settings or Settings()
    return cached("translator", (direction, settings), lambda: Translator(direction, settings))
