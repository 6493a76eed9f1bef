"""Which precision encodes *this* library: fidelity measured on a sample of its own images.

``index --precision int8`` (or bf16) encodes a sample of the library (``SAMPLE_IMAGES``, spread
evenly over its sorted paths) and the library's own captions (``captions.jsonl`` beside the images,
as the toy data sets and ``eval`` folders have) or else ``DEFAULT_QUERIES``, at fp32 and at the
precision asked for, and reports the fidelity (``chapter09.fidelity``). ``--precision auto`` does
the same for every precision this machine runs and keeps the fastest one that passes the bar.

One precision serves every encoder of an index (with ``--chinese-clip``, auto keeps the fastest that
passes for both). The choice is written to ``precision.json`` in the index folder (``precision_sidecar``: the one
format of both precision sidecars); the store itself
keys each vector table by checkpoint and precision (``tables.EncoderIdentity``), so another precision
re-encodes into a table of its own instead of mixing vectors. ``caption --index`` picks its captioner's
precision here too (``pick_caption_precision``: the same rule, fastest that passes the captions' bar). Re-running ``index`` (auto) on that
folder with the same models keeps the recorded choice (no re-measuring, no re-encoding). ``search``
and ``serve`` read the precision from the index's own table identity (``query_settings``), so queries
are encoded at the precision the images were (a bf16 index's at fp32: ``query_precision`` says why).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ...caption_fidelity import CAPTION_PRECISIONS, choose_caption_precision, measure_caption_fidelity
from ...captioning import captioner as shared_captioner
from ...clip import ClipEncoder
from ...cpu import describe
from ...errors import UsageError
from ...fidelity import (
    FIDELITY_BAR,
    Fidelity,
    FidelityBar,
    Looks,
    agreement_margin,
    choose_precision,
    cosine_margin,
    fidelity_rows,
    format_fidelity,
)
from ...images import IMAGE_SUFFIXES, BadImageError, load_image
from ...models import cached, pick_device, resolve
from ...onnx_captioner import CAPTION_INT8_METHOD
from ...precision import PRECISIONS, check_precision, numeric_format, precision_identity, runtime_of
from ...translation import translator
from ..index.decode import decode_one
from ..index.walk import walk_library
from ..search.index_model import index_clip_settings
from ..store.database import Store, held_precision, is_uri, local_side_folder
from . import verdicts as verdict_cache
from .sidecar import CAPTION_SIDECAR, INDEX_SIDECAR, find_verdict, read_verdicts, record_verdict

# How big the sample is, and why (the bounds are ``fidelity.agreement_margin`` / ``fidelity.cosine_margin``):
# * top-10 agreement is counted over queries x 10 result slots, a binomial count: at the bar (0.90), 64
#   queries give 640 slots and a 95 % half-width of +-0.023 (the fixed queries below are 64 for that reason);
# * mean cosine is a mean over images: Hoeffding's bound for cosines spread over 0.02 (a candidate near the
#   0.99 bar; int8 and bf16 measure a spread under 0.005) gives +-0.0028 on 96 images at 95 %;
# * the 96 images are the haystack each query's top-10 is taken from (about a tenth of it).
# The margins are reported beside the verdict. The sample's vectors at the chosen precision become the
# sample images' rows (``indexer.write_sample_rows``), so what the check costs is the other precisions' pass.
SAMPLE_IMAGES = 96
SAMPLE_QUERIES = 64
# The check is sequential: it looks at its verdict after each third of the sample (32 images: top-3 agreement, the
# same share of the haystack) and stops once what auto picks is clear at 95 % over all looks (``fidelity.Looks``).
LOOKS = 3
MIN_LOOK_IMAGES = 32
SIDECAR = INDEX_SIDECAR  # the index's verdict; caption --index's is CAPTION_SIDECAR, in the same format

# Fixed English queries for libraries without captions: everyday photo subjects, short like real queries.
DEFAULT_QUERIES = (
    "a dog", "a cat sleeping on a sofa", "a red car parked on the street", "a plate of food", "a birthday cake",
    "people at the beach", "a mountain landscape with snow", "a city skyline at night", "a child playing football",
    "a bowl of fruit", "a bicycle against a wall", "a sunset over the sea", "a bird on a branch", "a group photo",
    "a train at a station", "a cup of coffee", "flowers in a garden", "a laptop on a desk", "a rainy street",
    "a boat on a lake", "a portrait of a woman", "an old man smiling", "a forest path", "a kitchen", "a horse",
    "fireworks", "a bridge over a river", "a screenshot of text", "a wedding", "a snowy field", "a book",
    "a close-up of a flower", "a building with a clock tower", "a plane in the sky", "a baby", "a pizza",
    "a living room", "a desert road", "a fish in an aquarium", "a black and white photo",
    "a cow in a field", "a tent at a campsite", "a street market", "a dog catching a frisbee", "a bathroom",
    "a church interior", "a selfie", "a waterfall", "a motorbike", "a concert crowd", "a swimming pool",
    "a map", "a receipt", "a cat on a keyboard", "a bus in the city", "autumn leaves", "a lighthouse",
    "a glass of wine", "a tennis match", "an empty office", "a garden with vegetables", "a statue in a park",
    "a child's drawing", "a traffic jam",
)


def sample_evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over ``items`` (all of them when there are fewer), in order."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def library_images(root: Path, exclude: Path | None = None) -> list[Path]:
    return [root / p for p in walk_library(root, exclude=exclude) if p.suffix.lower() in IMAGE_SUFFIXES]


def library_queries(root: Path, n: int = SAMPLE_QUERIES) -> tuple[list[str], str]:
    """Captions from ``captions.jsonl`` under the library (spread evenly), else ``DEFAULT_QUERIES``."""
    found = sorted(root.glob("captions.jsonl")) + sorted(root.glob("*/captions.jsonl"))
    captions = []
    for path in found:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                caption = json.loads(line).get("caption")
            except (ValueError, AttributeError):
                continue
            if isinstance(caption, str) and caption.strip():
                captions.append(caption.strip())
    if captions:
        return sample_evenly(sorted(set(captions)), n), f"{min(n, len(set(captions)))} of the library's captions"
    return list(DEFAULT_QUERIES), f"{len(DEFAULT_QUERIES)} fixed queries"


def decode_sample(root: Path, paths: list[Path], preprocessors: dict, min_side: int) -> list[dict]:
    """The sample decoded exactly as indexing decodes (``index.decode.decode_one``: the file's state, SHA-1, draft
    JPEG decode, each role's preprocessing), so its vectors can be the sample images' rows. Unreadable files
    are left out (the indexer reports them)."""
    items = [decode_one(root, str(path.relative_to(root)), preprocessors, min_side) for path in paths]
    return [item for item in items if item["ok"]]


def _stack(items: list[dict], role: str):
    import torch  # heavy: torch

    return torch.stack([torch.from_numpy(np.asarray(item["pixels"][role])) for item in items])


def sample_pixels(paths: list[Path], encoder):
    """Decode and preprocess ``paths`` the way indexing does (draft JPEG decode); unreadable files are skipped."""
    import torch  # heavy: torch


    processor, tensors = encoder.processor.image_processor, []
    for path in paths:
        try:
            image = load_image(path, min_side=encoder.image_side)
        except BadImageError:
            continue
        tensors.append(processor(images=[image], return_tensors="pt")["pixel_values"][0])
    if not tensors:
        raise UsageError("no readable image in the library sample: nothing to measure fidelity on")
    return torch.stack(tensors)


def measure_library(library, reference, precisions=("bf16", "int8"), sample: int = SAMPLE_IMAGES,
                    batch_size: int = 32) -> tuple[dict[str, Fidelity], str]:
    """Fidelity rows of ``precisions`` against the fp32 ``reference`` ClipEncoder on the library's sample."""
    root = Path(library).resolve()
    paths = sample_evenly(library_images(root), sample)
    if not paths:
        raise UsageError(f"no image files in {root}: nothing to measure fidelity on")
    queries, where = library_queries(root)
    pixels = sample_pixels(paths, reference)
    rows = fidelity_rows(reference, pixels, queries, precisions, batch_size, fp32_queries=FP32_QUERIES)
    return rows, f"{len(pixels)} library images, {where}"


def margins(rows: dict[str, Fidelity]) -> dict:
    """The statistical half-widths of a sample's verdict (95 %): top-10 agreement (binomial over the result
    slots, at the bar) and mean cosine (Hoeffding over the images, for each row's observed spread)."""
    sample = next(iter(rows.values()))
    out = {"top10_agreement": round(agreement_margin(sample.queries, sample.k), 4)}
    for precision, row in rows.items():
        if precision != "fp32" and row.unavailable is None:
            out[f"mean_cosine_{precision}"] = round(cosine_margin(row.images, max(1.0 - row.min_cosine, 1e-6)), 5)
    return out


def sidecar_folder(index_dir) -> Path:
    """The index folder; for an object-store index (``s3://...``) a local cache folder instead
    (``~/.cache/chapter09/precision/<hash>``): the record only spares this machine re-measuring."""
    return local_side_folder(str(index_dir), "precision") if is_uri(index_dir) else Path(index_dir)


def read_sidecar(index_dir) -> dict:
    """The index's precision verdict (``precision_sidecar``: an old flat record reads too), or {}."""
    verdicts = read_verdicts(sidecar_folder(index_dir) / SIDECAR)
    return verdicts[-1] if verdicts else {}


def write_sidecar(index_dir, report: dict) -> None:
    """Record the precision an index's images were encoded at, the models and CPU the verdict was measured
    for: the index's one verdict (``precision_sidecar.record_verdict``)."""
    identity = precision_identity(report["precision"], report.get("runtime", "torch"))
    record_verdict(sidecar_folder(index_dir) / SIDECAR, {**report, "identity": identity},
                   {"locations": report.get("locations", {})}, only=True)


def _same_models_and_cpu(data: dict, locations: dict[str, str] | None) -> bool:
    """The record was made for these models (``locations``) on this CPU (``cpu.describe()``: its name, the
    flags that decide a precision's speed, and any hidden by $CH09_HIDE_CPU_FEATURES)."""
    if locations is not None and any(data.get("locations", {}).get(role) != where for role, where in locations.items()):
        return False
    return data.get("cpu") == describe()


def recorded_precision(index_dir, locations: dict[str, str] | None = None) -> str | None:
    """The precision ``index_dir`` records (None if none, or if it was measured for other models or on
    another CPU: a verdict holds for one model, precision and CPU)."""
    data = read_sidecar(index_dir)
    if data.get("precision") not in PRECISIONS or not _same_models_and_cpu(data, locations):
        return None
    return data["precision"]


def recorded_fidelity(index_dir, locations: dict[str, str], precisions) -> dict[str, dict[str, Fidelity]] | None:
    """Fidelity rows this index already measured for every role and every one of ``precisions``, for the same
    models on the same CPU; None if any is missing."""
    data = read_sidecar(index_dir)
    if not _same_models_and_cpu(data, locations):
        return None
    try:
        found = {role: {p: Fidelity.from_json(row) for p, row in data["fidelity"][role].items()} for role in locations}
    except (KeyError, TypeError, AttributeError):
        return None
    if any(p not in rows or "fp32" not in rows for rows in found.values() for p in precisions):
        return None
    return found


def _combined(per_role: dict[str, dict[str, Fidelity]]) -> dict[str, Fidelity]:
    """One row per precision over several encoders: the worst fidelity, and the images/s of running them all."""
    if len(per_role) == 1:
        return next(iter(per_role.values()))
    combined = {}
    for precision in next(iter(per_role.values())):
        rows = [rows[precision] for rows in per_role.values()]
        missing = next((row.unavailable for row in rows if row.unavailable), None)
        rate = 1 / sum(1 / max(row.img_s, 1e-9) for row in rows) if not missing else 0.0
        combined[precision] = Fidelity(precision, min(r.images for r in rows), min(r.queries for r in rows),
                                       min(r.mean_cosine for r in rows), min(r.min_cosine for r in rows),
                                       min(r.text_mean_cosine for r in rows), min(r.top10_agreement for r in rows),
                                       rows[0].k, round(rate, 2), missing)
    return combined


def _runtime(precision: str, settings, roles) -> str:
    """Where ``roles``' encoders run at ``precision`` (``precision.runtime_of``), for the report."""
    return runtime_of(precision, pick_device(settings.device), all(resolve(role, settings).is_toy for role in roles))


def pick_for_index(library, index_dir, roles, settings, requested: str, sample: int = SAMPLE_IMAGES,
                   bar: FidelityBar = FIDELITY_BAR, batch_size: int = 32, log=None) -> dict:
    """Decide the one precision ``index`` encodes every role in ``roles`` at; returns a JSON-ready report.

    fp32: nothing to measure. bf16/int8: fidelity measured and reported (kept even if it misses the
    bar, with a warning). auto: measured for every precision available here; the fastest that passes
    for every role is kept, unless ``index_dir`` already records a choice for the same models on this CPU.
    A verdict already recorded for the same models, precisions and CPU is reused, not measured again.
    The choice is recorded in ``index_dir`` for ``search`` and ``serve``.

    When it measured, the report carries ``sample_rows`` (not JSON: pop it before printing): the sample
    images' vectors at the chosen precision with the file state they were read at, for ``build_index``'s
    ``precomputed``; and the encoders it built at that precision are left in the process's model cache
    (``models.cached``), so ``clip_encoder`` hands them to the indexer instead of loading the models again.
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    check_precision(requested, allow_auto=True)
    locations = {role: resolve(role, settings).location for role in roles}
    if requested == "auto":
        kept = _kept_by_auto(index_dir, locations, settings, roles, log)
        if kept is not None:
            return kept
    if requested == "fp32":
        report = {"precision": "fp32", "reason": "fp32 as asked (the reference: nothing to measure)",
                  "locations": locations, "runtime": _runtime("fp32", settings, roles), "measured": False}
        write_sidecar(index_dir, report)
        return report
    candidates = [p for p in PRECISIONS if p != "fp32"] if requested == "auto" else [requested]
    per_role, where, reused = recorded_fidelity(index_dir, locations, candidates), "", True
    runtimes = {p: _runtime(p, settings, roles) for p in PRECISIONS}  # a verdict holds for these runtimes only
    remembered = None if per_role is not None else verdict_cache.cached_fidelity(locations, runtimes, candidates, bar)
    sample_rows, encoders = None, {}
    started = time.perf_counter()
    if remembered is not None:
        per_role, where = remembered[0], f"remembered from an earlier index on this CPU: {remembered[1]}"
        log(f"[index] fidelity of {', '.join(candidates)} for these models on this CPU remembered from an earlier "
            f"index ({verdict_cache.cache_file()}): not measured again ({verdict_cache.ENV_SWITCH}=0 measures)")
    elif per_role is None:
        reused = False
        per_role, where, items, vectors, variants = _measure_sample(library, index_dir, roles, settings, candidates,
                                                                    sample, batch_size, bar, log)
        verdict_cache.remember_fidelity(locations, runtimes, bar, per_role, where)
    else:
        where = read_sidecar(index_dir).get("sample", "")
        log(f"[index] fidelity of {', '.join(candidates)} already measured for this index, these models and this "
            f"CPU ({where}): not measured again")
    choice = choose_precision(requested, _combined(per_role), bar)
    log(f"[index] {choice.reason}" + (f" (worst over {', '.join(roles)})" if len(per_role) > 1 else ""))
    if requested != "auto" and not choice.rows[requested].passes(bar):
        log(f"[index] warning: {requested} misses the fidelity bar on this library; consider --precision auto")
    if not reused:
        for role in roles:  # the chosen encoders serve the indexer (no second load) and their sample vectors are rows
            encoders[role] = variants[role][choice.precision]
            for other in variants[role].values():  # freed here, not by the cycle collector while decoding runs
                if other.model is not encoders[role].model:
                    other.release()
            cached("clip_encoder", (role, settings.with_(precision=choice.precision)), lambda e=encoders[role]: e)
        kept = min(len(vectors[role][choice.precision]) for role in roles)  # a candidate decided early has fewer
        sample_rows = {"items": [{k: v for k, v in item.items() if k != "pixels"} for item in items[:kept]],
                       "vectors": {role: vectors[role][choice.precision][:kept] for role in roles},
                       "identities": {role: enc.identity for role, enc in encoders.items()}}
    runtime = next(iter(encoders.values())).runtime if encoders else _runtime(choice.precision, settings, roles)
    report = {"precision": choice.precision, "reason": choice.reason, "locations": locations, "sample": where,
              "runtime": runtime, "measured": not reused, "check_s": round(time.perf_counter() - started, 2),
              "margins": margins(_combined(per_role)),
              "bar": {"min_mean_cosine": bar.min_mean_cosine, "min_top10_agreement": bar.min_top10_agreement},
              "fidelity": {role: {p: row.to_json() for p, row in rows.items()} for role, rows in per_role.items()}}
    write_sidecar(index_dir, report)
    if sample_rows is not None:
        report["sample_rows"] = sample_rows
    return report


class _SampleSlices:
    """The sample's paths in ``count`` even slices (``paths[i::count]``: every prefix of slices is itself spread
    evenly over the library), each decoded the indexer's way the first time a role asks for it, so a check that
    stops early has not decoded the rest, and a second role reads the same images."""

    def __init__(self, root: Path, paths: list[Path], references: dict, count: int):
        self.root, self.count = root, count
        self.parts = [paths[i::count] for i in range(count)]
        self.preprocessors = {role: ref.processor.image_processor for role, ref in references.items()}
        self.min_side = max(ref.image_side for ref in references.values())
        self.decoded: list[list[dict]] = []

    def items(self) -> list[dict]:
        """Every image decoded so far, in the order the checks encode them."""
        return [item for part in self.decoded for item in part]

    def attempted(self) -> int:
        """How many of the sample's files were read so far, the unreadable ones included."""
        return sum(len(part) for part in self.parts[:len(self.decoded)])

    def pixels(self, role: str):
        """The slices' pixels for ``role``, one slice at a time (a slice with no readable image is skipped)."""
        for i in range(self.count):
            if i == len(self.decoded):
                self.decoded.append(decode_sample(self.root, self.parts[i], self.preprocessors, self.min_side))
            if self.decoded[i]:
                yield _stack(self.decoded[i], role)
        if not self.items():
            raise UsageError("no readable image in the library sample: nothing to measure fidelity on")


