"""Measuring a CLIP on a toy-world data set: retrieval recall and zero-shot accuracy, per language."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..clip import ClipEncoder
from ..models import Settings
from ..retrieval import recall_both_ways, zero_shot_classify
from .scenes import COLOURS, HARD_VARIANTS, POSITIONS, SHAPES, SIZES, load_scenes, read_jsonl

# Zero-shot prompt templates; each class is the mean over templates and the other attribute.
TEMPLATES = {
    "en": ["a {colour} {shape}", "a photo of a {colour} {shape}"],
    "zh": ["{colour}{shape}", "一张{colour}{shape}的图片"],
}


def _article(phrase: str) -> str:
    return phrase.replace("a orange", "an orange")


def zero_shot_prompts(attribute: str, lang: str) -> dict[str, list[str]]:
    """class name -> prompts, e.g. colour 'red' -> ['a red circle', 'a red square', ...]."""
    if attribute not in ("colour", "shape"):
        raise ValueError("attribute must be 'colour' or 'shape'")
    prompts: dict[str, list[str]] = {}
    for colour, (colour_zh, _rgb) in COLOURS.items():
        for shape, shape_zh in SHAPES.items():
            words = {"colour": colour, "shape": shape} if lang == "en" else {"colour": colour_zh, "shape": shape_zh}
            name = colour if attribute == "colour" else shape
            prompts.setdefault(name, []).extend(
                _article(template.format(**words)) for template in TEMPLATES[lang])
    return prompts


# Prompt ensembling as in the CLIP paper (section 3.1.4): several wordings, and the attributes the class does not
# decide (colour, size, place, as the paper's templates vary "a photo of a big {}" and "a photo of a small {}").
ENSEMBLE_TEMPLATES_EN = ("a photo of a {object}", "a {object}", "there is a {object}")


def class_name_prompts(attribute: str) -> dict[str, list[str]]:
    """One prompt per class, the CLIP paper's default: the class name alone in "a photo of a {}" (English)."""
    if attribute == "shape":
        return {shape: [f"a photo of a {shape}"] for shape in SHAPES}
    if attribute == "colour":
        return {colour: [_article(f"a photo of a {colour} shape")] for colour in COLOURS}
    raise ValueError("attribute must be 'colour' or 'shape'")


def ensemble_prompts(attribute: str) -> dict[str, list[str]]:
    """class name -> every ``ENSEMBLE_TEMPLATES_EN`` wording of every size, position and other attribute.

    'circle' -> ['a photo of a small red circle at the top left', 'a small red circle at the top left', ...]:
    3 templates x 6 colours x 2 sizes x 9 places = 324 prompts per shape (English: the toy CLIP, like
    OpenAI's, read English only).
    """
    if attribute not in ("colour", "shape"):
        raise ValueError("attribute must be 'colour' or 'shape'")
    prompts: dict[str, list[str]] = {}
    for colour in COLOURS:
        for shape in SHAPES:
            for size in SIZES:
                for place, _answer, _zh in POSITIONS.values():
                    described = f"{size} {colour} {shape} {place}"
                    prompts.setdefault(colour if attribute == "colour" else shape, []).extend(
                        template.format(object=described) for template in ENSEMBLE_TEMPLATES_EN)
    return prompts


