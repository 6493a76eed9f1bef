"""One place for the chapter's model ids, defaults and paths.

Every lesson and the capstone ask this module which model serves a *role*
("clip", "captioner", ...). Each role names the real checkpoint on the
Hugging Face hub and its toy twin: a tiny model of the same transformers class,
trained from scratch on the toy world by ``python -m chapter09.toyworld train``
and stored in ``chapter09/toyworld/twins/<role>``. Some roles have no twin (SmolVLM,
Qwen3, ...): their real classes are exercised on tiny random models by the test named in
``ModelSpec.tested_by``. BLIP-2's twin is built the way BLIP-2 was (``toyworld/train_blip2.py``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
ASSETS_DIR = REPO_DIR / "assets"
TOY_MODELS_DIR = PACKAGE_DIR / "toyworld" / "twins"
DEFAULT_OUT_DIR = Path(os.environ.get("CH09_OUT", REPO_DIR / "outputs"))
CAPSTONE_TOUR = PACKAGE_DIR / "capstone" / "tour.py"  # run by `run_all_sections.py capstone`

# Environment variables a learner may set (command-line flags win over them).
ENV_MODELS = "CH09_MODELS"  # auto | real | toy
ENV_DEVICE = "CH09_DEVICE"  # cpu | cuda | mps
ENV_DTYPE = "CH09_DTYPE"  # float32 | bfloat16 | float16
ENV_HIDE_CPU_FEATURES = "CH09_HIDE_CPU_FEATURES"  # bf16 | avx512 | vnni,...: run as if the CPU lacked them (cpu.py)
ENV_MODEL_DIR_PREFIX = "CH09_MODEL_DIR_"  # CH09_MODEL_DIR_CLIP=/path/to/clip names a local copy
MODEL_MODES = ("auto", "real", "toy")

# Seconds we give the hub to answer before falling back to the toy world.
HUB_PROBE_TIMEOUT_S = 2.0

# Toy world: one seed per split so every data set is reproducible.
TOY_TRAIN_SEED = 1234
TOY_HELDOUT_SEED = 98765


@dataclass(frozen=True)
class ModelSpec:
    """A role the chapter needs, the real checkpoint that fills it and its toy twin."""

    role: str
    hub_id: str
    model_class: str  # the transformers (or sentence-transformers) class both load into
    purpose: str
    licence: str
    toy_dir: str | None  # folder name under TOY_MODELS_DIR; None: the toy world has no twin of this role
    params: str = ""  # size of the real checkpoint, as published
    alternatives: tuple[str, ...] = field(default_factory=tuple)
    tested_by: str = ""  # the test that runs the real class on a tiny random model (and, for BLIP-2, the twin)

    @property
    def has_twin(self) -> bool:
        return self.toy_dir is not None

    @property
    def toy_path(self) -> Path | None:
        return TOY_MODELS_DIR / self.toy_dir if self.toy_dir else None


MODELS: dict[str, ModelSpec] = {
    spec.role: spec
    for spec in [
        ModelSpec(
            "clip", "openai/clip-vit-base-patch32", "CLIPModel",
            "image and text embeddings in one space (9.1, 9.2, capstone search)",
            "MIT", "clip", "151 M",
        ),
        ModelSpec(
            "sbert_clip", "sentence-transformers/clip-ViT-B-32", "SentenceTransformer",
            "the same CLIP behind sentence-transformers' encode() (9.3)",
            "MIT", "clip", "151 M",
        ),
        ModelSpec(
            "multilingual_text", "sentence-transformers/clip-ViT-B-32-multilingual-v1",
            "SentenceTransformer",
            "text encoder for 50+ languages distilled into CLIP's image space (9.3, capstone)",
            "Apache-2.0", "multilingual_text", "135 M",
        ),
        ModelSpec(
            "chinese_clip", "OFA-Sys/chinese-clip-vit-base-patch16", "ChineseCLIPModel",
            "CLIP trained on Chinese image-text pairs (capstone Chinese search)",
            "MIT", "chinese_clip", "188 M",
        ),
        ModelSpec(
            "captioner", "Salesforce/blip-image-captioning-base", "BlipForConditionalGeneration",
            "English image captions on CPU (9.4 CPU route, capstone)",
            "BSD-3-Clause", "captioner", "247 M",
            alternatives=("nlpconnect/vit-gpt2-image-captioning",),
        ),
        ModelSpec(
            "vit_gpt2_captioner", "nlpconnect/vit-gpt2-image-captioning",
            "VisionEncoderDecoderModel",
            "the ViT + GPT-2 captioner the original project used",
            "Apache-2.0", None, "239 M", tested_by="nothing yet: listed as the original project's choice; the chapter does not load it",
        ),
        ModelSpec(
            "vqa", "Salesforce/blip-vqa-base", "BlipForQuestionAnswering",
            "visual question answering on CPU (9.4 CPU route)",
            "BSD-3-Clause", "vqa", "385 M",
        ),
        ModelSpec(
            "blip2", "Salesforce/blip2-opt-2.7b", "Blip2ForConditionalGeneration",
            "captioning and visual Q&A with a frozen OPT-2.7B language model (9.4)",
            "MIT", "blip2", "3.74 B (15.0 GB = 13.9 GiB in fp32, 7.5 GB = 7.0 GiB in fp16/bf16)",
            tested_by="tests/test_toy_blip2.py (the twin: frozen converted BLIP tower, frozen toy OPT, trained "
                      "Q-Former); tests/test_vl_hub_classes.py::test_blip2_code_path_on_a_random_model",
        ),
        ModelSpec(
            "translator_en_zh", "Helsinki-NLP/opus-mt-en-zh", "MarianMTModel",
            "English to Chinese translation of captions (capstone)",
            "CC-BY-4.0", "translator_en_zh", "77 M",
            alternatives=("facebook/nllb-200-distilled-600M (CC-BY-NC-4.0: non-commercial only)",),
        ),
        ModelSpec(
            "translator_zh_en", "Helsinki-NLP/opus-mt-zh-en", "MarianMTModel",
            "Chinese to English translation of queries (capstone translate-then-CLIP)",
            "CC-BY-4.0", "translator_zh_en", "77 M",
            alternatives=("facebook/nllb-200-distilled-600M (CC-BY-NC-4.0: non-commercial only)",),
        ),
        ModelSpec(
            "small_vlm", "HuggingFaceTB/SmolVLM-256M-Instruct", "AutoModelForImageTextToText",
            "a small instruction-following VLM that runs on CPU (9.5)",
            "Apache-2.0", None, "256 M", tested_by="tests/test_vl_hub_classes.py::test_small_vlm_code_path_on_a_random_smolvlm",
        ),
        ModelSpec(
            "vlm_language_model", "Qwen/Qwen3-0.6B", "AutoModelForCausalLM",
            "the causal LM inside the build-your-own VLM (9.5)",
            "Apache-2.0", None, "0.6 B",
            tested_by="tests/test_vl_tiny_vlm.py (the tiny VLM carries its own tiny Qwen3 in twins/tiny_vlm)",
        ),
    ]
}


def model_spec(role: str) -> ModelSpec:
    try:
        return MODELS[role]
    except KeyError:
        raise KeyError(f"unknown model role {role!r}; known roles: {', '.join(MODELS)}") from None