def looks_for(sample_size: int) -> int:
    """How many times the check looks at its verdict: after every ``MIN_LOOK_IMAGES`` images of the sample, at most
    ``LOOKS`` times (a smaller haystack makes top-k agreement too easy to mean anything)."""
    return max(1, min(LOOKS, sample_size // MIN_LOOK_IMAGES))


def _measure_sample(library, index_dir, roles, settings, candidates: list[str], sample: int, batch_size: int,
                    bar: FidelityBar, log) -> tuple:
    """Fidelity of ``candidates`` against fp32 per role, measured on an even sample of the library's images and its
    queries, looked at after each slice of the sample and stopped once the verdict is clear (``fidelity.Looks``);
    returns (rows per role, where they were measured, the decoded sample, each role's sample vectors per
    precision, each role's encoder per precision)."""
    per_role = {}
    root = Path(library).resolve()
    index_path = None if is_uri(index_dir) else Path(index_dir).resolve()
    paths = sample_evenly(library_images(root, exclude=index_path), sample)
    if not paths:
        raise UsageError(f"no image files in {root}: nothing to measure fidelity on")
    queries, where_queries = library_queries(root)
    references = {role: ClipEncoder(role, settings.with_(precision="fp32")) for role in roles}
    slices = _SampleSlices(root, paths, references, looks_for(len(paths)))
    vectors, variants = {}, {}
    for role, reference in references.items():
        log(f"[index] {role}: measuring {', '.join(candidates)} against fp32 ({reference.runtime}) on up to "
            f"{len(paths)} library images, {where_queries}, in {slices.count} look(s) ...")
        looks = Looks(slices.pixels(role), slices.count, len(paths), bar, lambda line: log(f"[index] {role}: {line}"),
                      for_auto=len(candidates) > 1)  # auto measures every candidate; an explicit precision is one
        vectors[role], variants[role] = {}, {"fp32": reference}
        per_role[role] = fidelity_rows(reference, looks, queries, candidates, batch_size, vectors_out=vectors[role],
                                       variants_out=variants[role], fp32_queries=FP32_QUERIES)
        log(f"[index] {role}: fidelity against fp32:\n{format_fidelity(per_role[role])}")
    items, attempted = slices.items(), slices.attempted()
    notes = ([f"{attempted - len(items)} unreadable left out"] if attempted > len(items) else []) + (
        [f"of {len(paths)} planned: the check stopped once its verdict was clear"] if attempted < len(paths) else [])
    said = f" ({'; '.join(notes)})" if notes else ""
    where = f"{len(items)} library images{said}, {where_queries}"
    return per_role, where, items, vectors, variants


def _kept_by_auto(index_dir, locations: dict, settings, roles, log) -> dict | None:
    """``auto``'s report when the index already has a precision for these models (recorded for this CPU, or held
    by its vectors: an index built without a record, by the API or an older version), else None: measure."""
    kept = recorded_precision(index_dir, locations)
    if kept:
        data = read_sidecar(index_dir)
        reason = (f"auto keeps {kept}, chosen for this index on {data.get('recorded_at')} for the same models "
                  f"on this CPU (--precision fp32, bf16 or int8 changes it, and re-encodes)")
        log(f"[index] {reason}")
        return {key: data[key] for key in ("precision", "locations", "fidelity", "bar", "sample", "margins")
                if key in data} | {"reason": reason, "measured": False}
    held = held_precision(index_dir, locations) if is_uri(index_dir) or Path(index_dir).exists() else None
    if held not in PRECISIONS:
        return None
    reason = (f"auto keeps {held}, the precision this index's vectors were encoded at "
              f"(--precision fp32, bf16 or int8 changes it, and re-encodes)")
    log(f"[index] {reason}")
    report = {"precision": held, "reason": reason, "locations": locations, "measured": False}
    write_sidecar(index_dir, report | {"runtime": _runtime(held, settings, roles)})
    return report


def index_precision(args_precision: str | None, settings, library, index_dir, roles, log=None) -> tuple[object, dict]:
    """``index``'s --precision: (settings to encode with, the report). No flag and an explicit --dtype: the
    dtype decides (nothing measured); no flag otherwise: auto. The report may carry ``sample_rows``
    (``pick_for_index``): hand them to ``build_index(precomputed=...)``."""
    if args_precision is None and settings.dtype:
        precision = numeric_format(settings.with_(precision=None), pick_device(settings.device)).precision
        report = {"precision": precision, "reason": f"--dtype {settings.dtype} decides (nothing measured)",
                  "locations": {role: resolve(role, settings).location for role in roles}}
        write_sidecar(index_dir, report)
        return settings.with_(precision=None), report
    report = pick_for_index(library, index_dir, roles, settings, args_precision or "auto", log=log)
    return settings.with_(precision=report["precision"]), report


def query_precision(held: str | None) -> str | None:
    """The precision a query is encoded at in an index whose images are at ``held``: the same, but fp32 for a bf16
    index. One query gains nothing from bf16 (text query p50 12.3 ms bf16, 11.3 ms fp32 in the bench on an
    AMX CPU), fp32 is the reference bf16 passed its bar against, and fp32 runs on ONNX Runtime, which the cold quick
    search (``search/quick.py``) needs; int8's text tower is faster (4.5 ms) and runs there too, so it stays."""
    return "fp32" if held == "bf16" else held


# the precisions whose queries search encodes at fp32: the check ranks their images with fp32's query vectors
FP32_QUERIES = tuple(p for p in PRECISIONS if query_precision(p) == "fp32" and p != "fp32")


def query_settings(index, settings):
    """Settings for the query side of ``search``/``serve``: with --precision auto (or none), the precision the
    index's images were encoded at (``query_precision``), read from its table identity, so queries and images match
    what was measured; and the CLIP checkpoint the index was built with (``index_model``). ``index``: an index
    folder or an open ``store.Store``."""
    store = index if isinstance(index, Store) else Store.open(index)
    settings = index_clip_settings(store, settings)
    if settings.precision not in (None, "auto"):
        return settings
    held = store.identity(store.roles[0]).base_precision if store.roles else None
    return settings.with_(precision=query_precision(held)) if held in PRECISIONS else settings


# ----------------------------------------------------------------------------- captions (caption --index)
def pick_caption_precision(index_dir, store, sample: list[dict], langs, settings, name: str, requested: str,
                           log=None) -> tuple[object, str, list]:
    """``caption --index``'s captioner: (captioner, reason, sample rows already captioned) for ``requested``.

    ``auto`` captions ``sample`` (records of ``store``) at fp32 and at each precision the CPU runs fast, keeps the
    fastest whose greedy captions pass ``caption_fidelity.CAPTION_BAR``, and returns the sample's captions at the
    precision picked. The verdict is kept beside a local index (``CAPTION_SIDECAR``) and not measured again."""
    if requested != "auto":
        model = shared_captioner(settings, name, requested)
        return model, f"{model.precision} as asked", []
    reference = shared_captioner(settings, name, "fp32")
    sidecar = None if is_uri(str(index_dir)) else Path(index_dir) / CAPTION_SIDECAR
    # the int8 method is part of what was measured: a verdict from another method is measured again
    subject = {"captioner": name, "location": reference.location, "candidates": sorted(CAPTION_PRECISIONS),
               "int8": CAPTION_INT8_METHOD}
    known = find_verdict(sidecar, subject) if sidecar is not None else None
    if known is not None:
        model = shared_captioner(settings, name, known["precision"])
        return model, known["reason"] + " (measured on an earlier run of this index)", []
    items = []
    for record in sample:
        try:
            image = load_image(store.absolute(record["path"]), min_side=reference.image_side)
        except (BadImageError, OSError):
            continue
        items.append((record, image))
    if not items:
        return reference, "fp32: no sample image could be read to measure another precision", []
    if log:
        log(f"caption --precision auto: captioning {len(items)} sample images at fp32 and each candidate precision")
    pixels = reference.pixels([image for _record, image in items])
    rows, built, outputs = measure_caption_fidelity(lambda p: shared_captioner(settings, name, p), pixels,
                                                    CAPTION_PRECISIONS, batch_size=len(items),
                                                    device=reference.device, reference=reference)
    choice = choose_caption_precision(rows)
    model = built[choice.precision]
    if sidecar is not None:
        record_verdict(sidecar, {"precision": choice.precision, "reason": choice.reason,
                                 "fidelity": {p: r.to_json() for p, r in rows.items()}}, subject)
    # the sample's captions at the precision picked are kept: those images are not captioned again
    english = [text for ids in outputs[choice.precision] for text in model.decode_ids(ids)]
    kept = []
    if not model.bilingual and set(langs) <= {"en", "zh"}:
        chinese = translator("en_zh", settings).translate(english) if "zh" in langs else []
        for i, (record, _image) in enumerate(items):
            caps = {"en": english[i]} if "en" in langs else {}
            if "zh" in langs:
                caps["zh"] = chinese[i]
            kept.append({"path": record["path"], "sha1": record["sha1"], **caps})
    return model, choice.reason, kept
