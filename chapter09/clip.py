"""CLIP behind one small interface: images and texts in, unit vectors out (the maths is in ``retrieval``)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .images import as_rgb
from .models import ResolvedModel, Settings, announce, cached, pick_device, pick_dtype, quiet_loading, resolve


def feature_tensor(output):
    """get_*_features return a tensor in transformers 4 and an output object in 5: take the embedding."""
    return output if hasattr(output, "dim") else output.pooler_output


class ClipEncoder:
    """Encode images and texts into CLIP's shared space as L2-normalised float32 arrays.

    Works for ``CLIPModel`` and ``ChineseCLIPModel`` checkpoints, real or toy.
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
        self.dtype = pick_dtype(self.device, settings.dtype)
        with quiet_loading():
            self.processor = AutoProcessor.from_pretrained(self.resolved.location)
            self.model = AutoModel.from_pretrained(self.resolved.location, dtype=self.dtype).to(self.device).eval()
        self.max_text_tokens = self.model.config.text_config.max_position_embeddings
        self._torch = torch

    @property
    def dim(self) -> int:
        return self.model.config.projection_dim

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
        return self.processor.tokenizer(list(texts), padding=True, truncation=True,
                                        max_length=self.max_text_tokens, return_tensors="pt")

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
