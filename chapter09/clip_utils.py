"""CLIP behind one small interface, and the retrieval maths every lesson uses."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from .images import load_image, to_rgb
from .models import ResolvedModel, announce, pick_device, pick_dtype, resolve


def quiet_transformers() -> None:
    """Hide library chatter that says nothing to a learner (progress bars on tiny loads, fallbacks)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", message=".*requires torchvision.*")


def feature_tensor(output):
    """get_*_features return a tensor in transformers 4 and an output object in 5: take the embedding."""
    return output if hasattr(output, "dim") else output.pooler_output


class ClipEncoder:
    """Encode images and texts into CLIP's shared space as L2-normalised float32 arrays.

    Works for ``CLIPModel`` and ``ChineseCLIPModel`` checkpoints, real or toy.
    """

    def __init__(self, role: str = "clip", models: str | None = None, device: str | None = None,
                 dtype: str | None = None, local_dir=None, resolved: ResolvedModel | None = None):
        import torch
        from transformers import AutoModel, AutoProcessor

        quiet_transformers()
        self.resolved = resolved or resolve(role, models, local_dir)
        announce(self.resolved)
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
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
            batch = [to_rgb(im) if hasattr(im, "mode") else load_image(im) for im in images[start:start + batch_size]]
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            with self._torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
            chunks.append(self._to_numpy(out, normalize))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)

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


# ----------------------------------------------------------------------------- retrieval maths
def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of ``a`` against rows of ``b``; both are normalised here, so inputs may be raw."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return a @ b.T


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores in each row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(scores, part, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(part, order, axis=1)


def recall_at_k(scores: np.ndarray, relevant: Sequence[set[int] | int], ks=(1, 5, 10)) -> dict[str, float]:
    """Fraction of queries (rows) with a relevant column among their top k, for each k."""
    ranked = top_k(scores, max(ks))
    relevant = [{r} if isinstance(r, (int, np.integer)) else set(r) for r in relevant]
    return {f"R@{k}": float(np.mean([bool(relevant[i] & set(ranked[i, :k])) for i in range(len(ranked))]))
            for k in ks}


def zero_shot_classify(encoder: ClipEncoder, image_embeddings: np.ndarray, class_prompts: dict[str, list[str]]):
    """Prompt ensembling as in the CLIP paper: each class is the mean of its prompts' embeddings.

    Returns (predicted class per image, class names, probabilities).
    """
    names = list(class_prompts)
    centroids = np.stack([encoder.encode_texts(class_prompts[name]).mean(axis=0) for name in names])
    scores = cosine_similarity(image_embeddings, centroids) * 100.0
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return [names[i] for i in probs.argmax(axis=1)], names, probs
