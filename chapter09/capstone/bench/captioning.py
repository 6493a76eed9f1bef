"""The captioning part of ``bench`` (issue 22): captions/s of the real architectures, measured side by side.

Models: ``BlipForConditionalGeneration(BlipConfig())`` (Salesforce/blip-image-captioning-base's architecture,
384 px, ~224 M parameters) and ``VisionEncoderDecoderModel`` of ``ViTModel(ViTConfig())`` + GPT-2
(nlpconnect/vit-gpt2-image-captioning's architecture, 224 px), with random weights: speed does not depend on
weight values, and the hub is not reachable here. Greedy decoding is forced to ``tokens`` new tokens
(``min_new_tokens = max_new_tokens``) so every run decodes the same length. Their tokenizers are stand-ins (the
real vocabularies do not ship offline); a tokenizer only turns ids into text, a negligible share of the time.

Rows, per captioner and per precision this CPU runs (``precision.unavailable_reason``, as ``caption --precision
auto`` asks it), each naming where its image encoder ran (``image_encoder_runtime``: fp32 follows
``onnx_runtime.fp32_runtime``, so ``CH09_FP32_RUNTIME=torch`` gives torch's fp32 as the reference; int8 is always
ONNX Runtime's; bf16 torch's):

* model alone: ``Captioner.generate_ids`` on ready tensors, one call per batch size (a ceiling: no decoding);
* end to end: ``caption_index.caption_index`` (what ``caption --index`` runs) on a fresh copy of an index of
  photo-sized JPEGs at the end-to-end batch, with the decode workers ``caption --index`` starts here
  (``caption.run.decode_workers_for``: none where the captioner's threads fill the cores, as on 2 cores;
  ``decode_workers`` overrides); for each captioner's fastest precision also with the other setting (two workers
  if none, none if some: ``other``). ``end_to_end_over_model_only`` is the end-to-end rate over the model alone at
  the same batch and precision (the issue's target: >= 0.9);
* greedy agreement of each precision with fp32 on the model-alone batch (``caption_fidelity.compare``: token and
  exact-caption agreement). With random weights and random pixels this only shows whether a precision moves
  greedy argmaxes at all; the fidelity that picks ``auto`` is measured on real images by ``caption --index``;
* the caption+translate route (English captions, Chinese from the translator): one batch through
  ``caption_index`` with ``en,zh``, split into generate and translate seconds. The translator is opus-mt-en-zh's
  architecture (``MarianConfig``: 6+6 layers, 512-d, 65,001 tokens; random weights, ``tokens`` new tokens).

Every figure carries the load average around it; ratios are of rows measured in this run.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

from ... import config, cpu, translation
from ...caption_fidelity import compare
from ...captioning import CAPTION_PRECISIONS, Captioner
from ...clip import clip_encoder
from ...errors import UsageError
from ...models import ResolvedModel, Settings, quiet_loading
from ...precision import unavailable_reason
from ...translation import Translator
from ..caption.run import caption_index, decode_workers_for
from ..index.build import build_index
from .synthetic import PHOTO_SIZE, make_photos

CAPTIONERS = ("blip", "vit-gpt2")
ARCHITECTURES = {
    "blip": "BlipForConditionalGeneration(BlipConfig()): blip-image-captioning-base's architecture, 384 px",
    "vit-gpt2": "VisionEncoderDecoderModel(ViT-B/16 224 px + GPT-2 124M): vit-gpt2-image-captioning's architecture",
}
TRANSLATOR = "MarianMTModel, opus-mt-en-zh's architecture (6+6 layers, 512-d, 65,001 tokens)"
TARGETS = {"end_to_end_over_model_only": 0.9, "blip_fastest_over_fp32": 3.0}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stand_in_vocab() -> Path:
    """Chinese-CLIP's real WordPiece vocabulary (cn-clip's wheel) when installed, else the toy Chinese-CLIP twin's,
    which ships in this package: the tokenizer only turns ids into text, so either serves the timing."""
    spec = importlib.util.find_spec("cn_clip")
    if spec is not None and spec.origin:
        real = Path(spec.origin).parent / "clip" / "vocab.txt"
        if real.is_file():
            return real
    return config.TOY_MODELS_DIR / "chinese_clip" / "vocab.txt"


def _stand_in_tokenizer(folder: Path):
    """A BERT WordPiece tokenizer (``_stand_in_vocab``): unknown ids decode to [UNK] instead of failing, which
    random weights need."""
    from transformers import BertTokenizer  # heavy: transformers

    folder.mkdir(parents=True, exist_ok=True)
    # Marian's generate refuses token_type_ids, which BERT tokenizers return by default
    tokenizer = BertTokenizer(str(_stand_in_vocab()), model_input_names=["input_ids", "attention_mask"])
    tokenizer.save_pretrained(folder)
    return tokenizer


# ``tiny``: the same classes and code paths at a few layers and widths, for the tests (speed means nothing there)
_TINY_VISION = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def architecture_parts(name: str, folder: Path, seed: int = 0, tiny: bool = False):
    """(fp32 model with random weights, image processor, tokenizer) for captioner ``name``."""
    import torch  # heavy: torch, transformers
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        GPT2Config,
        GPT2LMHeadModel,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    tokenizer = _stand_in_tokenizer(folder / "tokenizer")
    torch.manual_seed(seed)
    with quiet_loading():
        if name == "blip":
            config = BlipConfig(vision_config={**_TINY_VISION, "image_size": 64, "patch_size": 16},
                                text_config={**_TINY_VISION, "encoder_hidden_size": 32},
                                projection_dim=32) if tiny else BlipConfig()
            # an explicit size: the processors' default SizeDict is not what Captioner reads sizes from
            size = {"height": 64, "width": 64} if tiny else {"height": 384, "width": 384}
            return BlipForConditionalGeneration(config).eval(), BlipImageProcessor(size=size), tokenizer
        if name == "vit-gpt2":
            vision = ViTConfig(**_TINY_VISION, image_size=64, patch_size=16) if tiny else ViTConfig()
            text = {"n_embd": 32, "n_layer": 1, "n_head": 2} if tiny else {}
            decoder = GPT2LMHeadModel(GPT2Config(add_cross_attention=True, is_decoder=True, **text))
            model = VisionEncoderDecoderModel(encoder=ViTModel(vision, add_pooling_layer=False), decoder=decoder)
            # GPT-2 starts, pads and ends with its one special token, as the published checkpoint does
            model.config.decoder_start_token_id = model.config.pad_token_id = model.config.eos_token_id = 50256
            model.generation_config.decoder_start_token_id = model.generation_config.pad_token_id = 50256
            model.generation_config.eos_token_id = 50256
            size = {"height": 64, "width": 64} if tiny else {"height": 224, "width": 224}
            return model.eval(), ViTImageProcessor(size=size), tokenizer
    raise ValueError(f"captioner must be one of {', '.join(CAPTIONERS)}, not {name!r}")


def at_precision(name: str, parts, precision: str, fp32_on: str | None = None):
    """A ``Captioner`` around a copy of the fp32 model at ``precision`` (every precision converts in place: bf16
    the weights, int8 and fp32 on ONNX Runtime the image encoder)."""
    model, processor, tokenizer = parts
    model = copy.deepcopy(model)
    return Captioner(Settings(mode="auto", device="cpu"), name=name, precision=precision,
                     parts=(model, processor, tokenizer), label=f"{name} architecture, random weights", fp32_on=fp32_on)


def random_translator(folder: Path, tokens: int, seed: int = 0, tiny: bool = False):
    """A ``Translator`` on opus-mt-en-zh's architecture with random weights, forced to ``tokens`` new tokens."""
    import torch  # heavy: torch, transformers
    from transformers import MarianConfig, MarianMTModel

    _stand_in_tokenizer(folder)
    torch.manual_seed(seed)
    with quiet_loading():
        width, layers = (32, 1) if tiny else (512, 6)
        model = MarianMTModel(MarianConfig(vocab_size=65001, d_model=width, encoder_layers=layers,
                                           decoder_layers=layers, encoder_attention_heads=2 if tiny else 8,
                                           decoder_attention_heads=2 if tiny else 8, encoder_ffn_dim=4 * width,
                                           decoder_ffn_dim=4 * width, max_position_embeddings=512,
                                           decoder_start_token_id=65000, pad_token_id=65000, eos_token_id=0))
        model.generation_config.min_new_tokens = tokens
        model.save_pretrained(folder)
    resolved = ResolvedModel("translator_en_zh", config.model_spec("translator_en_zh"), str(folder), "local-dir")
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # its "[models] ... from local-dir" line
        translator = Translator("en_zh", resolved=resolved)
    translator.max_new_tokens = tokens
    return translator


