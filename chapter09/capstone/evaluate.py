"""Retrieval recall and caption metrics on the data set formats people already have.

Formats (detected from the path):

* a folder with ``captions.jsonl`` (rows: image, caption, [lang]) or ``captions.json``
  (a list of such rows, or {image: [captions]}), images relative to the folder;
* Chinese-CLIP / Flickr30k-CN / MUGE: a folder (or a split prefix) with
  ``*_imgs.tsv`` (image_id<TAB>base64 image) and ``*_texts.jsonl``
  ({"text_id", "text", "image_ids": [...]});
* COCO captions (``{"images": [{id, file_name}], "annotations": [{image_id, caption}]}``): the
  folder as published (``annotations/captions_val2017.json`` beside ``val2017/``; any
  ``captions_<split>.json``), or the JSON itself; the image folder is found by the split name
  (``val2017/`` next to ``annotations/``, or next to the JSON), else ``images/`` beside the JSON
  or its ``annotations/`` folder (an annotation tool's export), or given with ``--images``.

An image that a data set lists but that is not on disk is reported (``missing``, with a count
and the first few names), its captions are dropped, and the evaluation goes on with the rest.
An image that is on disk but cannot be decoded (corrupt, truncated, not an image, unreadable) is
reported the same way (``unreadable``, with the reason), found by a cheap decode while loading.
"""
from __future__ import annotations

import base64
import io
import json
import math
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..clip import clip_encoder
from ..errors import UsageError
from ..exercises.i18n import t
from ..images import BadImageError, as_rgb, load_image, to_rgb
from ..language import has_chinese
from ..lesson import Lesson
from ..models import ModelUnavailableError, Settings
from ..retrieval import recall_both_ways
from .caption.describe import caption_images, caption_route
from .search.queries import BY_NAME, auto_strategy, encode_texts


@dataclass
class PairedData:
    """Images (paths or PIL) and texts; ``text_images[t]`` = indices of the images text t describes."""

    name: str
    images: list
    texts: list[str]
    text_images: list[set[int]]
    text_langs: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # listed by the data set but not on disk (skipped)
    unreadable: dict[str, str] = field(default_factory=dict)  # on disk but not decodable: name -> why (skipped)

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


CHECK_SIDE = 32  # the decode that proves an image readable: JPEGs in draft mode at 1/8 scale, cheap


def _why_unreadable(path: Path) -> str | None:
    """None if ``path`` decodes, else the reason (the decoder's words, without the path)."""
    try:
        load_image(path, min_side=CHECK_SIDE)
    except BadImageError as error:
        return str(error).removeprefix(f"{path}: ")
    except OSError as error:  # vanished or unreadable between the listing and the read
        return f"cannot be read ({error.strerror or error})"
    return None


def _pairs(name, rows, resolve_image) -> PairedData:
    """Rows of (image key, caption, lang or None); images that are not files are left out as missing,
    files that do not decode as unreadable."""
    image_index: dict[str, int] = {}
    missing: dict[str, None] = {}
    unreadable: dict[str, str] = {}
    images, texts, owners, langs = [], [], [], []
    for image_key, caption, lang in rows:
        if image_key in missing or image_key in unreadable:
            continue
        if image_key not in image_index:
            image = resolve_image(image_key)
            if isinstance(image, Path) and not image.is_file():
                missing[image_key] = None
                continue
            why = _why_unreadable(image) if isinstance(image, Path) else None
            if why:
                unreadable[image_key] = why
                continue
            image_index[image_key] = len(images)
            images.append(image)
        texts.append(caption)
        owners.append({image_index[image_key]})
        langs.append(lang or ("zh" if has_chinese(caption) else "en"))
    data = PairedData(name, images, texts, owners, langs, list(image_index), list(missing), unreadable)
    if not images and missing:
        first = next(iter(missing))
        also = f" ({len(unreadable)} more are on disk but unreadable)" if unreadable else ""
        raise UsageError(f"{name}: none of the {len(missing)} images it lists is on disk (the first, {first}, "
                         f"would be {resolve_image(first)}){also}; pass the image folder with --images")
    if not images and unreadable:
        first, why = next(iter(unreadable.items()))
        raise UsageError(f"{name}: none of the {len(unreadable)} images it lists can be read (the first, "
                         f"{resolve_image(first)}: {why}); check that the files are images and readable")
    return data


