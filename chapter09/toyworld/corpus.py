"""The toy world's texts and pixels as the trainers consume them: the corpus, sampled captions, parallel pairs."""
from __future__ import annotations

import random

from .scenes import Scene, generate_scenes

# A quarter of sampled captions name only colours and shapes ("a red circle"), the way people query.
SHORT_CAPTION_SHARE = 0.25
# The toy CLIP also sees a few captions naming one attribute an object ("a red shape and a star"), as web
# alt-texts often do; that is what lets a class-name-only prompt ("a photo of a circle") mean anything.
PARTIAL_CAPTION_SHARE = 0.1


def toy_corpus(n_scenes: int = 4000, seed: int = 0, langs: tuple[str, ...] = ("en", "zh")) -> list[str]:
    """Every kind of text the toy world produces in ``langs``, for training tokenizers."""
    texts = []
    for split in ("train", "heldout"):
        for scene in generate_scenes(n_scenes, seed, split, unique=False):
            for lang in langs:
                texts += scene.captions(lang)
                texts.append(scene.short_caption(lang))
            for qa in scene.questions():
                if qa["lang"] in langs:
                    texts += [qa["question"], qa["answer"]]
    return texts


def sample_caption(scene: Scene, rng: random.Random, short_fraction: float = SHORT_CAPTION_SHARE,
                   lang: str | None = None, partial_fraction: float = 0.0) -> str:
    """A random phrasing in a random language; sometimes only colours and shapes, or one attribute each."""
    lang = lang or rng.choice(("en", "zh"))
    if partial_fraction and rng.random() < partial_fraction:
        return scene.partial_caption(rng, lang)
    if rng.random() < short_fraction:
        return scene.short_caption(lang)
    return rng.choice(scene.captions(lang))


def render_pixels(scenes: list[Scene], image_processor, batch: int = 512):
    """Render scenes and preprocess them exactly as at inference time; float16 to halve memory."""
    import torch

    chunks = []
    for start in range(0, len(scenes), batch):
        images = [s.render() for s in scenes[start:start + batch]]
        chunks.append(image_processor(images=images, return_tensors="pt")["pixel_values"].to(torch.float16))
    return torch.cat(chunks)


def parallel_pair(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """An (English, Chinese) pair saying the same thing: the n-th phrasings match, as do the short forms."""
    if rng.random() < SHORT_CAPTION_SHARE:
        return scene.short_caption("en"), scene.short_caption("zh")
    i = rng.randrange(4)
    return scene.captions("en")[i], scene.captions("zh")[i]