@contextlib.contextmanager
def _translating_with(translator):
    """``translation.translator("en_zh", ...)``, which ``caption_batch`` asks per batch, answers ``translator``."""
    real = translation.translator
    translation.translator = lambda direction, settings=None: translator if direction == "en_zh" else real(
        direction, settings)
    try:
        yield
    finally:
        translation.translator = real


def make_index(photos: Path, index_dir: Path) -> None:
    """An index of ``photos`` (the toy CLIP encodes them: ``caption --index`` needs indexed images, not CLIP's
    quality)."""
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # the toy banner: the captioners here are not toys
        build_index(photos, index_dir, {"clip": clip_encoder("clip", Settings("toy", device="cpu"))}, workers=0,
                    progress=False, build_ann=False)


def model_only(captioner, batch_size: int, tokens: int) -> dict:
    """Images/s of one ``generate_ids`` call on ``batch_size`` ready random tensors, and the ids it wrote."""
    import torch  # heavy: torch

    side = captioner.image_side
    pixels = torch.randn(batch_size, 3, side, side, generator=torch.Generator().manual_seed(batch_size))
    before = _load()
    started = time.perf_counter()
    ids = captioner.generate_ids(pixels, "en", max_new_tokens=tokens, min_new_tokens=tokens)
    seconds = time.perf_counter() - started
    return {"img_s": round(batch_size / seconds, 4), "seconds": round(seconds, 2), "load": [before, _load()],
            "_ids": ids}


