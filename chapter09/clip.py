"""CLIP behind one small interface: images and texts in, unit vectors out (the maths is in ``retrieval``)."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .clip_family import ClipFamily, embedding_dim, family_of, match_probabilities
from .images import as_rgb
from .model_outputs import feature_tensor
from .models import ResolvedModel, Settings, announce, cached, pick_device, quiet_loading, resolve
from .precision import apply_precision, input_dtype, numeric_format, precision_identity, runtime_of
from .text_clean import as_is as _as_is
from .text_clean import lowercased as _lowercased
from .text_clean import openai_clean

BERT_MAX_WORD_CHARS = 200  # cn_clip (as Google's BERT) splits words of up to 200 characters; transformers stops at 100


@dataclass(frozen=True)
class ClipShapes:
    """The sizes that open a CLIP up: its input, patch grid and token counts, the towers' widths."""

    image_size: int  # pixels per side of the image encoder's input
    patch_size: int  # pixels per side of one patch, one token of the image encoder
    vision_width: int  # width of the image tower (its CLS token's pooled state)
    text_width: int  # width of the text tower (its end-of-text token's pooled state)
    projection_dim: int  # the shared space both towers are projected into
    context_length: int  # text positions
    vocab_size: int

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def image_tokens(self) -> int:
        """Patches plus the CLS token, the sequence the image tower's transformer reads."""
        return self.patches_per_side ** 2 + 1

    @classmethod
    def of(cls, model_config) -> "ClipShapes":
        """The sizes of a ``CLIPModel``'s config."""
        vision, text = model_config.vision_config, model_config.text_config
        return cls(vision.image_size, vision.patch_size, vision.hidden_size, text.hidden_size,
                   model_config.projection_dim, text.max_position_embeddings, text.vocab_size)


# openai/clip-vit-base-patch32 as published: its config.json on the Hugging Face hub, and table 20 of the CLIP paper
# (Radford et al., arXiv 2103.00020): ViT-B/32 at 224 px, width 768; text transformer of width 512 over 77 tokens;
# embedding dimension 512. Its BPE vocabulary has 49,408 entries, start and end of text 49406 and 49407.
REFERENCE_CLIP = "openai/clip-vit-base-patch32"
REFERENCE_CLIP_SHAPES = ClipShapes(image_size=224, patch_size=32, vision_width=768, text_width=512, projection_dim=512,
                                   context_length=77, vocab_size=49408)
REFERENCE_CLIP_SPECIAL_IDS = (49406, 49407)


def end_of_text_positions(input_ids, eos_token_id: int):
    """Where CLIP's text tower reads each row's sentence vector: at its end-of-text token.

    As transformers' ``CLIPTextModel`` picks it: the first position holding ``eos_token_id`` (padding may
    reuse that id, so the first one is the real end); a config whose ``eos_token_id`` is still 2 (written
    before transformers PR #24773) takes each row's highest id, which is end-of-text in OpenAI's vocabulary.
    """
    import torch

    ids = torch.as_tensor(input_ids)
    if eos_token_id == 2:
        return ids.argmax(dim=-1)
    return (ids == eos_token_id).int().argmax(dim=-1)


def reference_text_rules(model_config, tokenizer, is_toy: bool, family: ClipFamily | None = None):
    """(context length, text cleaner) that make the tokenizer give the ids the real checkpoint was trained on.

    Checked against the projects' own tokenizers in tests/test_real_tokenizers.py: a real ``clip``
    checkpoint gets OpenAI's cleaning and 77 tokens; Chinese-CLIP 52 tokens and cn_clip's long-word
    rule; SigLIP lowercased text (``clip_family``). The toy twins' tokenizers were trained on raw text and keep it.
    """
    family = family or family_of(model_config)
    context = family.text_context(model_config)
    if model_config.model_type == "chinese_clip":
        wordpiece = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
        if hasattr(wordpiece, "max_input_chars_per_word"):
            wordpiece.max_input_chars_per_word = BERT_MAX_WORD_CHARS
        return context, _as_is
    if model_config.model_type == "clip" and not is_toy:
        return context, openai_clean
    return context, _lowercased if family.lowercase else _as_is


