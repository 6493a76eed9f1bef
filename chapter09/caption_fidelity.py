"""How much a captioning precision changes greedy output, measured against fp32, and the ``auto`` choice made from it.

The same pixels are captioned greedily at fp32 and at the candidate precision, then

* ``token_agreement``  share of token positions where the candidate wrote fp32's token: position by position over
                       the longer of the two sequences (prompt and padding after the end token left out), so a
                       caption that stops early or runs on counts its missing or extra tokens as disagreements;
* ``exact_agreement``  share of images whose decoded caption is exactly fp32's.

``CAPTION_BAR`` is what ``--precision auto`` demands: token agreement >= 0.98 and exact-caption agreement >= 0.90
(a caption that differs from fp32 in any word is a different caption for the user; one in ten is allowed, and
few tokens may move). ``choose_caption_precision`` then takes the fastest passing precision, measured on the same
sample; fp32, the reference, always passes.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .captioning import CAPTION_PRECISIONS, check_caption_precision
from .precision import unavailable_reason


@dataclass(frozen=True)
class CaptionBar:
    min_token_agreement: float = 0.98
    min_exact_agreement: float = 0.90

    def describe(self) -> str:
        return (f"token agreement >= {self.min_token_agreement} and exact-caption agreement >= "
                f"{self.min_exact_agreement} against fp32 greedy output")


CAPTION_BAR = CaptionBar()


@dataclass
class CaptionFidelity:
    precision: str
    images: int
    token_agreement: float
    exact_agreement: float
    img_s: float  # model-alone images/s on the sample (generate on ready tensors)
    unavailable: str | None = None

    def passes(self, bar: CaptionBar = CAPTION_BAR) -> bool:
        return (self.unavailable is None and self.token_agreement >= bar.min_token_agreement
                and self.exact_agreement >= bar.min_exact_agreement)

    def to_json(self) -> dict:
        return asdict(self)


def generated_tokens(ids, prompt_length: int, end_ids: Sequence[int]) -> list[list[int]]:
    """Each row's generated tokens: after the prompt, up to and including the first end token."""
    rows = []
    for row in ids.tolist():
        out = []
        for token in row[prompt_length:]:
            out.append(token)
            if token in end_ids:
                break
        rows.append(out)
    return rows


def token_agreement(reference: list[list[int]], candidate: list[list[int]]) -> float:
    """Matching positions over all positions of the longer sequence of each pair (see the module docstring)."""
    matched = total = 0
    for ref, cand in zip(reference, candidate, strict=True):
        length = max(len(ref), len(cand))
        matched += sum(a == b for a, b in zip(ref, cand))
        total += length
    return matched / max(1, total)


def end_token_ids(captioner) -> list[int]:
    config = captioner.model.config
    ids = {getattr(captioner.tokenizer, "eos_token_id", None), getattr(captioner.tokenizer, "sep_token_id", None),
           getattr(captioner.tokenizer, "pad_token_id", None)}
    for part in (config, getattr(config, "text_config", None), getattr(config, "decoder", None)):
        if part is not None:
            ids |= {getattr(part, "eos_token_id", None), getattr(part, "sep_token_id", None)}
    return sorted(i for i in ids if isinstance(i, int))


def timed_generate(captioner, pixels, batch_size: int, lang: str = "en", **generation):
    """(token ids per batch, images/s) of ``generate_ids`` over ``pixels`` in batches."""
    outputs, started = [], time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        outputs.append(captioner.generate_ids(pixels[start:start + batch_size], lang, **generation))
    return outputs, len(pixels) / max(time.perf_counter() - started, 1e-9)


def prompt_length(captioner) -> int:
    # BLIP's generate returns the prompt ([CLS] or [CLS] <lang>) before the new tokens; ViT-GPT2 its start token
    return 2 if captioner.bilingual else 1