def end_to_end(template: Path, work: Path, captioner, batch_size: int, tokens: int, workers: int,
               langs: str = "en", translator=None) -> dict:
    """``caption_index`` on a fresh copy of ``template`` with the ready ``captioner``: images/s from the first
    batch on (models already loaded), and where the time went."""
    index = work / f"index-{captioner.name}-{captioner.precision}-w{workers}-{langs.replace(',', '')}"
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(template, index)
    before = _load()
    started = time.perf_counter()
    with _translating_with(translator) if translator is not None else contextlib.nullcontext():
        summary = caption_index(index, langs, batch_size=batch_size, progress=False, model=captioner,
                                workers=workers, generation={"max_new_tokens": tokens, "min_new_tokens": tokens})
    seconds = time.perf_counter() - started
    shutil.rmtree(index, ignore_errors=True)
    if summary.failed or not summary.captioned:
        raise RuntimeError(f"caption --index failed in the bench: {summary.text()}")
    return {"img_s": summary.images_per_s, "seconds": round(seconds, 2), "captioned": summary.captioned,
            "workers": workers, "route": summary.route, "generate_s": summary.generate_s,
            "translate_s": summary.translate_s, "load": [before, _load()]}


def captioning_report(images: int = 8, batch_sizes=(1, 4), batch_size: int = 4, tokens: int = 20,
                      captioners=CAPTIONERS, work: Path | None = None, log=print, tiny: bool = False,
                      decode_workers: int | None = None) -> dict:
    """Build the photos, the index and the models, run every row (module docstring); the report as a dict.
    ``tiny``: shrunken architectures (tests of the report's structure only); ``decode_workers``: the decode workers
    of the end-to-end rows (None: as ``caption --index`` decides here; tests pass 0 to skip their start-up)."""
    unknown = sorted(set(captioners) - set(CAPTIONERS))
    if unknown:
        raise UsageError(f"--captioners: {', '.join(unknown)} unknown; use a comma list of {', '.join(CAPTIONERS)}")
    if images < 2 * batch_size:
        raise UsageError(f"images ({images}) must be at least twice batch_size ({batch_size}): with one batch, "
                         "decode workers have nothing to overlap: raise --caption-images or lower --caption-batch-size")
    sizes = sorted({*batch_sizes, batch_size})
    default = decode_workers is None
    decode_workers = decode_workers_for(images, batch_size) if default else decode_workers
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="ch09-bench-caption-")) if own_work else Path(work)
    started = time.time()
    report = {"cpu": cpu.describe(), "load_before": _load(), "images": images, "photo_size": "x".join(map(str, PHOTO_SIZE)),
              "tokens": tokens, "batch_sizes": sizes, "end_to_end_batch": batch_size, "captioners": {},
              "translator": TRANSLATOR, "tiny": tiny, "decode_workers": decode_workers,
              "decode_workers_as_caption_index": default}
    try:
        make_photos(work / "photos", images, seed=3)
        make_index(work / "photos", work / "template")
        translator = None  # made once, when the first caption+translate row needs it
        for name in captioners:
            parts = architecture_parts(name, work / name, tiny=tiny)
            row = {"architecture": ARCHITECTURES[name],
                   "parameters_m": round(sum(p.numel() for p in parts[0].parameters()) / 1e6, 1),
                   "precisions": {}, "skipped": {}}
            report["captioners"][name] = row
            _precision_rows(row, name, parts, work, sizes, batch_size, tokens, decode_workers, log)
            translator = _fastest_rows(row, name, parts, work, batch_size, tokens, decode_workers, translator, tiny, log)
            del parts
        report["ratios"] = _ratios(report)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = _load()
    report["seconds"] = round(time.time() - started, 1)
    return report


