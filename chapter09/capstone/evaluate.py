"""Retrieval recall and caption metrics on the data set formats people already have.

Formats (detected from the path):

* a folder with ``captions.jsonl`` (rows: image, caption, [lang]) or ``captions.json``
  (a list of such rows, or {image: [captions]}), images relative to the folder;
* Chinese-CLIP / Flickr30k-CN / MUGE: a folder (or a split prefix) with
  ``*_imgs.tsv`` (image_id<TAB>base64 image) and ``*_texts.jsonl``
  ({"text_id", "text", "image_ids": [...]});
* COCO captions JSON (``{"images": [{id, file_name}], "annotations": [{image_id, caption}]}``),
  images next to the JSON or in ``--images``.
"""
from __future__ import annotations

import base64
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..images import to_rgb
from .encoders import has_chinese


@dataclass
class PairedData:
    """Images (paths or PIL) and texts; ``text_images[t]`` = indices of the images text t describes."""

    name: str
    images: list
    texts: list[str]
    text_images: list[set[int]]
    text_langs: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.text_langs:
            self.text_langs = ["zh" if has_chinese(t) else "en" for t in self.texts]

    def references(self) -> dict[int, dict[str, list[str]]]:
        """image index -> lang -> its captions (for caption metrics)."""
        refs: dict[int, dict[str, list[str]]] = {}
        for text, lang, owners in zip(self.texts, self.text_langs, self.text_images):
            for i in owners:
                refs.setdefault(i, {}).setdefault(lang, []).append(text)
        return refs


def _pairs(name, rows, resolve_image) -> PairedData:
    image_index: dict[str, int] = {}
    images, texts, owners, langs = [], [], [], []
    for image_key, caption, lang in rows:
        if image_key not in image_index:
            image_index[image_key] = len(images)
            images.append(resolve_image(image_key))
        texts.append(caption)
        owners.append({image_index[image_key]})
        langs.append(lang or ("zh" if has_chinese(caption) else "en"))
    return PairedData(name, images, texts, owners, langs, list(image_index))


def load_dataset(path: str | Path, images_dir: str | Path | None = None, split: str | None = None) -> PairedData:
    path = Path(path)
    if path.is_dir():
        if (path / "captions.jsonl").exists():
            rows = [json.loads(line) for line in (path / "captions.jsonl").read_text(encoding="utf-8").splitlines()
                    if line.strip()]
            return _pairs(str(path), [(r["image"], r["caption"], r.get("lang")) for r in rows], lambda k: path / k)
        if (path / "captions.json").exists():
            data = json.loads((path / "captions.json").read_text(encoding="utf-8"))
            if isinstance(data, dict) and "annotations" in data:
                return load_coco(path / "captions.json", images_dir)
            rows = ([(image, c, None) for image, caps in data.items() for c in caps] if isinstance(data, dict)
                    else [(r["image"], r["caption"], r.get("lang")) for r in data])
            return _pairs(str(path), rows, lambda k: path / k)
        texts = sorted(path.glob(f"{split or '*'}_texts.jsonl"))
        if texts:
            return load_chinese_clip_tsv(texts[0])
        raise ValueError(f"{path}: no captions.jsonl, captions.json or *_texts.jsonl + *_imgs.tsv found")
    if path.name.endswith("_texts.jsonl"):
        return load_chinese_clip_tsv(path)
    if path.suffix == ".json":
        return load_coco(path, images_dir)
    raise ValueError(f"{path}: not a data set format the capstone reads (see `eval --help`)")


def load_chinese_clip_tsv(texts_path: Path) -> PairedData:
    """Chinese-CLIP's format: {split}_imgs.tsv (id, base64) + {split}_texts.jsonl."""
    split = texts_path.name[: -len("_texts.jsonl")]
    images_path = texts_path.with_name(f"{split}_imgs.tsv")
    if not images_path.exists():
        raise FileNotFoundError(f"{images_path} is missing (it holds image_id<TAB>base64 lines)")
    images, ids = [], {}
    for line in images_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        image_id, encoded = line.split("\t", 1)
        ids[image_id] = len(images)
        images.append(to_rgb(Image.open(io.BytesIO(base64.urlsafe_b64decode(encoded.strip())))))
    texts, owners = [], []
    for line in texts_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(row["text"])
            owners.append({ids[str(i)] for i in row["image_ids"] if str(i) in ids})
    return PairedData(str(texts_path), images, texts, owners, image_ids=list(ids))