def skipped_fields(data: PairedData, shown: int = 10) -> dict:
    """The report's account of what was skipped: missing and unreadable images, counted, the first few named."""
    return {"missing": len(data.missing), "missing_examples": data.missing[:shown],
            "unreadable": len(data.unreadable),
            "unreadable_examples": [f"{k} ({why})" for k, why in list(data.unreadable.items())[:shown]]}


def missing_note(data: PairedData, shown: int = 3) -> str:
    """'' or one line each: how many listed images are missing or unreadable, and the first few."""
    lines = []
    if data.missing:
        more = f" and {len(data.missing) - shown} more" if len(data.missing) > shown else ""
        lines.append(f"{len(data.missing)} listed image(s) missing, skipped with their captions: "
                     f"{', '.join(data.missing[:shown])}{more}")
    if data.unreadable:
        named = [f"{k} ({why})" for k, why in list(data.unreadable.items())[:shown]]
        more = f" and {len(data.unreadable) - shown} more" if len(data.unreadable) > shown else ""
        lines.append(f"{len(data.unreadable)} listed image(s) unreadable, skipped with their captions: "
                     f"{', '.join(named)}{more}")
    return "\n".join(lines)


LOOKED_FOR = ("captions.jsonl (rows: image, caption, [lang])",
              "captions.json (a list of rows, {image: [captions]}, or COCO)",
              "COCO as published: annotations/captions_<split>.json (or captions_<split>.json) "
              "with the images in <split>/ (e.g. captions_val2017.json + val2017/)",
              "Chinese-CLIP / Flickr30k-CN / MUGE: <split>_texts.jsonl + <split>_imgs.tsv")


def find_coco(folder: Path, split: str | None = None) -> Path | None:
    """The ``captions_<split>.json`` in ``folder/annotations`` or ``folder``; None when there is none.

    Several splits (captions_train2017.json, captions_val2017.json): ``split`` picks one
    (``val2017`` or just ``val``); without it the single validation split is taken.
    """
    found = sorted(folder.glob("annotations/captions_*.json")) + sorted(folder.glob("captions_*.json"))
    if split:
        found = [p for p in found if split in p.stem[len("captions_"):]]
    if len(found) > 1:
        val = [p for p in found if "val" in p.stem]
        if len(val) == 1:
            return val[0]
        raise UsageError(f"{folder}: several COCO caption files ({', '.join(p.name for p in found)}); "
                         "choose one with --split (e.g. --split val2017)")
    return found[0] if found else None


def coco_image_folder(json_path: Path, file_names: list[str]) -> Path:
    """Where a COCO JSON's images are: ``<split>/`` beside ``annotations/`` or beside the JSON, or
    ``images/`` beside the JSON or beside its ``annotations/`` folder (as annotation tools export it).

    The first candidate folder that holds any of the first listed files wins; if none does,
    the split folder (or the JSON's folder), so every image is then reported missing.
    """
    split = json_path.stem[len("captions_"):] if json_path.stem.startswith("captions_") else None
    parent = json_path.parent
    candidates = []
    if split:
        candidates += [parent.parent / split, parent / split, parent.parent / "images" / split, parent / "images" / split]
    candidates += [parent, parent / "images", parent.parent / "images", parent.parent]
    probe = file_names[:20]
    for folder in candidates:
        if folder.is_dir() and any((folder / name).is_file() for name in probe):
            return folder
    return next((c for c in candidates[:2] if c.is_dir()), parent)


def load_dataset(path: str | Path, images_dir: str | Path | None = None, split: str | None = None) -> PairedData:
    """Read a data set in any format of the module docstring, detected from ``path``."""
    try:
        return _read_dataset(Path(path), images_dir, split)
    except (UsageError, OSError):
        raise
    except (ValueError, KeyError, TypeError) as error:  # malformed JSON, a row without "image" or "caption", ...
        raise UsageError(f"{path}: not readable as a data set ({type(error).__name__}: {error}); it reads\n  - "
                         + "\n  - ".join(LOOKED_FOR)) from error


def _read_dataset(path: Path, images_dir, split) -> PairedData:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
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
        coco = find_coco(path, split)
        if coco is not None:
            return load_coco(coco, images_dir)
        texts = sorted(path.glob(f"{split or '*'}_texts.jsonl"))
        if texts:
            return load_chinese_clip_tsv(texts[0])
        raise UsageError(f"{path}: no data set found; looked for\n  - " + "\n  - ".join(LOOKED_FOR))
    if path.name.endswith("_texts.jsonl"):
        return load_chinese_clip_tsv(path)
    if path.suffix == ".json":
        return load_coco(path, images_dir)
    raise UsageError(f"{path}: not a data set format the capstone reads; it reads\n  - " + "\n  - ".join(LOOKED_FOR))


