"""Image captions in English and Chinese from one small interface.

    captioner = Captioner()                      # real BLIP if reachable, else the toy twin
    captioner.caption([image], lang="zh")

Real route: ``Salesforce/blip-image-captioning-base`` writes English; Chinese is that
caption translated by ``chapter09.translation.Translator("en_zh")`` (BLIP was trained
on English only). Toy route: the toy twin is bilingual and continues a language
prompt token (``<en>`` / ``<zh>``) directly.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from .models import ResolvedModel, announce, pick_device, pick_dtype, resolve

LANGS = ("en", "zh")
LANG_PROMPTS = {"en": "<en>", "zh": "<zh>"}  # the toy twin's language tokens
_CJK = r"\u3000-\u303f\u4e00-\u9fff\uff00-\uffef"


def toy_safe_dtype(resolved: ResolvedModel, device: str, dtype: str | None = None):
    """pick_dtype, except that toy twins stay fp32 on CPU unless asked: a few-MB model gains no speed
    from bf16, and rounding shifts its greedy decoding."""
    import torch

    if resolved.is_toy and device == "cpu" and not dtype:
        return torch.float32
    return pick_dtype(device, dtype)


def tidy_text(text: str) -> str:
    """BERT-style decoding puts a space between Chinese characters; remove spaces next to CJK text."""
    text = re.sub(rf"\s+(?=[{_CJK}])|(?<=[{_CJK}])\s+", "", text)
    return " ".join(text.split())


def images_to_rgb(images: Sequence) -> list:
    from .images import load_image, to_rgb

    return [to_rgb(im) if hasattr(im, "mode") else load_image(im) for im in images]


class Captioner:
    """``caption(images, lang)`` -> one caption per image, in English (``en``) or Chinese (``zh``)."""

    def __init__(self, models: str | None = None, device: str | None = None, dtype: str | None = None,
                 local_dir=None, resolved: ResolvedModel | None = None):
        from transformers import AutoProcessor, BlipForConditionalGeneration

        from .clip_utils import quiet_transformers

        quiet_transformers()
        self.resolved = resolved or resolve("captioner", models, local_dir)
        announce(self.resolved)
        self.device = pick_device(device)
        self.dtype = toy_safe_dtype(self.resolved, self.device, dtype)
        self.processor = AutoProcessor.from_pretrained(self.resolved.location)
        self.model = BlipForConditionalGeneration.from_pretrained(
            self.resolved.location, dtype=self.dtype).to(self.device).eval()
        vocab = self.processor.tokenizer.get_vocab()
        # A checkpoint that knows the language tokens answers in Chinese itself (the toy twin);
        # any other (the real BLIP) writes English, and Chinese comes from translation.
        self.bilingual = all(token in vocab for token in LANG_PROMPTS.values())
        self._translator = None

    def caption(self, images: Sequence, lang: str = "en", max_new_tokens: int = 40) -> list[str]:
        if lang not in LANGS:
            raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
        if not images:
            return []
        images = images_to_rgb(images)
        if self.bilingual:
            # the toy tokenizer spends one token per Chinese character, so Chinese gets twice the budget
            budget = max_new_tokens * (2 if lang == "zh" else 1)
            return self._generate(images, prompt=LANG_PROMPTS[lang], max_new_tokens=budget)
        english = self._generate(images, prompt=None, max_new_tokens=max_new_tokens)
        if lang == "en":
            return english
        return self.translator().translate(english)

    def translator(self):
        if self._translator is None:
            from .translation import Translator  # imported here: only Chinese on the real route needs it

            self._translator = Translator("en_zh")
        return self._translator

    def _generate(self, images: list, prompt: str | None, max_new_tokens: int, batch_size: int = 32) -> list[str]:
        import torch

        captions = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            kwargs = {"text": [prompt] * len(batch)} if prompt else {}
            inputs = self.processor(images=batch, return_tensors="pt", **kwargs).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
            captions += [tidy_text(text) for text in self.processor.batch_decode(out, skip_special_tokens=True)]
        return captions


# ----------------------------------------------------------------------------- scoring on the toy world
def named_objects(caption: str, lang: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs a toy-world caption names, in order ("a red circle" -> [("red", "circle")])."""
    from .toyworld import COLOURS, SHAPES

    if lang == "en":
        pattern = rf"\b({'|'.join(COLOURS)})\s+({'|'.join(SHAPES)})s?\b"
        return [(c, s) for c, s in re.findall(pattern, caption.lower())]
    colour_of = {zh: en for en, (zh, _rgb) in COLOURS.items()}
    shape_of = {zh: en for en, zh in SHAPES.items()}
    pattern = f"({'|'.join(colour_of)})({'|'.join(shape_of)})"
    return [(colour_of[c], shape_of[s]) for c, s in re.findall(pattern, caption.replace(" ", ""))]


def names_every_object(caption: str, scene, lang: str) -> bool:
    """True when the caption names exactly the scene's objects by colour and shape, no more, no fewer."""
    return Counter(named_objects(caption, lang)) == Counter((o.colour, o.shape) for o in scene.objects)


def caption_accuracy(captioner: Captioner, scenes: Sequence, lang: str) -> tuple[float, list[str]]:
    """Fraction of scenes whose caption names every object's colour and shape; and the captions."""
    captions = captioner.caption([scene.render() for scene in scenes], lang=lang)
    hits = [names_every_object(c, s, lang) for c, s in zip(captions, scenes)]
    return sum(hits) / max(1, len(hits)), captions
