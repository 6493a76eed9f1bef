"""How much a precision changes a CLIP encoder's vectors, measured against fp32, and the ``auto`` choice made from it.

Measured on the user's own sample, never assumed: the same images and queries encoded at fp32 and
at the candidate precision, then

* ``mean_cosine``      mean over images of cos(fp32 vector, candidate vector) (and the minimum);
* ``top10_agreement``  mean over queries of |fp32 top-10 ∩ candidate top-10| / 10 for text->image
                       search over the sample (queries and images both at the candidate precision).

A check can be sequential (``Looks``): the sample read slice by slice, each candidate decided as soon as its
interval clears the bar or misses it (``clear_verdict``), the check stopped once the pick is clear.

``choose_precision("auto", ...)`` takes the fastest precision (measured on the same sample) whose
fidelity passes ``FIDELITY_BAR``, and says what it picked and why. What a precision *is* (and how an
encoder is put in one) is ``precision``; this module only measures and chooses.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from .precision import check_precision, unavailable_reason
from .retrieval import top_k

WARM_UP_IMAGES = 4


@dataclass(frozen=True)
class FidelityBar:
    """What ``auto`` demands of a precision against fp32 on the user's sample."""

    min_mean_cosine: float = 0.99
    min_top10_agreement: float = 0.90

    def describe(self) -> str:
        return f"mean cosine >= {self.min_mean_cosine} and top-10 agreement >= {self.min_top10_agreement}"


FIDELITY_BAR = FidelityBar()
Z95 = 1.96  # two-sided 95 % normal quantile


def agreement_margin(queries: int, k: int = 10, p: float = FIDELITY_BAR.min_top10_agreement, z: float = Z95) -> float:
    """95 % half-width (``z``: another normal quantile) of a top-k agreement measured on ``queries`` x ``k`` result
    slots, at agreement ``p``.

    Each slot of a query's fp32 top-k is kept or lost by the candidate: a binomial count over
    ``queries * k`` slots (slots are treated as independent, an approximation: slots of one query share
    its near-ties), so the half-width is ``Z95 * sqrt(p (1 - p) / (queries k))``; at the bar (p = 0.9),
    64 queries give 640 slots and +-0.023.
    """
    slots = queries * k
    return z * math.sqrt(p * (1 - p) / slots) if slots else 1.0


def cosine_margin(images: int, spread: float, delta: float = 0.05) -> float:
    """Hoeffding's two-sided half-width of a mean of ``images`` cosines lying in an interval ``spread`` wide,
    at confidence 1 - ``delta``: ``spread * sqrt(ln(2 / delta) / (2 images))``."""
    return spread * math.sqrt(math.log(2 / delta) / (2 * images)) if images else 1.0


@dataclass
class Fidelity:
    """One precision against fp32 on a sample (fp32's own row has cosine 1 and agreement 1)."""

    precision: str
    images: int
    queries: int
    mean_cosine: float
    min_cosine: float
    text_mean_cosine: float
    top10_agreement: float
    k: int
    img_s: float  # model-only images/s on the sample, at the sample's batch size
    unavailable: str | None = None
    # fp32 row only: mean cosine between *different* sample images. Near 1, every image looks alike to the
    # model (random weights do that), scores are near-ties and top-10 agreement measures ties, not precision.
    pairwise_cosine: float | None = None

    def passes(self, bar: FidelityBar = FIDELITY_BAR) -> bool:
        return (self.unavailable is None and self.mean_cosine >= bar.min_mean_cosine
                and self.top10_agreement >= bar.min_top10_agreement)

    def to_json(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_json(data: dict) -> "Fidelity":
        return Fidelity(**data)


def _warm_up(encoder, pixels) -> None:
    """First-call allocations and kernel choice, untimed: a few images do it (a whole batch cost a batch)."""
    encoder.encode_pixels(pixels[:min(len(pixels), WARM_UP_IMAGES)])


def _encode_timed(encoder, pixels, batch_size: int) -> tuple[np.ndarray, float]:
    """Unit vectors of a preprocessed pixel tensor, and the seconds they took."""
    chunks, started = [], time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        chunks.append(encoder.encode_pixels(pixels[start:start + batch_size]))
    return np.concatenate(chunks), time.perf_counter() - started


def topk_agreement(reference_scores: np.ndarray, candidate_scores: np.ndarray, k: int) -> float:
    """Mean over rows of the overlap of the two top-k index sets, as a fraction of k."""
    k = min(k, reference_scores.shape[1])
    if k == 0 or len(reference_scores) == 0:
        return 1.0
    ref, cand = top_k(reference_scores, k), top_k(candidate_scores, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ref, cand)]))