class ClipEncoder:
    """Encode images and texts into CLIP's shared space as L2-normalised float32 arrays.

    Works for ``CLIPModel``, ``ChineseCLIPModel``, ``AltCLIPModel`` and ``SiglipModel`` checkpoints, real or toy;
    what differs between them (text context and padding, embedding width, scores) is ``clip_family``'s.
    """

    def __init__(self, role: str = "clip", settings: Settings | None = None, local_dir=None,
                 resolved: ResolvedModel | None = None):
        import torch
        from transformers import AutoModel, AutoProcessor

        settings = settings or Settings()
        self.settings = settings
        self.resolved = resolved or resolve(role, settings, local_dir)
        announce(self.resolved)
        self.device = pick_device(settings.device)
        numeric = numeric_format(settings, self.device)
        runtime = runtime_of(numeric.precision, self.device, self.resolved.is_toy) if numeric.convert else "torch"
        # a runtime other than torch's reads fp32 weights (its export is fp32's, shared by every precision)
        self.dtype = numeric.load_dtype if runtime == "torch" else torch.float32
        with quiet_loading():
            self.processor = AutoProcessor.from_pretrained(self.resolved.location)
            self.model = AutoModel.from_pretrained(self.resolved.location, dtype=self.dtype).to(self.device).eval()
        self.family = family_of(self.model.config, self.resolved.location)  # before any work: refuse early
        self.torch_model = self.model  # what other precisions derive from (``at_precision``)
        self.runtime = runtime
        if numeric.convert:
            self.model = apply_precision(self.model, numeric.precision, self.device, self.runtime)
            self.dtype = input_dtype(numeric.precision, runtime)
        self.precision = numeric.precision
        self.max_text_tokens, self._clean_text = reference_text_rules(self.torch_model.config, self.processor.tokenizer,
                                                                      self.resolved.is_toy, self.family)
        self._torch = torch

    def at_precision(self, precision: str, runtime: str | None = None) -> "ClipEncoder":
        """A copy of this encoder at ``precision`` (sharing its processor), made from a copy of its weights.

        Derive candidates from an fp32 encoder: bf16 weights cannot give back fp32 ones. ``runtime``: fp32's
        (torch | onnxruntime; default ``onnx_runtime.fp32_runtime``'s choice) or bf16's (torch | openvino; default
        ``openvino_runtime.bf16_runtime``'s); int8 has one.
        """
        variant = copy.copy(self)
        runtime = runtime_of(precision, self.device, self.resolved.is_toy, fp32_on=runtime if precision == "fp32" else None,
                             bf16_on=runtime if precision == "bf16" else None)
        # another runtime only reads the weights (it exports them); torch's bf16 converts them in place
        in_place = runtime == "torch" and precision == "bf16"
        weights = copy.deepcopy(self.torch_model) if in_place else self.torch_model
        variant.model = apply_precision(weights, precision, self.device, runtime)
        variant.torch_model = variant.model if in_place else self.torch_model
        variant.runtime = runtime
        variant.dtype = input_dtype(precision, runtime)
        variant.precision = precision
        variant.settings = self.settings.with_(precision=precision)
        return variant

    def release(self) -> None:
        """Free a runtime's sessions now, on this thread (see ``onnx_runtime.OrtSessions.release``); torch's
        modules need nothing. A precision check calls it for the candidates it does not keep."""
        getattr(self.model, "release", lambda: None)()

    @property
    def dim(self) -> int:
        return embedding_dim(self.torch_model.config)

    def match_scores(self, image_vectors: np.ndarray, text_vectors: np.ndarray) -> np.ndarray:
        """(images x texts) probabilities from this encoder's unit vectors, as the model was trained to give them:
        a softmax over each image's candidate texts (CLIP, Chinese-CLIP, AltCLIP) or an independent sigmoid per
        pair (SigLIP), see ``clip_family.match_probabilities``."""
        cosines = np.atleast_2d(image_vectors) @ np.atleast_2d(text_vectors).T
        bias = getattr(self.torch_model, "logit_bias", None)
        return match_probabilities(self.family, cosines, float(self.torch_model.logit_scale.float().item()),
                                   float(bias.float().item()) if bias is not None else 0.0)

    @property
    def precision_id(self) -> str:
        """The precision as an index records it: vectors of equal (location, precision_id) are interchangeable."""
        return precision_identity(self.precision, self.runtime)

    @property
    def identity(self) -> str:
        """Which vectors this encoder makes: checkpoint location and precision (keys caches and index tables)."""
        return f"{self.resolved.location}@{self.precision_id}"

    @staticmethod
    def _to_numpy(features, normalize: bool) -> np.ndarray:
        features = feature_tensor(features).float()
        if normalize:
            features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.cpu().numpy()

    def encode_images(self, images: Sequence, batch_size: int = 64, normalize: bool = True) -> np.ndarray:
        """``images``: PIL images or paths. Returns an (N, dim) array (unit vectors if ``normalize``)."""
        chunks = []
        for start in range(0, len(images), batch_size):
            batch = [as_rgb(image) for image in images[start:start + batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            with self._torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
            chunks.append(self._to_numpy(out, normalize))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

    @property
    def image_side(self) -> int:
        """The short edge the image processor resizes to (real CLIP: 224; the toy: 64)."""
        size = getattr(self.processor.image_processor, "size", None) or {}
        if hasattr(size, "get"):
            return int(size.get("shortest_edge") or size.get("height") or 224)
        return int(getattr(size, "shortest_edge", None) or getattr(size, "height", None) or 224)

    def encode_pixels(self, pixels, normalize: bool = True) -> np.ndarray:
        """A preprocessed pixel batch (from ``processor.image_processor``) -> vectors, without decoding."""
        with self._torch.inference_mode():
            out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        return self._to_numpy(out, normalize)

    def tokenize(self, texts: Sequence[str]):
        return self.processor.tokenizer([self._clean_text(text) for text in texts], padding=self.family.padding,
                                        truncation=True, max_length=self.max_text_tokens, return_tensors="pt")

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, normalize: bool = True) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenize(texts[start:start + batch_size])
            with self._torch.inference_mode():
                out = self.model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
            chunks.append(self._to_numpy(out, normalize))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)


def clip_encoder(role: str = "clip", settings: Settings | None = None) -> ClipEncoder:
    """The process's one ``ClipEncoder`` for ``role`` and ``settings`` (see ``models.cached``)."""
    settings = settings or Settings()
    return cached("clip_encoder", (role, settings), lambda: ClipEncoder(role, settings))