def load_coco(json_path: Path, images_dir=None) -> PairedData:
    data = json.loads(Path(json_path).read_text(encoding="utf-8"))
    folder = Path(images_dir) if images_dir else Path(json_path).parent
    files = {image["id"]: image["file_name"] for image in data["images"]}
    rows = [(files[a["image_id"]], a["caption"], None) for a in data["annotations"] if a["image_id"] in files]
    return _pairs(str(json_path), rows, lambda k: folder / k)


# ----------------------------------------------------------------------------- retrieval recall
def retrieval_recall(image_vectors: np.ndarray, text_vectors: np.ndarray, text_images: list[set[int]],
                     ks=(1, 5, 10)) -> dict:
    from ..clip_utils import recall_at_k

    scores = text_vectors @ image_vectors.T
    text_to_image = recall_at_k(scores, text_images, ks)
    image_texts = [set() for _ in range(len(image_vectors))]
    for t, owners in enumerate(text_images):
        for i in owners:
            image_texts[i].add(t)
    keep = [i for i, texts in enumerate(image_texts) if texts]
    image_to_text = recall_at_k(scores.T[keep], [image_texts[i] for i in keep], ks)
    return {"text_to_image": text_to_image, "image_to_text": image_to_text, "queries": len(text_vectors)}


def evaluate_retrieval(data: PairedData, strategy: str = "auto", models=None, device=None, dtype=None,
                       batch_size: int = 64, image_vectors: dict | None = None) -> dict:
    """Recall@1/5/10 both directions, per language, with the strategy's encoders.

    ``image_vectors`` (role -> array) lets several strategies share one encoding of the images.
    """
    from .encoders import clip_encoder, multilingual_encoder, translator

    report = {"dataset": data.name, "images": len(data.images), "texts": len(data.texts), "languages": {}}
    image_vectors = {} if image_vectors is None else image_vectors
    for lang in sorted(set(data.text_langs)):
        rows = [t for t, l in enumerate(data.text_langs) if l == lang]
        texts = [data.texts[t] for t in rows]
        used = strategy if strategy != "auto" else ("clip" if lang == "en" or clip_encoder(
            "clip", models).resolved.is_toy else "translate")
        role = "chinese_clip" if used == "chinese_clip" else "clip"
        encoder = clip_encoder(role, models, device, dtype)
        if role not in image_vectors:
            image_vectors[role] = encoder.encode_images(data.images, batch_size=batch_size)
        if used == "multilingual":
            text_vectors = multilingual_encoder(models, device).encode(texts, convert_to_numpy=True)
            text_vectors = text_vectors / np.linalg.norm(text_vectors, axis=1, keepdims=True).clip(1e-12)
        else:
            if used == "translate" and lang == "zh":
                texts = translator("zh_en", models, device).translate(texts)
            text_vectors = encoder.encode_texts(texts)
        recall = retrieval_recall(image_vectors[role], text_vectors, [data.text_images[t] for t in rows])
        report["languages"][lang] = {"strategy": used, "model": encoder.resolved.location,
                                     "toy": encoder.resolved.is_toy, **recall}
    return report


COMPARED_STRATEGIES = ("clip", "translate", "multilingual", "chinese_clip")


def compare_strategies(data: PairedData, strategies="all", models=None, device=None, dtype=None) -> dict:
    """Every query strategy on the same data set; a strategy whose model is missing is reported, not fatal."""
    import time

    from ..models import ModelUnavailableError

    names = COMPARED_STRATEGIES if strategies == "all" else [s.strip() for s in strategies.split(",") if s.strip()]
    report = {"dataset": data.name, "images": len(data.images), "texts": len(data.texts), "strategies": {}}
    image_vectors: dict = {}
    for name in names:
        started = time.perf_counter()
        try:
            result = evaluate_retrieval(data, name, models, device, dtype, image_vectors=image_vectors)
        except (ModelUnavailableError, OSError) as error:
            report["strategies"][name] = {"error": str(error)}
            continue
        report["strategies"][name] = {"seconds": round(time.perf_counter() - started, 1), **result["languages"]}
    return report


def format_comparison(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['images']} images, {report['texts']} texts",
             f"  {'strategy':<13} {'lang':<4} {'text->image R@1':>15} {'R@5':>6} {'R@10':>6} | "
             f"{'image->text R@1':>15} {'R@5':>6} {'R@10':>6}"]
    for name, result in report["strategies"].items():
        if "error" in result:
            lines.append(f"  {name:<13} unavailable: {result['error'][:120]}")
            continue
        for lang in ("zh", "en"):
            if lang in result:
                t2i, i2t = result[lang]["text_to_image"], result[lang]["image_to_text"]
                lines.append(f"  {name:<13} {lang:<4} {t2i['R@1']:>15.3f} {t2i['R@5']:>6.3f} {t2i['R@10']:>6.3f} | "
                             f"{i2t['R@1']:>15.3f} {i2t['R@5']:>6.3f} {i2t['R@10']:>6.3f}")
    return "\n".join(lines)