# ----------------------------------------------------------------------------- the sequential check
LOOK_CONFIDENCE = 0.95  # of a verdict taken early, over all the looks of one check together


@dataclass
class Looks:
    """A sample read in ``count`` slices (``slices`` yields each one's pixels, decoded when asked for), the verdict
    looked at after each: a candidate is decided as soon as its fidelity clears ``bar`` (or misses it) at
    ``LOOK_CONFIDENCE`` over all looks (``clear_verdict``), and the check stops once what ``auto`` would pick is
    clear; a candidate still unclear after the last slice is judged on its measured values, as a one-look check is."""

    slices: Iterable
    count: int
    planned: int  # images in all slices together
    bar: FidelityBar = FIDELITY_BAR
    log: Callable[[str], None] | None = None
    # auto keeps the fastest passing precision: a candidate slower than one that passes (fp32 always does) cannot be
    # picked, so it is not measured further. False for an explicit precision: its fidelity is reported whatever it costs.
    for_auto: bool = True

    def k_at(self, images: int, k: int) -> int:
        """The result slots agreement counts when ``images`` of the sample are in: the same share of the
        haystack as top-``k`` of the whole sample (top-3 of 32 for top-10 of 96), so an early look is as hard."""
        return min(images, max(1, round(k * images / max(self.planned, k))))


def clear_verdict(row: Fidelity, bar: FidelityBar, looks: int) -> bool | None:
    """True when ``row`` passes ``bar`` even at the low end of its interval, False when it misses even at the high
    end, None while the sample cannot tell. Each kind of wrong early verdict (a pass that would miss on the whole
    library, or the reverse) has a chance of at most 1 - ``LOOK_CONFIDENCE`` over all ``looks`` together
    (one-sided bounds, Bonferroni over the looks): top-k agreement as a binomial count over its result slots at
    the bar (as ``agreement_margin``), mean cosine by Hoeffding over the images for the spread observed."""
    delta = (1 - LOOK_CONFIDENCE) / looks
    z = NormalDist().inv_cdf(1 - delta)
    agree = agreement_margin(row.queries, row.k, bar.min_top10_agreement, z) if row.queries * row.k else 0.0
    cos = cosine_margin(row.images, max(1.0 - row.min_cosine, 1e-6), 2 * delta)  # 2 delta: one side of it
    if row.mean_cosine + cos < bar.min_mean_cosine or row.top10_agreement + agree < bar.min_top10_agreement:
        return False
    if row.mean_cosine - cos >= bar.min_mean_cosine and row.top10_agreement - agree >= bar.min_top10_agreement:
        return True
    return None


@dataclass
class _Track:
    """One precision's vectors so far in a sequential check, and its verdict once clear."""

    encoder: object
    fp32_queries: bool = False  # ranked with the reference's query vectors (search encodes its queries at fp32)
    chunks: list = field(default_factory=list)
    seconds: float = 0.0
    texts: np.ndarray | None = None
    row: Fidelity | None = None
    verdict: bool | None = None

    @property
    def vectors(self) -> np.ndarray:
        return np.concatenate(self.chunks)

    def encode(self, pixels, batch_size: int) -> None:
        if not self.chunks:
            _warm_up(self.encoder, pixels)
        vectors, seconds = _encode_timed(self.encoder, pixels, batch_size)
        self.chunks.append(vectors)
        self.seconds += seconds

    def img_s(self) -> float:
        return round(sum(map(len, self.chunks)) / max(self.seconds, 1e-9), 2)


def _candidate_row(precision: str, track: _Track, reference: _Track, texts: Sequence[str], k: int) -> Fidelity:
    images, ref_images = track.vectors, reference.vectors[:len(track.vectors)]
    cosines = np.sum(images * ref_images, axis=1)
    ref_texts, cand_texts = reference.texts, track.texts
    text_cos = np.sum(cand_texts * ref_texts, axis=1) if len(ref_texts) else np.ones(1)
    agreement = topk_agreement(ref_texts @ ref_images.T, cand_texts @ images.T, k)
    return Fidelity(precision, len(images), len(texts), round(float(cosines.mean()), 5), round(float(cosines.min()), 5),
                    round(float(text_cos.mean()), 5), round(agreement, 4), k, track.img_s())