def load_chinese_clip_tsv(texts_path: Path) -> PairedData:
    """Chinese-CLIP's format: {split}_imgs.tsv (id, base64) + {split}_texts.jsonl."""
    split = texts_path.name[: -len("_texts.jsonl")]
    images_path = texts_path.with_name(f"{split}_imgs.tsv")
    if not images_path.exists():
        raise FileNotFoundError(f"{images_path} is missing (it holds image_id<TAB>base64 lines)")
    images, ids, unreadable = [], {}, {}
    for line in images_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        image_id, encoded = line.split("\t", 1)
        try:
            with Image.open(io.BytesIO(base64.urlsafe_b64decode(encoded.strip()))) as image:
                image.load()
                image = to_rgb(image)
        except (OSError, SyntaxError, ValueError) as error:  # bad base64, not an image, truncated
            unreadable[image_id] = f"corrupt or truncated image ({error})"
            continue
        ids[image_id] = len(images)
        images.append(image)
    texts, owners, absent = [], [], set()
    for line in texts_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            present = {ids[str(i)] for i in row["image_ids"] if str(i) in ids}
            absent.update(str(i) for i in row["image_ids"] if str(i) not in ids and str(i) not in unreadable)
            if present:
                texts.append(row["text"])
                owners.append(present)
    return PairedData(str(texts_path), images, texts, owners, image_ids=list(ids), missing=sorted(absent),
                      unreadable=unreadable)