def _precision_rows(row: dict, name: str, parts, work: Path, sizes: list[int], batch_size: int, tokens: int,
                    decode_workers: int, log) -> None:
    """Each precision of captioner ``name``: the model alone per batch size, its greedy captions' agreement with
    fp32's, and ``caption --index`` end to end with decode workers (into ``row``)."""
    reference_ids, reference = None, None
    for precision in CAPTION_PRECISIONS:
        reason = unavailable_reason(precision, "cpu")
        if reason:
            row["skipped"][precision] = reason
            log(f"  {name} {precision}: not run ({reason})")
            continue
        captioner = at_precision(name, parts, precision)
        row["image_side"] = captioner.image_side
        captioner.generate_ids(_warm_pixels(captioner), "en", max_new_tokens=2)  # first-call set-up untimed
        measured = {"model_only": {}, "end_to_end": {}, "image_encoder_runtime": captioner.runtime}
        for size in sizes:
            measured["model_only"][str(size)] = model_only(captioner, size, tokens)
        ids = measured["model_only"][str(sizes[-1])]["_ids"]
        if precision == "fp32":
            reference_ids, reference = ids, captioner
            if captioner.runtime != "torch":  # torch's fp32 beside it, in this run: what the runtime buys
                on_torch = at_precision(name, parts, "fp32", fp32_on="torch")
                on_torch.generate_ids(_warm_pixels(on_torch), "en", max_new_tokens=2)
                measured["torch_encoder_model_only"] = {str(size): model_only(on_torch, size, tokens)["img_s"]
                                                        for size in sizes}
                del on_torch
        else:
            token, exact = compare(reference, [reference_ids], captioner, [ids])
            measured["agreement_with_fp32"] = {"token": round(token, 4), "exact": round(exact, 4),
                                               "images": sizes[-1]}
        for run in measured["model_only"].values():
            run.pop("_ids")
        measured["end_to_end"]["workers"] = end_to_end(work / "template", work, captioner, batch_size,
                                                       tokens, workers=decode_workers)
        ceiling = measured["model_only"][str(batch_size)]["img_s"]
        measured["end_to_end_over_model_only"] = round(measured["end_to_end"]["workers"]["img_s"] / ceiling, 3)
        row["precisions"][precision] = measured
        log(f"  {name} {precision} (image encoder on {captioner.runtime}): model alone " + ", ".join(
            f"b{s} {r['img_s']:.3f}" for s, r in measured["model_only"].items())
            + f" img/s; caption --index b{batch_size} {measured['end_to_end']['workers']['img_s']:.3f} img/s "
            f"({measured['end_to_end_over_model_only']:.2f} of the model alone); load {_load()}")
        if precision != "fp32":
            del captioner  # one copy of the weights at a time beside fp32