def _outrun(tracks: dict[str, _Track], reference: _Track) -> set[str]:
    """Undecided candidates ``auto`` cannot pick whatever their fidelity: slower than fp32 (which always passes) or
    than a candidate that clearly passes."""
    passing = [reference.img_s()] + [t.img_s() for t in tracks.values() if t.verdict]
    return {p for p, t in tracks.items() if t.verdict is None and t.img_s() < max(passing)}


def measure_fidelity(reference, candidates: dict, pixels, texts: Sequence[str], batch_size: int = 32,
                     k: int = 10, vectors_out: dict | None = None, fp32_queries=()) -> dict[str, Fidelity]:
    """Rows for ``reference`` (an fp32 ClipEncoder) and each of ``candidates`` (precision -> encoder).

    ``pixels``: the sample, preprocessed once (N, 3, H, W), or ``Looks`` (the sample slice by slice: the check
    stops early once its verdict is clear, and a candidate's row is the one it was decided on); ``texts``: queries
    or captions. ``vectors_out`` (a dict) receives each precision's image vectors (a candidate decided early has
    fewer), so the caller can keep the chosen one's (``index`` stores them as the sample images' rows instead of
    encoding them again). ``fp32_queries``: candidates whose queries are encoded at fp32 where they are used (the
    capstone's bf16 index): their rankings are measured with the reference's query vectors, as search ranks.
    """
    looks = pixels if isinstance(pixels, Looks) else Looks([pixels], 1, len(pixels))
    reference_track = _Track(reference)
    tracks = {precision: _Track(encoder, fp32_queries=precision in fp32_queries)
              for precision, encoder in candidates.items()}
    outrun: set[str] = set()
    for look, slice_pixels in enumerate(looks.slices, start=1):
        live = {p: t for p, t in tracks.items() if t.verdict is None and p not in outrun}
        for track in (reference_track, *live.values()):
            track.encode(slice_pixels, batch_size)
            if track.texts is None and track.fp32_queries:
                track.texts = reference_track.texts
            elif track.texts is None:
                track.texts = (track.encoder.encode_texts(list(texts)) if texts
                               else np.zeros((0, track.vectors.shape[1]), np.float32))
        k_now = looks.k_at(len(reference_track.vectors), k)
        for precision, track in live.items():
            track.row = _candidate_row(precision, track, reference_track, texts, k_now)
            if look < looks.count:
                track.verdict = clear_verdict(track.row, looks.bar, looks.count)
        if looks.for_auto:  # once outrun, always: its vectors stop at this slice
            outrun |= _outrun(tracks, reference_track)
        if looks.log and looks.count > 1:
            looks.log(_look_line(look, looks.count, len(reference_track.vectors), tracks, outrun))
        if look < looks.count and all(t.verdict is not None or p in outrun for p, t in tracks.items()):
            break
    ref_images = reference_track.vectors
    n = len(ref_images)
    pairwise = float((np.sum(ref_images @ ref_images.T) - n) / (n * (n - 1))) if n > 1 else None
    rows = {"fp32": Fidelity("fp32", n, len(texts), 1.0, 1.0, 1.0, 1.0, looks.k_at(n, k), reference_track.img_s(),
                             pairwise_cosine=None if pairwise is None else round(pairwise, 4))}
    rows.update({precision: track.row for precision, track in tracks.items()})
    if vectors_out is not None:
        vectors_out.update({"fp32": ref_images} | {p: t.vectors for p, t in tracks.items()})
    return rows


def _look_line(look: int, looks: int, images: int, tracks: dict[str, _Track], outrun: set[str]) -> str:
    said = {True: "passes clearly", False: "misses clearly", None: "not clear yet"}
    parts = [f"{p} {'slower than a passing precision: not measured further' if p in outrun else said[t.verdict]} "
             f"(agreement {t.row.top10_agreement:.3f} top-{t.row.k}, cosine {t.row.mean_cosine:.4f}, "
             f"{t.row.images} images, {t.row.img_s:.1f} img/s)" for p, t in tracks.items()]
    return f"look {look} of {looks} at {images} images: " + "; ".join(parts)