def format_retrieval(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['images']} images, {report['texts']} texts"]
    for lang, r in report["languages"].items():
        t2i, i2t = r["text_to_image"], r["image_to_text"]
        lines.append(f"  [{lang}] strategy {r['strategy']:<12} text->image R@1 {t2i['R@1']:.3f} R@5 {t2i['R@5']:.3f} "
                     f"R@10 {t2i['R@10']:.3f} | image->text R@1 {i2t['R@1']:.3f} R@5 {i2t['R@5']:.3f} "
                     f"R@10 {i2t['R@10']:.3f}  ({r['queries']} queries)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- caption metrics
def bleu4(hypotheses: list[str], references: list[list[str]], lang: str) -> float:
    """Corpus BLEU-4 (sacrebleu; Chinese is tokenised per character, as in the WMT zh tracks)."""
    import sacrebleu

    n_refs = max(len(r) for r in references)
    padded = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(n_refs)]
    return sacrebleu.corpus_bleu(hypotheses, padded, tokenize="zh" if lang == "zh" else "13a").score


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def tokens_for_metrics(text: str, lang: str) -> list[str]:
    text = text.lower().strip().rstrip("。.")
    if lang == "zh":
        return [c for c in text if not c.isspace() and c not in "，。、：,.:"]
    return text.replace(",", " ").replace(":", " ").split()


def cider_d(hypotheses: list[str], references: list[list[str]], lang: str, sigma: float = 6.0) -> float:
    """CIDEr-D (Vedantam et al. 2015): tf-idf n-gram cosine (n=1..4), length penalty, clipping, x10."""
    refs_tokens = [[tokens_for_metrics(r, lang) for r in refs] for refs in references]
    hyp_tokens = [tokens_for_metrics(h, lang) for h in hypotheses]
    n_images = len(references)
    scores = np.zeros(len(hypotheses))
    for n in range(1, 5):
        document_frequency = Counter()
        for refs in refs_tokens:
            document_frequency.update(set().union(*[set(_ngrams(r, n)) for r in refs]))

        def vector(counts: Counter):
            return {g: c * math.log(max(1.0, n_images) / max(1.0, document_frequency[g])) for g, c in counts.items()}

        for i, (hyp, refs) in enumerate(zip(hyp_tokens, refs_tokens)):
            hyp_counts = _ngrams(hyp, n)
            vh = vector(hyp_counts)
            norm_h = math.sqrt(sum(v * v for v in vh.values()))
            total = 0.0
            for ref in refs:
                ref_counts = _ngrams(ref, n)
                vr = vector(ref_counts)
                norm_r = math.sqrt(sum(v * v for v in vr.values()))
                dot = sum(min(vh[g], vr[g]) * vr[g] for g in vh if g in vr)  # clipped, as CIDEr-D
                if norm_h and norm_r:
                    total += dot / (norm_h * norm_r) * math.exp(-((len(hyp) - len(ref)) ** 2) / (2 * sigma ** 2))
            scores[i] += total / len(refs) / 4
    return float(np.mean(scores) * 10)


def evaluate_captions(data: PairedData, langs=("en", "zh"), models=None, device=None, dtype=None,
                      limit: int | None = 200) -> dict:
    """BLEU-4 and CIDEr-D per language, captions made by the same route as `caption` (direct or caption+translate)."""
    from .describe import caption_images, caption_route

    refs = data.references()
    chosen = sorted(refs)[:limit] if limit else sorted(refs)
    langs = [lang for lang in langs if any(lang in refs[i] for i in chosen)]
    report = {"dataset": data.name, "images": len(chosen), "languages": {}}
    if not langs:
        return report
    images = [to_rgb(data.images[i]) if hasattr(data.images[i], "mode") else Image.open(data.images[i]).convert("RGB")
              for i in chosen]
    captions = dict(zip(chosen, caption_images(images, langs, models, device, dtype)))  # English made once
    report["route"] = caption_route(models, device, dtype)
    for lang in langs:
        ids = [i for i in chosen if lang in refs[i]]
        hypotheses = [captions[i][lang] for i in ids]
        references = [refs[i][lang] for i in ids]
        report["languages"][lang] = {"BLEU-4": round(bleu4(hypotheses, references, lang), 2),
                                     "CIDEr-D": round(cider_d(hypotheses, references, lang), 3),
                                     "images": len(ids), "example": {"caption": hypotheses[0],
                                                                     "reference": references[0][0]}}
    return report
