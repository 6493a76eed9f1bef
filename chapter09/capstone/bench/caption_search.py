"""Caption text search against vector search, and the two fused, on held-out toy scenes.

    python -m chapter09.capstone.bench.caption_search [--scenes 600] [--seed 31337] [--json]

What it does: writes ``--scenes`` held-out toy scenes (a seed no twin was trained on), indexes them
with the toy CLIP (``index``), captions them with the toy captioner twin (``caption --index``: the
captions searched are the captioner's, mistakes included, never the scenes' reference texts), then
asks, in English and in Chinese, queries whose words the captions contain, each with one right
image, and reports recall@1 and recall@5 (the share of queries whose image is in the first 1 / 5) of

* ``vector``: ``LibrarySearch.by_text(query, depth)`` (strategy auto);
* ``caption``: ``caption_text.caption_ranking(store, query, depth)``;
* ``hybrid``: ``caption_text.rrf_fuse`` of the two rankings (k = 60, equal weights).

Query kinds: ``caption``, the scene's description in the captioner's own wording (``Scene.captions(lang)[0]``);
``paraphrase``, one of the scene's other phrasings ("a photo of ...", "there are two shapes: ...",
"一张图片：...", "这张图里..."), whose few extra words no caption holds; ``object``, one object of the scene as
its caption names it ("a small red circle at the top left", "左上方有一个小的红色圆形"), the query a user who
remembers one thing in the photo types. The right image of the first two is the scene the query describes
(scene keys are unique within the library, so no other image fits it exactly); of an object query, every
image holding that object. recall@k: the share of queries with a right image among the first k.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ...clip import clip_encoder
from ...models import Settings
from ...toyworld import load_scenes, write_dataset
from ..caption.run import caption_index
from ..caption.text_search import caption_ranking, rrf_fuse
from ..index.build import build_index
from ..search.library_search import LibrarySearch

KINDS = ("caption", "paraphrase", "object")
METHODS = ("vector", "caption", "hybrid")
DEPTH = 50  # rows of each ranking handed to the fusion


def _queries(scenes: dict, lang: str, kind: str) -> list[tuple[str, set[str]]]:
    """(query, right images) per scene, in path order; paraphrases rotate through the other phrasings, and
    an object query names one of the scene's objects in turn (right: every image holding that object)."""
    holding: dict = {}
    for path, scene in scenes.items():
        for obj in scene.objects:
            holding.setdefault(obj, set()).add(path)
    out = []
    for i, (path, scene) in enumerate(sorted(scenes.items())):
        phrasings = scene.captions(lang)
        if kind == "caption":
            out.append((phrasings[0], {path}))
        elif kind == "paraphrase":
            out.append((phrasings[1 + i % (len(phrasings) - 1)], {path}))
        else:
            obj = scene.objects[i % len(scene.objects)]
            out.append((obj.en() if lang == "en" else obj.zh(), holding[obj]))
    return out


def measure(scenes: int = 600, seed: int = 31337, folder: str | Path | None = None, depth: int = DEPTH,
            kinds=KINDS, log=print) -> dict:
    """Build the toy library, index and captions in ``folder`` (a temporary one if None) and measure the
    query ``kinds`` in both languages."""
    tmp = None
    if folder is None:
        tmp = folder = tempfile.mkdtemp(prefix="ch09-caption-search-")
    folder = Path(folder)
    try:
        settings = Settings("toy")
        started = time.perf_counter()
        library = write_dataset(folder / "library", n=scenes, seed=seed, split="heldout")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            build_index(library, folder / "index", {"clip": clip_encoder("clip", settings)}, workers=0, progress=False)
            caption_index(folder / "index", ("en", "zh"), settings, progress=False)
        setup_s = time.perf_counter() - started
        started = time.perf_counter()
        truth = load_scenes(library)
        search = LibrarySearch(folder / "index", settings)
        captions = search.store.captions()
        exact = {lang: sum(captions.get(p, {}).get(lang) == s.captions(lang)[0] for p, s in truth.items()) / len(truth)
                 for lang in ("en", "zh")}
        report = {"scenes": scenes, "seed": seed, "depth": depth, "rrf_k": 60, "setup_s": round(setup_s, 1),
                  "captioner_exact": {lang: round(v, 4) for lang, v in exact.items()}, "recall": {}, "ms": {}}
        for lang in ("en", "zh"):
            for kind in kinds:
                hits = {m: [0, 0] for m in METHODS}
                spent = {m: 0.0 for m in ("vector", "caption")}
                queries = _queries(truth, lang, kind)
                for query, right in queries:
                    t = time.perf_counter()
                    vector = [h["path"] for h in search.by_text(query, depth)["hits"]]
                    spent["vector"] += time.perf_counter() - t
                    t = time.perf_counter()
                    text = [p for p, _ in caption_ranking(search.store, query, depth)]
                    spent["caption"] += time.perf_counter() - t
                    fused = [p for p, _ in rrf_fuse([vector, text])]
                    for method, ranking in (("vector", vector), ("caption", text), ("hybrid", fused)):
                        hits[method][0] += bool(right.intersection(ranking[:1]))
                        hits[method][1] += bool(right.intersection(ranking[:5]))
                n = len(queries)
                report["recall"][f"{lang}/{kind}"] = {m: {"R@1": round(h[0] / n, 4), "R@5": round(h[1] / n, 4)}
                                                      for m, h in hits.items()}
                report["ms"][f"{lang}/{kind}"] = {m: round(1000 * s / n, 2) for m, s in spent.items()}
        report["queries_per_row"] = scenes
        report["queries_s"] = round(time.perf_counter() - started, 1)
        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
        log(format_report(report))
        return report
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def format_report(report: dict) -> str:
    lines = [f"caption text search vs vector search, {report['scenes']} held-out toy scenes (seed {report['seed']}), "
             f"one query per scene per row, rankings {report['depth']} deep, RRF k={report['rrf_k']}; the toy "
             f"captioner wrote the scene's own wording for {report['captioner_exact']['en']:.1%} (en) / "
             f"{report['captioner_exact']['zh']:.1%} (zh) of the images; load {report['load_average']}",
             f"{'queries':18s} " + " ".join(f"{m + ' R@1':>12s} {m + ' R@5':>12s}" for m in METHODS)]
    for row, figures in report["recall"].items():
        lines.append(f"{row:18s} " + " ".join(f"{figures[m]['R@1']:12.3f} {figures[m]['R@5']:12.3f}" for m in METHODS))
    lines.append(f"setup (library, index, captions) {report['setup_s']} s, queries {report['queries_s']} s; "
                 "ms per query: " + "; ".join(f"{row} vector {ms['vector']}, caption {ms['caption']}"
                                             for row, ms in report["ms"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=600, help="held-out toy scenes in the library")
    parser.add_argument("--seed", type=int, default=31337, help="scene seed (the twins were trained on others)")
    parser.add_argument("--workdir", default=None, help="keep the library and index here (default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():  # the toy banners
        report = measure(args.scenes, args.seed, args.workdir, log=(lambda *_: None) if args.json else print)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