def _fastest_rows(row: dict, name: str, parts, work: Path, batch_size: int, tokens: int, decode_workers: int,
                  translator, tiny: bool, log):
    """The fastest precision of captioner ``name`` again: end to end with the other decode setting (two workers if
    the rows ran without, none if with), and captioning plus translating to Chinese (generate and translate time
    apart) (into ``row``); returns the translator (``None`` given: made here, once)."""
    fastest = max(row["precisions"], key=lambda p: row["precisions"][p]["model_only"][str(batch_size)]["img_s"])
    row["fastest"] = fastest
    captioner = at_precision(name, parts, fastest)
    rows = row["precisions"][fastest]["end_to_end"]
    rows["other"] = end_to_end(work / "template", work, captioner, batch_size, tokens, workers=0 if decode_workers else 2)
    row["workers_over_other"] = round(rows["workers"]["img_s"] / rows["other"]["img_s"], 3)
    fp32 = row["precisions"]["fp32"]
    best = row["precisions"][fastest]["model_only"][str(batch_size)]["img_s"]
    row["fastest_over_fp32"] = round(best / fp32["model_only"][str(batch_size)]["img_s"], 3)
    if "torch_encoder_model_only" in fp32:
        row["fastest_over_torch_fp32"] = round(best / fp32["torch_encoder_model_only"][str(batch_size)], 3)
    translator = translator or random_translator(work / "translator", tokens, tiny=tiny)
    split = end_to_end(work / "template", work, captioner, batch_size, tokens, workers=decode_workers, langs="en,zh",
                       translator=translator)
    split["precision"] = fastest
    split["translate_share"] = round(split["translate_s"] / max(split["generate_s"] + split["translate_s"],
                                                                1e-9), 3)
    row["caption_translate"] = split
    log(f"  {name} {fastest}: {rows['other']['workers']} decode workers {rows['other']['img_s']:.3f}"
        f" img/s; caption+translate generate {split['generate_s']:.1f} s, translate {split['translate_s']:.1f} s"
        f" ({split['translate_share']:.0%}); load {_load()}")
    return translator


def _warm_pixels(captioner):
    import torch  # heavy: torch

    return torch.zeros(1, 3, captioner.image_side, captioner.image_side)


def _ratios(report: dict) -> dict:
    rows, batch = report["captioners"], str(report["end_to_end_batch"])
    out = {}
    if "blip" in rows and "vit-gpt2" in rows:
        blip, vit = (rows[n]["precisions"][rows[n]["fastest"]] for n in ("blip", "vit-gpt2"))
        out["vit_gpt2_over_blip_end_to_end"] = round(vit["end_to_end"]["workers"]["img_s"]
                                                     / blip["end_to_end"]["workers"]["img_s"], 3)
        out["vit_gpt2_over_blip_fp32_model_only"] = round(
            rows["vit-gpt2"]["precisions"]["fp32"]["model_only"][batch]["img_s"]
            / rows["blip"]["precisions"]["fp32"]["model_only"][batch]["img_s"], 3)
    targets = {}
    for name, row in rows.items():
        for precision, measured in row["precisions"].items():
            value = measured["end_to_end_over_model_only"]
            targets[f"{name} {precision} end_to_end_over_model_only"] = {
                "value": value, "want": TARGETS["end_to_end_over_model_only"],
                "met": value >= TARGETS["end_to_end_over_model_only"]}
    if "blip" in rows:
        value = rows["blip"]["fastest_over_fp32"]
        targets["blip fastest_over_fp32"] = {"value": value, "want": TARGETS["blip_fastest_over_fp32"],
                                             "met": value >= TARGETS["blip_fastest_over_fp32"],
                                             "batch": report["end_to_end_batch"]}
        if "fastest_over_torch_fp32" in rows["blip"]:  # the reference the issue was written against
            value = rows["blip"]["fastest_over_torch_fp32"]
            targets["blip fastest_over_torch_fp32"] = {"value": value, "want": TARGETS["blip_fastest_over_fp32"],
                                                       "met": value >= TARGETS["blip_fastest_over_fp32"],
                                                       "batch": report["end_to_end_batch"]}
    out["targets"] = targets
    return out


