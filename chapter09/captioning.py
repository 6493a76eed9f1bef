"""Image captions in English and Chinese from one small interface, with a choice of captioner and precision.

    captioner = Captioner()                      # real BLIP if reachable, else the toy twin
    captioner.caption([image], lang="zh")
    Captioner(name="vit-gpt2", precision="int8") # the lighter ViT + GPT-2 captioner, int8 linears

Captioners (``CAPTIONERS``: name -> model role):

* ``blip``: ``Salesforce/blip-image-captioning-base`` (``BlipForConditionalGeneration``, 384 px), the default:
  it answers best of the two (the README's table gives the published figures);
* ``vit-gpt2``: ``nlpconnect/vit-gpt2-image-captioning`` (``VisionEncoderDecoderModel``: a 224 px ViT and GPT-2).

Both write English; Chinese is that caption translated by ``chapter09.translation.Translator("en_zh")``.
The BLIP toy twin is bilingual and continues a language prompt token (``<en>`` / ``<zh>``) directly.

Precisions (``CAPTION_PRECISIONS``): ``fp32`` (the reference), ``int8`` (the image encoder through ONNX Runtime
with int8 weights, activations quantised per batch; the text decoder stays fp32, because int8 there changes the
greedy tokens: ``onnx_captioner``), ``bf16`` (weights and inputs in bfloat16; fast only on CPUs with native bf16).
How much each changes the greedy output: ``caption_fidelity``.

The work is split so a pipeline can run its parts apart: ``pixels`` (the image processor, picklable: decode
workers run it), ``generate_ids`` on ready tensors (the model-alone part), ``decode_ids``.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from .errors import UsageError
from .images import as_rgb
from .language import LANG_TOKENS, LANGS, tidy_text
from .models import ResolvedModel, Settings, announce, cached, pick_device, pick_dtype, quiet_loading, resolve
from .precision import runtime_of

CAPTIONERS = {"blip": "captioner", "vit-gpt2": "vit_gpt2_captioner"}
DEFAULT_CAPTIONER = "blip"  # BLIP-base answers best (README: published COCO figures of both)
CAPTION_PRECISIONS = ("fp32", "bf16", "int8")


def toy_safe_dtype(resolved: ResolvedModel, device: str, dtype: str | None = None):
    """pick_dtype, except that toy twins stay fp32 on CPU unless asked: a few-MB model gains no speed
    from bf16, and rounding shifts its greedy decoding."""
    import torch

    if resolved.is_toy and device == "cpu" and not dtype:
        return torch.float32
    return pick_dtype(device, dtype)


def images_to_rgb(images: Sequence) -> list:
    return [as_rgb(image) for image in images]


def check_captioner(name: str) -> str:
    if name not in CAPTIONERS:
        raise UsageError(f"--captioner must be one of {', '.join(CAPTIONERS)}, not {name!r}")
    return name


def check_caption_precision(precision: str, allow_auto: bool = False) -> str:
    allowed = (("auto",) if allow_auto else ()) + CAPTION_PRECISIONS
    if precision not in allowed:
        raise UsageError(f"captioning precision must be one of {', '.join(allowed)}, not {precision!r}")
    return precision


def apply_caption_precision(model, precision: str, runtime: str = "torch"):
    """``model`` (fp32) at ``precision``, in place: bf16 converts the whole model; int8 puts an ONNX Runtime int8
    session in the image encoder's place and keeps the text decoder at fp32 (``onnx_captioner``: why); fp32 with
    ``runtime`` "onnxruntime" runs the image encoder through ONNX Runtime at fp32 (``onnx_runtime.fp32_runtime``
    decides, as for CLIP)."""
    import torch

    check_caption_precision(precision)
    if precision == "bf16":
        return model.to(torch.bfloat16).eval()
    model = model.float().eval()
    if precision == "int8" or runtime == "onnxruntime":
        from .onnx_captioner import ort_image_encoder  # heavy: onnxruntime

        model = ort_image_encoder(model, precision)
    return model


class Captioner:
    """``caption(images, lang)`` -> one caption per image, in English (``en``) or Chinese (``zh``).

    ``name``: a key of ``CAPTIONERS``; ``precision``: fp32 | int8 | bf16 (None: the dtype ``Settings`` picks, as
    before). ``parts=(model, image_processor, tokenizer)`` wraps an already built model (the bench's
    random-weight real architectures) instead of resolving a role. ``fp32_on``: the runtime fp32's image encoder
    runs on (torch | onnxruntime; None: ``onnx_runtime.fp32_runtime`` decides).
    """

    def __init__(self, settings: Settings | None = None, local_dir=None, resolved: ResolvedModel | None = None,
                 name: str = DEFAULT_CAPTIONER, precision: str | None = None, parts=None, label: str | None = None,
                 fp32_on: str | None = None):
        import torch

        self.settings = settings or Settings()
        self.name = check_captioner(name)
        self.device = pick_device(self.settings.device)
        if parts is not None:
            model, self.image_processor, self.tokenizer = parts
            self.resolved, self.location = None, label or f"{name} (in memory)"
            self.is_toy = False
        else:
            self.resolved = resolved or resolve(CAPTIONERS[name], self.settings, local_dir)
            announce(self.resolved)
            self.location, self.is_toy = self.resolved.location, self.resolved.is_toy
            model = None
        if precision is None:  # the dtype decides, as before: fp32 on CPUs without native bf16, fp16 on CUDA
            dtype = torch.float32 if parts is not None else toy_safe_dtype(self.resolved, self.device,
                                                                           self.settings.dtype)
            self.precision = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")
            model = (model if model is not None else self._load(dtype)).to(dtype).eval()
            self.runtime = runtime_of(self.precision, self.device, self.is_toy, fp32_on, bf16_on="torch")
            if self.runtime == "onnxruntime":
                model = apply_caption_precision(model, "fp32", self.runtime)
        else:
            self.precision = check_caption_precision(precision)
            if self.precision == "int8" and self.device != "cpu":
                raise UsageError(f"int8 captioning (dynamic quantisation) runs on the CPU only, not {self.device}: "
                                 "use --precision bf16 or fp32 there")
            self.runtime = runtime_of(self.precision, self.device, self.is_toy, fp32_on, bf16_on="torch")
            model = apply_caption_precision(model if model is not None else self._load(torch.float32), self.precision,
                                            self.runtime)
        self.model = model.to(self.device)
        self.input_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        self.is_blip = self.model.config.model_type == "blip"
        vocab = self.tokenizer.get_vocab()
        # A checkpoint that knows the language tokens answers in Chinese itself (the BLIP toy twin);
        # any other (the real BLIP, ViT-GPT2) writes English, and Chinese comes from translation.
        self.bilingual = self.is_blip and all(token in vocab for token in LANG_TOKENS.values())
        self.image_side = int(min(self._size().values()))

    def _load(self, dtype):
        from transformers import (
            AutoImageProcessor,
            AutoProcessor,
            AutoTokenizer,
            BlipForConditionalGeneration,
            VisionEncoderDecoderModel,
        )

        with quiet_loading():
            if self.name == "blip":
                processor = AutoProcessor.from_pretrained(self.location)
                self.image_processor, self.tokenizer = processor.image_processor, processor.tokenizer
                model = BlipForConditionalGeneration.from_pretrained(self.location, dtype=dtype)
            else:
                self.image_processor = AutoImageProcessor.from_pretrained(self.location)
                self.tokenizer = AutoTokenizer.from_pretrained(self.location)
                model = VisionEncoderDecoderModel.from_pretrained(self.location, dtype=dtype)
        return model

    def _size(self) -> dict:
        size = self.image_processor.size
        return {k: v for k, v in (size.items() if hasattr(size, "items") else vars(size).items())
                if k in ("height", "width", "shortest_edge") and v}

    @property
    def identity(self) -> str:
        """What a stored verdict is keyed by: the weights and the precision."""
        return f"{self.name}:{self.location}:{self.precision}"

    # ---- the three parts
    def pixels(self, images: Sequence):
        """Pixel values for ``images`` (the image processor alone: what decode workers run)."""
        return self.image_processor(images=images_to_rgb(images), return_tensors="pt")["pixel_values"]

    def budget(self, lang: str, max_new_tokens: int) -> int:
        # the toy tokenizer spends one token per Chinese character, so Chinese gets twice the budget
        return max_new_tokens * (2 if self.bilingual and lang == "zh" else 1)

    def generate_ids(self, pixel_values, lang: str = "en", max_new_tokens: int = 40, min_new_tokens: int | None = None):
        """Greedy token ids for ready ``pixel_values`` (the model-alone part a bench times)."""
        import torch

        kwargs = {"max_new_tokens": self.budget(lang, max_new_tokens), "num_beams": 1, "do_sample": False}
        if min_new_tokens:
            kwargs["min_new_tokens"] = min_new_tokens
        if self.bilingual:
            prompt = self.tokenizer([LANG_TOKENS[lang]] * len(pixel_values), return_tensors="pt")
            kwargs["input_ids"] = prompt["input_ids"].to(self.device)
            kwargs["attention_mask"] = prompt["attention_mask"].to(self.device)
        pixel_values = pixel_values.to(self.device, self.input_dtype)
        with torch.inference_mode():
            return self.model.generate(pixel_values=pixel_values, **kwargs)

    def decode_ids(self, ids) -> list[str]:
        return [tidy_text(text) for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    # ---- the whole
    def caption(self, images: Sequence, lang: str = "en", max_new_tokens: int = 40) -> list[str]:
        if lang not in LANGS:
            raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
        if not images:
            return []
        if self.bilingual:
            return self._generate(images, lang, max_new_tokens)
        english = self._generate(images, "en", max_new_tokens)
        if lang == "en":
            return english
        return self.translator().translate(english)

    def translator(self):
        from .translation import translator  # imported here: only Chinese on the real route needs it

        return translator("en_zh", self.settings)

    def _generate(self, images: Sequence, lang: str, max_new_tokens: int, batch_size: int = 32) -> list[str]:
        images = images_to_rgb(images)
        captions = []
        for start in range(0, len(images), batch_size):
            ids = self.generate_ids(self.pixels(images[start:start + batch_size]), lang, max_new_tokens)
            captions += self.decode_ids(ids)
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


def captioner(settings: Settings | None = None, name: str = DEFAULT_CAPTIONER, precision: str | None = None) -> Captioner:
    """The process's one ``Captioner`` for ``settings``, ``name`` and ``precision`` (see ``models.cached``)."""
    settings = settings or Settings()
    return cached("captioner", (settings, name, precision), lambda: Captioner(settings, name=name, precision=precision))