def fidelity_rows(reference, pixels, texts: Sequence[str], precisions: Sequence[str] = ("bf16", "int8"),
                  batch_size: int = 32, k: int = 10, vectors_out: dict | None = None,
                  variants_out: dict | None = None, fp32_queries=()) -> dict[str, Fidelity]:
    """``measure_fidelity`` for ``precisions`` derived from the fp32 ``reference``; unavailable ones get a
    row saying why (not measured). ``pixels``: a tensor or ``Looks``."""
    candidates, missing = {}, {}
    for precision in precisions:
        if precision == "fp32":
            continue
        reason = unavailable_reason(precision, reference.device)
        if reason:
            missing[precision] = reason
        else:
            candidates[precision] = reference.at_precision(precision)
    if variants_out is not None:
        variants_out.update(candidates)
    rows = measure_fidelity(reference, candidates, pixels, texts, batch_size, k, vectors_out, fp32_queries)
    for precision, reason in missing.items():
        rows[precision] = Fidelity(precision, 0, 0, float("nan"), float("nan"), float("nan"), float("nan"), k, 0.0,
                                   unavailable=reason)
    return rows


@dataclass
class Choice:
    precision: str
    reason: str
    rows: dict[str, Fidelity]
    bar: FidelityBar

    def to_json(self) -> dict:
        return {"precision": self.precision, "reason": self.reason, "bar": asdict(self.bar),
                "fidelity": {p: row.to_json() for p, row in self.rows.items()}}


def choose_precision(requested: str, rows: dict[str, Fidelity], bar: FidelityBar = FIDELITY_BAR) -> Choice:
    """``auto``: the fastest measured precision that passes ``bar`` (fp32, the reference, always passes).

    An explicit precision is kept as asked, with a note when its measured fidelity misses the bar.
    """
    check_precision(requested, allow_auto=True)
    sample = next(iter(rows.values()))
    where = f"on {sample.images} sample images and {sample.queries} queries"
    if requested != "auto":
        row = rows.get(requested)
        if row is None or requested == "fp32":
            return Choice(requested, f"{requested} as asked", rows, bar)
        verdict = "passes" if row.passes(bar) else "MISSES"
        return Choice(requested, f"{requested} as asked; its fidelity against fp32 {where} {verdict} the bar "
                                 f"({bar.describe()}): mean cosine {row.mean_cosine:.4f}, "
                                 f"top-{row.k} agreement {row.top10_agreement:.3f}", rows, bar)
    passing = [row for row in rows.values() if row.precision == "fp32" or row.passes(bar)]
    best = max(passing, key=lambda row: row.img_s)
    speeds = ", ".join(f"{row.precision} {row.img_s:.1f}" for row in sorted(rows.values(), key=lambda r: -r.img_s)
                       if row.unavailable is None)
    notes = []
    for row in rows.values():
        if row.unavailable:
            notes.append(f"{row.precision} not tried: {row.unavailable}")
        elif row.precision != "fp32" and not row.passes(bar):
            notes.append(f"{row.precision} rejected: mean cosine {row.mean_cosine:.4f}, "
                         f"top-{row.k} agreement {row.top10_agreement:.3f}")
    reason = (f"auto picked {best.precision}: the fastest ({speeds} images/s, model only) whose fidelity against fp32 "
              f"{where} passes {bar.describe()}")
    if best.precision != "fp32":
        reason += f" (mean cosine {best.mean_cosine:.4f}, top-{best.k} agreement {best.top10_agreement:.3f})"
    if notes:
        reason += "; " + "; ".join(notes)
    return Choice(best.precision, reason, rows, bar)


def format_fidelity(rows: dict[str, Fidelity]) -> str:
    lines = [f"  {'precision':<10} {'img/s':>7} {'mean cos':>9} {'min cos':>8} {'text cos':>9} {'top-k agree':>11}"]
    for row in rows.values():
        if row.unavailable:
            lines.append(f"  {row.precision:<10} not measured: {row.unavailable}")
            continue
        lines.append(f"  {row.precision:<10} {row.img_s:>7.1f} {row.mean_cosine:>9.4f} {row.min_cosine:>8.4f} "
                     f"{row.text_mean_cosine:>9.4f} {row.top10_agreement:>11.3f}")
    return "\n".join(lines)