def hard_family_accuracy(scores: np.ndarray) -> dict:
    """``family_accuracy`` for scenes held in memory as ``generate_scenes(n, seed, "hard")`` returns them.

    ``scores``: one row per scene's caption, one column per scene, both in that order, so scenes
    3f, 3f+1, 3f+2 are family f (``HARD_VARIANTS``). The share of captions whose own scene wins
    among its family, overall and per variant; chance is 1/3.
    """
    scores = np.asarray(scores)
    size = len(HARD_VARIANTS)
    hits: dict[str, list[bool]] = {}
    for row in range(len(scores) - len(scores) % size):  # a last family cut short is left out
        family = slice(row - row % size, row - row % size + size)
        hits.setdefault(HARD_VARIANTS[row % size], []).append(int(np.argmax(scores[row, family])) == row % size)
    every = [hit for variant_hits in hits.values() for hit in variant_hits]
    return {"all": float(np.mean(every)), **{v: float(np.mean(hits[v])) for v in HARD_VARIANTS if v in hits},
            "chance": 1 / size, "families": len(every) // size}


def evaluate_clip(encoder: ClipEncoder, data_dir: str | Path) -> dict:
    """Text->image and image->text recall per language, zero-shot colour/shape accuracy per language."""
    data_dir = Path(data_dir)
    captions = read_jsonl(data_dir / "captions.jsonl")
    image_names = sorted({row["image"] for row in captions})
    index_of = {name: i for i, name in enumerate(image_names)}
    image_embeddings = encoder.encode_images([data_dir / name for name in image_names])
    report: dict = {"data_dir": str(data_dir), "images": len(image_names), "model": encoder.resolved.location,
                    "toy": encoder.resolved.is_toy}
    for lang in ("en", "zh"):
        rows = [row for row in captions if row["lang"] == lang]
        if not rows:
            continue
        text_embeddings = encoder.encode_texts([row["caption"] for row in rows])
        recall = recall_both_ways(text_embeddings, image_embeddings, [index_of[row["image"]] for row in rows])
        report[f"text_to_image_{lang}"] = recall["text_to_image"]
        report[f"image_to_text_{lang}"] = recall["image_to_text"]
        report[f"captions_{lang}"] = len(rows)
        families = family_accuracy(data_dir, rows, text_embeddings @ image_embeddings.T, index_of)
        if families:
            report[f"family_{lang}"] = families
    scenes_file = data_dir / "scenes.jsonl"
    if scenes_file.exists():
        scenes = load_scenes(data_dir)
        single = [name for name in image_names if name in scenes and len(scenes[name].objects) == 1]
        if single:
            single_embeddings = image_embeddings[[index_of[name] for name in single]]
            report["zero_shot_images"] = len(single)
            for lang in ("en", "zh"):
                for attribute in ("colour", "shape"):
                    predicted, _names, _probs = zero_shot_classify(
                        encoder, single_embeddings, zero_shot_prompts(attribute, lang))
                    truth = [getattr(scenes[name].objects[0], attribute) for name in single]
                    report[f"zero_shot_{attribute}_{lang}"] = float(np.mean([p == t for p, t in zip(predicted, truth)]))
    return report


def family_accuracy(data_dir: Path, rows: list[dict], scores: np.ndarray, index_of: dict[str, int]) -> dict:
    """On the hard split: how often a caption picks its own scene among its family of three (chance 1/3).

    A family's captions hold the same words (``scenes.HARD_VARIANTS``), so a bag-of-words
    reader scores every member alike; the share per variant shows whether binding (which
    colour goes with which shape) or position is what the model misses. {} on other splits.
    """
    meta = {row["image"]: row for row in read_jsonl(data_dir / "scenes.jsonl")} \
        if (data_dir / "scenes.jsonl").exists() else {}
    members: dict[int, list[int]] = {}
    for name, row in meta.items():
        if "family" in row and name in index_of:
            members.setdefault(row["family"], []).append(index_of[name])
    hits: dict[str, list[bool]] = {}
    for r, row in enumerate(rows):
        info = meta.get(row["image"], {})
        family = members.get(info.get("family"), [])
        if len(family) < 2:
            continue
        best = family[int(np.argmax(scores[r, family]))]
        hits.setdefault(info["variant"], []).append(best == index_of[row["image"]])
    if not hits:
        return {}
    every = [hit for variant_hits in hits.values() for hit in variant_hits]
    return {"all": float(np.mean(every)), **{v: float(np.mean(h)) for v, h in sorted(hits.items())},
            "chance": 1 / 3}


def evaluate_clip_on_dataset(data_dir: str | Path, settings: Settings | None = None) -> dict:
    return evaluate_clip(ClipEncoder("clip", settings or Settings("toy")), data_dir)


def format_report(report: dict) -> str:
    lines = [f"{report['images']} images in {report['data_dir']}  (model: {report['model']})"]
    for lang in ("en", "zh"):
        for direction in ("text_to_image", "image_to_text"):
            key = f"{direction}_{lang}"
            if key in report:
                recalls = "  ".join(f"{k} {v:.3f}" for k, v in report[key].items())
                lines.append(f"  {direction.replace('_', ' '):<14} [{lang}]  {recalls}")
    for lang in ("en", "zh"):
        if f"family_{lang}" in report:
            family = report[f"family_{lang}"]
            lines.append(f"  own scene among its family of 3 [{lang}]  " + "  ".join(
                f"{k} {v:.3f}" for k, v in family.items()))
    for lang in ("en", "zh"):
        parts = [f"{a} {report[f'zero_shot_{a}_{lang}']:.3f}" for a in ("colour", "shape")
                 if f"zero_shot_{a}_{lang}" in report]
        if parts:
            lines.append(f"  zero-shot      [{lang}]  " + "  ".join(parts) +
                         f"  (on {report['zero_shot_images']} single-object images)")
    return "\n".join(lines)
