"""How each CLIP-family checkpoint wants its text read and its scores made: one table, keyed by ``model_type``.

``ClipEncoder`` loads any of these with ``AutoModel``/``AutoProcessor``; what differs between them is
decided here and nowhere else:

* the embedding width: ``projection_dim`` (CLIP, Chinese-CLIP, AltCLIP); SigLIP has none, its image
  tower's pooled state meets the text head's output (``text_config.projection_size``, else the text width);
* the text context and padding: SigLIP was trained on texts padded to 64 tokens ("make sure to set
  padding='max_length' as that's how the model was trained", transformers' SigLIP docs) and lowercased
  (SigLIP's tokenizer does it, ``do_lower_case``; the SigLIP 2 paper: "transforming the text to lower case
  before tokenization", which its Gemma tokenizer does not do by itself); Chinese-CLIP 52 tokens (cn_clip);
  CLIP and AltCLIP pad to the longest text of a batch (they read the end-of-text / CLS position);
* the scores of one image against several texts: CLIP-family models were trained with a softmax over the
  batch, so their probabilities are a softmax over the candidate texts; SigLIP was trained with an
  independent sigmoid per pair, ``sigmoid(exp(logit_scale) * cos + logit_bias)``, which need not sum to 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UsageError

SIGLIP_CONTEXT = 64  # tokens SigLIP and SigLIP 2 were trained on (padded to it)
CHINESE_CLIP_CONTEXT = 52  # Chinese-CLIP trained on 52 tokens (cn_clip's tokenize), though its BERT has 512 positions


@dataclass(frozen=True)
class ClipFamily:
    """The conventions of one ``model_type``: text context, padding, case, and how scores are made."""

    model_type: str
    scores: str  # "softmax" over the candidate texts | "sigmoid" per pair
    pad_to_context: bool = False  # pad every text to the context (SigLIP) rather than to the batch's longest
    lowercase: bool = False
    context: int | None = None  # the tokens it was trained on; None: every position its text tower has
    position_offset: int = 0  # positions the text tower reserves (RoBERTa's start after the padding index)

    def text_context(self, model_config) -> int:
        positions = model_config.text_config.max_position_embeddings - self.position_offset
        return min(positions, self.context) if self.context else positions

    @property
    def padding(self) -> str | bool:
        return "max_length" if self.pad_to_context else True


FAMILIES = {family.model_type: family for family in (
    ClipFamily("clip", "softmax"),
    ClipFamily("chinese_clip", "softmax", context=CHINESE_CLIP_CONTEXT),
    ClipFamily("altclip", "softmax", position_offset=2),
    ClipFamily("siglip", "sigmoid", pad_to_context=True, lowercase=True, context=SIGLIP_CONTEXT),
)}
# SigLIP 2's NaFlex processor gives each image its own patch count, mask and shape; the indexer ships one fixed
# pixel tensor per image, so SigLIP 2 is refused with a message rather than encoded wrongly.
NOT_YET = {"siglip2": "SigLIP 2 (NaFlex: a patch mask and shape per image, which the indexer does not carry yet); "
                      "use a SigLIP checkpoint such as google/siglip-base-patch16-224"}


def family_of(model_config, location: str = "") -> ClipFamily:
    """The conventions of ``model_config`` (a loaded model's config), or a UsageError naming the supported types."""
    model_type = getattr(model_config, "model_type", "")
    where = f" ({location})" if location else ""
    if model_type in NOT_YET:
        raise UsageError(f"--clip-model{where}: {NOT_YET[model_type]}")
    if model_type not in FAMILIES:
        raise UsageError(f"--clip-model{where} is a {model_type or 'unknown'} model; the image library reads "
                         f"CLIP-family checkpoints: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def embedding_dim(model_config) -> int:
    """The width of the shared space: ``projection_dim``, else SigLIP's text head (``projection_size``/width)."""
    projection = getattr(model_config, "projection_dim", None)
    if projection:
        return int(projection)
    text = model_config.text_config
    return int(getattr(text, "projection_size", None) or text.hidden_size)


def match_probabilities(family: ClipFamily, cosines: np.ndarray, logit_scale: float,
                        logit_bias: float = 0.0) -> np.ndarray:
    """``cosines`` (images x texts) as the model's own probabilities: softmax over each row's texts, or SigLIP's
    independent sigmoid per pair. ``logit_scale`` is the model's parameter (log of the temperature's inverse)."""
    logits = np.exp(logit_scale) * np.asarray(cosines, np.float64)
    if family.scores == "sigmoid":
        return 1.0 / (1.0 + np.exp(-(logits + logit_bias)))
    logits = logits - logits.max(axis=-1, keepdims=True)  # stable softmax
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)