def compare(reference_captioner, reference_ids, candidate_captioner, candidate_ids) -> tuple[float, float]:
    """(token agreement, exact-caption agreement) of candidate outputs against the reference's."""
    ends = end_token_ids(reference_captioner)
    skip = prompt_length(reference_captioner)
    ref_tokens = [row for ids in reference_ids for row in generated_tokens(ids, skip, ends)]
    cand_tokens = [row for ids in candidate_ids for row in generated_tokens(ids, skip, ends)]
    ref_text = [t for ids in reference_ids for t in reference_captioner.decode_ids(ids)]
    cand_text = [t for ids in candidate_ids for t in candidate_captioner.decode_ids(ids)]
    exact = sum(a == b for a, b in zip(ref_text, cand_text, strict=True)) / max(1, len(ref_text))
    return token_agreement(ref_tokens, cand_tokens), exact


def measure_caption_fidelity(make, pixels, precisions: Sequence[str] = CAPTION_PRECISIONS, batch_size: int = 8,
                             lang: str = "en", device: str = "cpu", reference=None, **generation):
    """{precision: CaptionFidelity} on ``pixels``; ``make(precision)`` builds a captioner at that precision.

    Returns (rows, captioners, outputs): the captioners built and their token ids, so a caller can keep the
    sample's captions at the precision it picks. ``reference``: an fp32 captioner already built.
    """
    reference = reference or make("fp32")
    ref_ids, ref_speed = timed_generate(reference, pixels, batch_size, lang, **generation)
    rows = {"fp32": CaptionFidelity("fp32", len(pixels), 1.0, 1.0, round(ref_speed, 3))}
    built, outputs = {"fp32": reference}, {"fp32": ref_ids}
    for precision in precisions:
        check_caption_precision(precision)
        if precision == "fp32":
            continue
        reason = unavailable_reason(precision, device)  # int8: the image encoder on ONNX Runtime
        if reason:
            rows[precision] = CaptionFidelity(precision, 0, float("nan"), float("nan"), 0.0, reason)
            continue
        candidate = make(precision)
        ids, speed = timed_generate(candidate, pixels, batch_size, lang, **generation)
        tokens, exact = compare(reference, ref_ids, candidate, ids)
        rows[precision] = CaptionFidelity(precision, len(pixels), round(tokens, 4), round(exact, 4), round(speed, 3))
        built[precision], outputs[precision] = candidate, ids
    return rows, built, outputs


@dataclass
class CaptionChoice:
    precision: str
    reason: str
    rows: dict[str, CaptionFidelity]

    def to_json(self) -> dict:
        return {"precision": self.precision, "reason": self.reason, "bar": asdict(CAPTION_BAR),
                "fidelity": {p: r.to_json() for p, r in self.rows.items()}}


def choose_caption_precision(rows: dict[str, CaptionFidelity], bar: CaptionBar = CAPTION_BAR) -> CaptionChoice:
    """The fastest measured precision passing ``bar`` (fp32 always passes), and why."""
    passing = [row for row in rows.values() if row.precision == "fp32" or row.passes(bar)]
    best = max(passing, key=lambda row: row.img_s)
    images = rows["fp32"].images
    speeds = ", ".join(f"{r.precision} {r.img_s:.2f}" for r in sorted(rows.values(), key=lambda r: -r.img_s)
                       if r.unavailable is None)
    notes = [f"{r.precision} not tried: {r.unavailable}" if r.unavailable else
             f"{r.precision} rejected: token agreement {r.token_agreement:.3f}, exact {r.exact_agreement:.3f}"
             for r in rows.values() if r.precision != "fp32" and not r.passes(bar)]
    reason = (f"auto picked {best.precision}: the fastest ({speeds} images/s, model alone) on {images} sample "
              f"images whose greedy captions pass {bar.describe()}")
    if best.precision != "fp32":
        reason += f" (token agreement {best.token_agreement:.3f}, exact {best.exact_agreement:.3f})"
    if notes:
        reason += "; " + "; ".join(notes)
    return CaptionChoice(best.precision, reason, rows)


def format_caption_fidelity(rows: dict[str, CaptionFidelity]) -> str:
    lines = [f"  {'precision':<10} {'img/s':>7} {'token agree':>11} {'exact':>6}"]
    for row in rows.values():
        if row.unavailable:
            lines.append(f"  {row.precision:<10} not measured: {row.unavailable}")
        else:
            lines.append(f"  {row.precision:<10} {row.img_s:>7.2f} {row.token_agreement:>11.3f} "
                         f"{row.exact_agreement:>6.3f}")
    return "\n".join(lines)