def format_captioning(report: dict) -> str:
    batch = report["end_to_end_batch"]
    sizes = ", ".join(f"b{s}" for s in report["batch_sizes"])
    lines = [f"captioning on {report['cpu']}: {report['images']} JPEGs {report['photo_size']}, {report['tokens']} new "
             f"tokens forced, random weights; load {report['load_before']} -> {report['load_after']}",
             f"  {'captioner':<9} {'prec':<5} {'encoder on':<11} {'model alone img/s (' + sizes + ')':<34} "
             f"{'caption --index b' + str(batch):>18} {'/ceiling':>8} {'agree tok/exact':>16}"]
    for name, row in report["captioners"].items():
        for precision, m in row["precisions"].items():
            alone = ", ".join(f"{r['img_s']:.3f}" for r in m["model_only"].values())
            agree = m.get("agreement_with_fp32")
            agree = f"{agree['token']:.3f}/{agree['exact']:.3f}" if agree else "reference"
            lines.append(f"  {name:<9} {precision:<5} {m['image_encoder_runtime']:<11} {alone:<34} "
                         f"{m['end_to_end']['workers']['img_s']:>18.3f} "
                         f"{m['end_to_end_over_model_only']:>8.2f} {agree:>16}")
        torch_fp32 = row["precisions"].get("fp32", {}).get("torch_encoder_model_only")
        if torch_fp32:
            lines.append(f"  {name:<9} {'fp32':<5} {'torch':<11} {', '.join(f'{v:.3f}' for v in torch_fp32.values()):<34} "
                         f"{'(model alone only)':>18}")
        for precision, reason in row["skipped"].items():
            lines.append(f"  {name:<9} {precision:<5} not run: {reason}")
        fast = row["precisions"][row["fastest"]]["end_to_end"]
        split = row["caption_translate"]
        lines.append(f"  {name:<9} {row['fastest']}: {fast['workers']['workers']} decode workers "
                     f"{fast['workers']['img_s']:.3f} img/s, {fast['other']['workers']}: {fast['other']['img_s']:.3f} "
                     f"({row['workers_over_other']:.2f}x); fastest over fp32 "
                     f"(model alone b{batch}) {row['fastest_over_fp32']:.2f}x"
                     + (f" ({row['fastest_over_torch_fp32']:.2f}x torch's)" if "fastest_over_torch_fp32" in row else "")
                     + "; caption+translate: generate "
                     f"{split['generate_s']:.1f} s, translate {split['translate_s']:.1f} s "
                     f"(translator {split['translate_share']:.0%} of the model time)")
    ratios = report.get("ratios", {})
    if "vit_gpt2_over_blip_end_to_end" in ratios:
        lines.append(f"  vit-gpt2 over blip: {ratios['vit_gpt2_over_blip_end_to_end']:.2f}x end to end (each at its "
                     f"fastest precision), {ratios['vit_gpt2_over_blip_fp32_model_only']:.2f}x model alone at fp32")
    for label, t in ratios.get("targets", {}).items():
        lines.append(f"  target {label} >= {t['want']}: {'met' if t['met'] else 'MISSED'} ({t['value']:.2f})")
    return "\n".join(lines)