def load_coco(json_path: Path, images_dir=None) -> PairedData:
    json_path = Path(json_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise UsageError(f"{json_path}: not a COCO captions file (needs \"images\" and \"annotations\")")
    files = {image["id"]: image["file_name"] for image in data["images"]}
    folder = Path(images_dir) if images_dir else coco_image_folder(json_path, list(files.values()))
    rows = [(files[a["image_id"]], a["caption"].strip(), None) for a in data["annotations"] if a["image_id"] in files]
    return _pairs(str(json_path), rows, lambda k: folder / k)


# ----------------------------------------------------------------------------- retrieval recall
def retrieval_recall(image_vectors: np.ndarray, text_vectors: np.ndarray, text_images: list[set[int]],
                     ks=(1, 5, 10)) -> dict:
    return recall_both_ways(text_vectors, image_vectors, text_images, ks)


def evaluate_retrieval(data: PairedData, strategy: str = "auto", settings: Settings | None = None,
                       batch_size: int = 64, image_vectors: dict | None = None) -> dict:
    """Recall@1/5/10 both directions, per language, with the strategy's encoders.

    ``image_vectors`` (role -> array) lets several strategies share one encoding of the images.
    """
    report = {"dataset": data.name, "images": len(data.images), "texts": len(data.texts),
              **skipped_fields(data), "languages": {}}
    image_vectors = {} if image_vectors is None else image_vectors
    for lang in sorted(set(data.text_langs)):
        rows = [t for t, l in enumerate(data.text_langs) if l == lang]
        texts = [data.texts[t] for t in rows]
        used = strategy if strategy != "auto" else auto_strategy(lang)
        role = BY_NAME[used].role
        encoder = clip_encoder(role, settings)
        if role not in image_vectors:
            image_vectors[role] = encoder.encode_images(data.images, batch_size=batch_size)
        text_vectors, _role = encode_texts(texts, used, settings)
        recall = retrieval_recall(image_vectors[role], text_vectors, [data.text_images[t] for t in rows])
        report["languages"][lang] = {"strategy": used, "model": encoder.resolved.location,
                                     "toy": encoder.resolved.is_toy, **recall}
    return report


COMPARED_STRATEGIES = tuple(BY_NAME)  # every strategy, in the order the report lists them


def compare_strategies(data: PairedData, strategies="all", settings: Settings | None = None) -> dict:
    """Every query strategy on the same data set; a strategy whose model is missing is reported, not fatal."""

    names = COMPARED_STRATEGIES if strategies == "all" else [s.strip() for s in strategies.split(",") if s.strip()]
    report = {"dataset": data.name, "images": len(data.images), "texts": len(data.texts),
              **skipped_fields(data), "strategies": {}}
    image_vectors: dict = {}
    for name in names:
        started = time.perf_counter()
        try:
            result = evaluate_retrieval(data, name, settings, image_vectors=image_vectors)
        except (ModelUnavailableError, OSError) as error:
            report["strategies"][name] = {"error": str(error)}
            continue
        report["strategies"][name] = {"seconds": round(time.perf_counter() - started, 1), **result["languages"]}
    return report


def _heading(report: dict, what: str, lang: str | None = None) -> str:
    line = t(f"{report['dataset']}: {report['images']} images, {what}",
             f"{report['dataset']}：{report['images']} 张图片，{what}", lang)
    for kind, en, zh in (("missing", "MISSING: {n} listed image(s) not found, skipped with their captions",
                          "缺失：列出的 {n} 张图片找不到，已连同其描述跳过"),
                         ("unreadable", "UNREADABLE: {n} listed image(s) could not be decoded, skipped with their "
                          "captions", "无法读取：列出的 {n} 张图片无法解码，已连同其描述跳过")):
        if report.get(kind):
            shown = report.get(f"{kind}_examples", [])[:3]
            hidden = report[kind] - len(shown)
            more = t(f" and {hidden} more", f" 等，另有 {hidden} 张", lang) if hidden > 0 else ""
            line += "\n  " + t(en, zh, lang).format(n=report[kind]) + t(": ", "：", lang) + ", ".join(shown) + more
    return line


def format_comparison(report: dict, lang: str | None = None) -> str:
    """Every strategy's recall both ways, one line per (strategy, language); ``lang``: the words' language (None:
    ``$CH09_LANG``, else English)."""
    def cell(en: str, zh: str, width: int, align=Lesson.rjust) -> str:
        return align(t(en, zh, lang), width)

    lines = [_heading(report, t(f"{report['texts']} texts", f"{report['texts']} 条文本", lang), lang),
             f"  {cell('strategy', '策略', 13, Lesson.ljust)} {cell('lang', '语言', 4, Lesson.ljust)} "
             f"{cell('text->image R@1', '文本->图像 R@1', 15)} {'R@5':>6} {'R@10':>6} | "
             f"{cell('image->text R@1', '图像->文本 R@1', 15)} {'R@5':>6} {'R@10':>6}"]
    for name, result in report["strategies"].items():
        if "error" in result:
            lines.append(f"  {name:<13} {t('unavailable', '不可用', lang)}{t(': ', '：', lang)}{result['error'][:120]}")
            continue
        for code in ("zh", "en"):
            if code in result:
                t2i, i2t = result[code]["text_to_image"], result[code]["image_to_text"]
                lines.append(f"  {name:<13} {code:<4} {t2i['R@1']:>15.3f} {t2i['R@5']:>6.3f} {t2i['R@10']:>6.3f} | "
                             f"{i2t['R@1']:>15.3f} {i2t['R@5']:>6.3f} {i2t['R@10']:>6.3f}")
    return "\n".join(lines)


def format_retrieval(report: dict, lang: str | None = None) -> str:
    lines = [_heading(report, t(f"{report['texts']} texts", f"{report['texts']} 条文本", lang), lang)]
    for code, r in report["languages"].items():
        t2i, i2t = r["text_to_image"], r["image_to_text"]
        lines.append(t(f"  [{code}] strategy {r['strategy']:<12} text->image R@1 {t2i['R@1']:.3f} R@5 {t2i['R@5']:.3f} "
                       f"R@10 {t2i['R@10']:.3f} | image->text R@1 {i2t['R@1']:.3f} R@5 {i2t['R@5']:.3f} "
                       f"R@10 {i2t['R@10']:.3f}  ({r['queries']} queries)",
                       f"  [{code}] 策略 {r['strategy']:<12} 文本->图像 R@1 {t2i['R@1']:.3f} R@5 {t2i['R@5']:.3f} "
                       f"R@10 {t2i['R@10']:.3f} | 图像->文本 R@1 {i2t['R@1']:.3f} R@5 {i2t['R@5']:.3f} "
                       f"R@10 {i2t['R@10']:.3f}  （{r['queries']} 个查询）", lang))
    return "\n".join(lines)


def format_captions(report: dict, lang: str | None = None) -> str:
    route = report.get("route", "-")
    return "\n".join([_heading(report, t(f"captioned by route {route}", f"描述路线 {route}", lang), lang)] + [
        t(f"  [{code}] BLEU-4 {r['BLEU-4']:.2f}  CIDEr-D {r['CIDEr-D']:.3f}  ({r['images']} images)",
          f"  [{code}] BLEU-4 {r['BLEU-4']:.2f}  CIDEr-D {r['CIDEr-D']:.3f}  （{r['images']} 张图片）", lang)
        for code, r in report["languages"].items()])


# ----------------------------------------------------------------------------- caption metrics
def bleu4(hypotheses: list[str], references: list[list[str]], lang: str) -> float:
    """Corpus BLEU-4 (sacrebleu; Chinese is tokenised per character, as in the WMT zh tracks)."""
    import sacrebleu  # heavy: sacrebleu

    n_refs = max(len(r) for r in references)
    padded = [[refs[i] if i < len(refs) else refs[0] for refs in references] for i in range(n_refs)]
    return sacrebleu.corpus_bleu(hypotheses, padded, tokenize="zh" if lang == "zh" else "13a").score


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


_PUNCTUATION = re.compile(r"[,:;!?\"()\[\]{}“”‘’`]|(?<!\d)\.|\.(?!\d)|--+|(?<!\w)-|-(?!\w)|(?<!\w)'|'(?!\w)")
_CLITICS = re.compile(r"(?<=\w)(n't|'s|'re|'ll|'ve|'m|'d)\b")


def tokens_for_metrics(text: str, lang: str) -> list[str]:
    """The tokens caption metrics compare, as the COCO caption toolkit makes them.

    English follows pycocoevalcap's PTBTokenizer (Stanford's, which needs Java): lower case,
    clitics split off ("don't" -> "do n't", "man's" -> "man 's"), punctuation tokens dropped,
    hyphenated words kept whole. Chinese is one token per character, punctuation dropped
    (as the WMT zh tracks tokenise BLEU).
    """
    text = text.lower().strip()
    if lang == "zh":
        return [c for c in text if not c.isspace() and not unicodedata.category(c).startswith("P")]
    return _CLITICS.sub(r" \1", _PUNCTUATION.sub(" ", text)).split()


def cider_d(hypotheses: list[str], references: list[list[str]], lang: str, sigma: float = 6.0) -> float:
    """CIDEr-D (Vedantam et al. 2015), corpus score: the mean over images of the tf-idf n-gram
    cosine (n = 1..4, idf from the references of all images), with hypothesis counts clipped
    to the reference's and a Gaussian length penalty (sigma 6), averaged over references, x10.

    It is pycocoevalcap's ``Cider`` (which is CIDEr-D, despite the name) on the tokens of
    :func:`tokens_for_metrics`; ``tests/test_capstone_formats.py`` checks the two agree to 1e-9
    on toy and hand-written captions, English and per-character Chinese. Written out here to
    be read; :func:`cider_d_reference` calls pycocoevalcap itself.
    """
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


def cider_d_reference(hypotheses: list[str], references: list[list[str]], lang: str) -> float:
    """pycocoevalcap's CIDEr-D on the same tokens (its PTB tokenizer is skipped: it needs Java)."""
    from pycocoevalcap.cider.cider import Cider  # heavy: pycocoevalcap

    gts = {i: [" ".join(tokens_for_metrics(r, lang)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(tokens_for_metrics(h, lang))] for i, h in enumerate(hypotheses)}
    return float(Cider().compute_score(gts, res)[0])


def evaluate_captions(data: PairedData, langs=("en", "zh"), settings: Settings | None = None,
                      limit: int | None = 200) -> dict:
    """BLEU-4 and CIDEr-D per language, captions made by the same route as `caption` (direct or caption+translate)."""
    refs = data.references()
    chosen = sorted(refs)[:limit] if limit else sorted(refs)
    langs = [lang for lang in langs if any(lang in refs[i] for i in chosen)]
    report = {"dataset": data.name, "images": len(chosen), **skipped_fields(data), "languages": {}}
    if not langs:
        return report
    images = [as_rgb(data.images[i]) for i in chosen]
    captions = dict(zip(chosen, caption_images(images, langs, settings)))  # English made once
    report["route"] = caption_route(settings)
    for lang in langs:
        ids = [i for i in chosen if lang in refs[i]]
        hypotheses = [captions[i][lang] for i in ids]
        references = [refs[i][lang] for i in ids]
        report["languages"][lang] = {"BLEU-4": round(bleu4(hypotheses, references, lang), 2),
                                     "CIDEr-D": round(cider_d(hypotheses, references, lang), 3),
                                     "images": len(ids), "example": {"caption": hypotheses[0],
                                                                     "reference": references[0][0]}}
    return report
