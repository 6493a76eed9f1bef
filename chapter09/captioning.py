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

from .images import as_rgb
from .language import LANG_TOKENS, LANGS, tidy_text
from .models import ResolvedModel, Settings, announce, cached, pick_device, pick_dtype, quiet_loading, resolve


def toy_safe_dtype(resolved: ResolvedModel, device: str, dtype: str | None = None):
    """pick_dtype, except that toy twins stay fp32 on CPU unless asked: a few-MB model gains no speed
    from bf16, and rounding shifts its greedy decoding."""
    import torch

    if resolved.is_toy and device == "cpu" and not dtype:
        return torch.float32
    return pick_dtype(device, dtype)


def images_to_rgb(images: Sequence) -> list:
    return [as_rgb(image) for image in images]


class Captioner:
    """``caption(images, lang)`` -> one caption per image, in English (``en``) or Chinese (``zh``)."""

    def __init__(self, settings: Settings | None = None, local_dir=None, resolved: ResolvedModel | None = None):
        from transformers import AutoProcessor, BlipForConditionalGeneration

        self.settings = settings or Settings()
        self.resolved = resolved or resolve("captioner", self.settings, local_dir)
        announce(self.resolved)
        self.device = pick_device(self.settings.device)
        self.dtype = toy_safe_dtype(self.resolved, self.device, self.settings.dtype)
        with quiet_loading():
            self.processor = AutoProcessor.from_pretrained(self.resolved.location)
            self.model = BlipForConditionalGeneration.from_pretrained(
                self.resolved.location, dtype=self.dtype).to(self.device).eval()
        vocab = self.processor.tokenizer.get_vocab()
        # A checkpoint that knows the language tokens answers in Chinese itself (the toy twin);
        # any other (the real BLIP) writes English, and Chinese comes from translation.
        self.bilingual = all(token in vocab for token in LANG_TOKENS.values())

    def caption(self, images: Sequence, lang: str = "en", max_new_tokens: int = 40) -> list[str]:
        if lang not in LANGS:
            raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
        if not images:
            return []
        images = images_to_rgb(images)
        if self.bilingual:
            # the toy tokenizer spends one token per Chinese character, so Chinese gets twice the budget
            budget = max_new_tokens * (2 if lang == "zh" else 1)
            return self._generate(images, prompt=LANG_TOKENS[lang], max_new_tokens=budget)
        english = self._generate(images, prompt=None, max_new_tokens=max_new_tokens)
        if lang == "en":
            return english
        return self.translator().translate(english)

    def translator(self):
        from .translation import translator  # imported here: only Chinese on the real route needs it

        return translator("en_zh", self.settings)

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
    from .toyworld.scenes import COLOURS, SHAPES

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


def captioner(settings: Settings | None = None) -> Captioner:
    """The process's one ``Captioner`` for ``settings`` (see ``models.cached``)."""
    settings = settings or Settings()
    return cached("captioner", settings, lambda: Captioner(settings))
