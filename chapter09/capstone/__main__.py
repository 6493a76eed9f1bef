"""python -m chapter09.capstone {index,search,caption,match,dedup,eval,finetune,serve,bench} --help

Imports of the package's own modules stay inside the functions here on purpose: each ``cmd_*`` imports what its
command needs, and the full parser's builders what only they use, so ``--help`` and the quick search
(``_quick_search``: no torch, transformers or lancedb) load nothing another command needs."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from ..cli import add_lang_option, add_model_options, run_cli
from ..errors import UsageError
from ..exercises.i18n import resolve, speaking
from ..models import Settings
from ..precision import PRECISION_CHOICES
from .cli_text import dedup_lines, match_lines, search_lines
from .search import quick as quick_search

_RESULT_STREAM = []  # where results go: stdout, even while chatter is sent to stderr for --json


def _print(data, as_json: bool, text: str) -> None:
    stream = _RESULT_STREAM[-1] if _RESULT_STREAM else sys.stdout
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str) if as_json else text, file=stream)


def cmd_index(args) -> int:
    from .index.build import build_index, decide_precision, prestart_decode_workers_for
    from .options import IndexOptions
    from .store.database import is_uri
    from .store.lock import lock_for

    options = IndexOptions.from_args(args)  # a bad flag is refused before anything is opened or measured
    # refuse (or wait) before measuring anything: a folder's flock, an object store's conditional-put lock
    lock = lock_for(args.index, args.wait) if is_uri(args.index) or Path(args.index).is_dir() else None
    if lock is not None:
        lock.acquire().release()
    roles = ["clip"] + (["chinese_clip"] if args.chinese_clip else [])
    settings = Settings.from_args(args)
    prestart_decode_workers_for(args.library, args.index, settings, roles, options)  # overlaps the check below
    decision = decide_precision(args.library, args.index, settings, roles, args.precision)
    if args.watch:
        from .index.watch import print_batch, watch_library

        stream = _RESULT_STREAM[-1] if _RESULT_STREAM else sys.stdout
        watch_library(args.library, args.index, decision.encoders, options, debounce_s=args.debounce_s,
                      rescan_s=args.rescan_s, report=print_batch(args.json, stream), precomputed=decision.sample_rows)
        return 0
    summary = build_index(args.library, args.index, decision.encoders, options, precomputed=decision.sample_rows)
    precision = decision.report
    _print({**summary.to_json(), "precision": precision}, args.json,
           summary.text() + f"\n  precision {precision['precision']}: {precision['reason']}")
    return 0


def search_request(searcher, args):
    """The ``SearchRequest`` the ``search`` flags ask for: terms (``--text``, ``--image``, ``--add``,
    ``--subtract``), filters, caption text, hybrid."""
    from .search.filters import Filters
    from .search.library_search import SearchRequest, Term
    from .search.queries import QueryError, parse_weighted

    terms = []
    if args.text is not None:
        weight, text = parse_weighted(args.text)
        terms.append(Term("text", text, weight))
    if args.image is not None:
        term = searcher.term(args.image)
        if term.kind == "text":
            raise QueryError(f"--image {args.image}: no such image file, and no indexed image at that path")
        terms.append(term)
    terms += [searcher.term(raw) for raw in args.add or ()]
    terms += [searcher.term(raw, -1.0) for raw in args.subtract or ()]
    filters = Filters.parse(args.folder, args.taken_after, args.taken_before, args.camera, args.type, args.min_size,
                            args.min_width, args.min_height, args.place, args.near, library=searcher.store.library)
    return SearchRequest(tuple(terms), args.k, args.strategy, filters, args.caption_text, args.hybrid,
                         ocr_text=args.ocr_text)


def cmd_search(args) -> int:
    from .search.library_search import LibrarySearch
    from .search.queries import QueryError

    searcher = LibrarySearch(args.index, Settings.from_args(args), mode=args.search)
    try:
        result = searcher.run(search_request(searcher, args))
    except QueryError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.paths_only:  # for pipes: one absolute path a line, nothing else on stdout
        _print(None, False, "\n".join(str(searcher.store.absolute(h.path)) for h in result.hits))
        return 0
    lines = search_lines(result, searcher, args.strategy)
    _print(result.to_json(), args.json, "\n".join(lines))
    _leave_quick_snapshot(searcher, args)
    return 0


_FILTER_FLAGS = ("folder", "taken_after", "taken_before", "camera", "type", "min_size", "min_width", "min_height",
                 "place", "near")


def _leave_quick_snapshot(searcher, args) -> None:
    """After a full search of the kind the quick search answers, its snapshot for the next cold one."""
    flags = {name: getattr(args, name) for name in quick_search.MODEL_FLAGS}
    plain = args.image is None and not args.add and not args.subtract and args.caption_text is None \
        and args.ocr_text is None and not args.hybrid and not args.paths_only \
        and all(getattr(args, name) is None for name in _FILTER_FLAGS)
    if not plain or args.text is None or not quick_search.enabled():
        return
    from .search.quick_export import write_snapshot

    try:
        write_snapshot(searcher, flags, args.text, args.strategy)
    except Exception as error:  # the search has answered: a snapshot not written costs the next one speed only
        print(f"[search] note: no quick snapshot written ({type(error).__name__}: {error})", file=sys.stderr)


class _Refusing(argparse.ArgumentParser):
    def error(self, message):  # the full parser says what is wrong: this one only declines
        raise ValueError(message)


def _quick_parser() -> argparse.ArgumentParser:
    """The ``search`` flags the quick search honours (``quick_search``); any other sends it to the full search."""
    parser = _Refusing(add_help=False, exit_on_error=False)
    add_model_options(parser)
    add_lang_option(parser)
    _precision_option(parser, "")
    _clip_model_option(parser, "")
    parser.add_argument("--index")
    parser.add_argument("--text")
    parser.add_argument("--k", type=_positive_int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--search", default="auto")
    return parser


def _quick_search(argv: list[str]) -> int | None:
    """A plain text ``search`` answered from the index's quick snapshot, without torch (``quick_search``); None
    when it cannot answer exactly as the full search would (other flags, a stale or missing snapshot...)."""
    if not argv or argv[0] != "search" or not quick_search.enabled():
        return None
    try:
        args, rest = _quick_parser().parse_known_args(argv[1:])
        lang = resolve(args.lang)
    except (ValueError, argparse.ArgumentError):
        return None
    if rest or args.index is None or args.text is None:
        return None
    snapshot = quick_search.open_snapshot(args.index, {name: getattr(args, name) for name in quick_search.MODEL_FLAGS})
    if snapshot is None or not snapshot.answers(args.text, args.strategy, args.search):
        return None
    try:
        answer = snapshot.search(args.text, args.k, args.strategy, lang)
    except Exception:  # a snapshot replaced while read, a file ONNX Runtime refuses: the full search answers
        return None
    if answer.announcement:
        print(answer.announcement, file=sys.stderr if args.json else sys.stdout)
    for warning in answer.warnings:
        print(f"[search] warning: {warning}", file=sys.stderr)
    with speaking(lang):
        lines = search_lines(answer.result, None, args.strategy, route=answer.route, absolute=snapshot.absolute)
    _print(answer.result.to_json(), args.json, "\n".join(lines))
    return 0


def cmd_caption(args) -> int:
    from ..images import load_image
    from .caption.describe import caption_images, caption_route
    from .options import parse_langs

    if args.index:
        from .caption.run import caption_index
        from .options import CaptionOptions

        if args.images:
            raise UsageError("give image files or --index INDEX, not both")
        summary = caption_index(args.index, settings=Settings.from_args(args), options=CaptionOptions.from_args(args))
        _print(summary.to_json(), args.json, summary.text())
        return 0
    if not args.images:
        raise UsageError("give image files to caption, or --index INDEX to caption every indexed image")
    langs = parse_langs(args.lang)
    images = [load_image(path) for path in args.images]
    settings = Settings.from_args(args)
    captions = caption_images(images, langs, settings)
    route = caption_route(settings)
    result = {"route": route, "captions": dict(zip(args.images, captions))}
    _print(result, args.json, f"(route: {route})\n" + "\n".join(
        f"{p}\n" + "\n".join(f"  [{l}] {c}" for l, c in caps.items()) for p, caps in zip(args.images, captions)))
    return 0


def cmd_match(args) -> int:
    from .caption.describe import match_scores

    rows = match_scores(args.image, args.texts, args.strategy, Settings.from_args(args))
    result = {"image": args.image, "scores": rows}
    _print(result, args.json, "\n".join(match_lines(rows)))
    return 0


def cmd_dedup(args) -> int:
    from .search.dedup import find_duplicates

    result = find_duplicates(args.index, args.threshold)
    _print(result, args.json, "\n".join(dedup_lines(result)))
    return 0


def cmd_eval(args) -> int:
    from .evaluate import (
        compare_strategies,
        evaluate_captions,
        evaluate_retrieval,
        format_captions,
        format_comparison,
        format_retrieval,
        load_dataset,
        missing_note,
    )

    data = load_dataset(args.dataset, args.images, args.split)
    if data.missing and args.json:  # the text report says it in its heading
        print(f"[eval] {missing_note(data)}", file=sys.stderr)
    if args.captions:
        report = evaluate_captions(data, settings=Settings.from_args(args), limit=args.limit)
        text = format_captions(report)
    elif "," in args.strategy or args.strategy == "all":
        report = compare_strategies(data, args.strategy, Settings.from_args(args))
        text = format_comparison(report)
    else:
        report = evaluate_retrieval(data, args.strategy, Settings.from_args(args))
        text = format_retrieval(report)
    _print(report, args.json, text)
    return 0


def cmd_finetune(args) -> int:
    from .finetune import finetune

    report = finetune(args.dataset, args.out, val=args.val, steps=args.steps, lr=args.lr,
                      batch_size=args.batch_size, settings=Settings.from_args(args))
    _print(report, args.json, json.dumps(report, indent=2, ensure_ascii=False))
    return 0


def cmd_serve(args) -> int:
    from .web.serve import parse_logins, serve

    logins = parse_logins(args.auth, args.auth_file)
    if args.no_auth and logins:
        raise UsageError("--no-auth and a login (--auth, --auth-file or $CH09_SERVE_AUTH) contradict each other: "
                         "give one of them")
    serve(args.index, host=args.host, port=args.port, settings=Settings.from_args(args),
          max_upload_mb=args.max_upload_mb, auth=logins, no_auth=args.no_auth, lang=args.lang)
    return 0


def cmd_bench(args) -> int:
    from .bench import BenchOptions, run_bench

    report = run_bench(BenchOptions.from_args(args), quiet=args.json)
    if args.json:
        _print(report, True, "")
    return 1 if report["failed"] else 0


def _precision_option(parser, help_text: str) -> None:
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=None, help=help_text)


def _clip_model_option(parser, help_text: str) -> None:
    parser.add_argument("--clip-model", default=None, metavar="HUB_ID_OR_FOLDER", help=help_text)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: must be 1 or more")
    return number


def _strategy_list(value: str) -> str:
    from .search.queries import STRATEGIES

    names = [v.strip() for v in value.split(",") if v.strip()]
    if value != "all" and (not names or any(n not in STRATEGIES for n in names)):
        raise argparse.ArgumentTypeError(f"{value!r}: use all, or a comma list of {', '.join(STRATEGIES)}")
    return value


def _engine_options(p, engine_help: str, actors_help: str) -> None:
    """--engine, --ray-address, --actors: the same flags for `index` and `caption --index`, each its own help."""
    from .engines import ENGINES

    p.add_argument("--engine", choices=ENGINES, default="local", help=engine_help)
    p.add_argument("--ray-address", default=None,
                   help="with --engine ray: join a running Ray cluster (default: $RAY_ADDRESS, else start a local Ray)")
    p.add_argument("--actors", type=_positive_int, default=None, help=actors_help)


def build_parser() -> argparse.ArgumentParser:
    from .search.dedup import NEAR_DUPLICATE_COSINE
    from .search.queries import STRATEGIES

    parser = argparse.ArgumentParser(prog="python -m chapter09.capstone",
                                     description="Bilingual captioning and image-library retrieval.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help_text, function):
        p = sub.add_parser(name, help=help_text)
        add_model_options(p)
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.set_defaults(function=function)
        return p

    _index_flags(_speaks(command("index", "index (or update) a folder of images", cmd_index)))
    _search_flags(_speaks(command("search", "search an index by text (English/Chinese), images, both combined, or "
                                  "caption text", cmd_search)))
    _caption_flags(command("caption", "caption images in English and Chinese (or every image of an index)",
                           cmd_caption))
    p = command("match", "image-text match scores", cmd_match)
    p.add_argument("image")
    p.add_argument("texts", nargs="+")
    p.add_argument("--strategy", choices=STRATEGIES, default="auto", help="how Chinese texts are read (as search)")
    _clip_model_option(p, "a CLIP-family checkpoint (hub id or save_pretrained folder) instead of the default; "
                          "SigLIP's probabilities are independent sigmoids, the others' a softmax over the texts")

    p = command("dedup", "exact and near duplicates in an index", cmd_dedup)
    p.add_argument("--index", required=True)
    p.add_argument("--threshold", type=float, default=NEAR_DUPLICATE_COSINE,
                   help=f"cosine for near duplicates (default {NEAR_DUPLICATE_COSINE})")
    _eval_flags(_speaks(command("eval", "Recall@1/5/10 (or --captions: BLEU-4, CIDEr-D) on a data set", cmd_eval)))
    _finetune_flags(command("finetune", "contrastive fine-tuning of CLIP on a data set", cmd_finetune))
    _serve_flags(command("serve", "web UI (Gradio)", cmd_serve))
    _bench_flags(command("bench", "speed: the indexer per precision against the model alone and the naive loop; "
                         "fidelity; store; exact vs ANN search; start-up; captioning", cmd_bench))
    return parser


def _speaks(p):
    """The lessons' --lang en|zh on a command whose report is written in words (default: $CH09_LANG, else en);
    ``caption`` and ``serve`` keep their own --lang (the captions' languages, the page's)."""
    add_lang_option(p)
    p.set_defaults(speaks=True)
    return p


def _index_flags(p) -> None:
    p.add_argument("library")
    p.add_argument("--index", required=True, help="folder for the index")
    p.add_argument("--chinese-clip", action="store_true", help="also store Chinese-CLIP image vectors")
    _clip_model_option(p, "a CLIP-family checkpoint for the clip vectors instead of the default: a hub id or a "
                          "save_pretrained folder of CLIPModel, SiglipModel, ChineseCLIPModel or AltCLIPModel "
                          "(README: Choosing a model); its vectors get a table of their own")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 2)")
    p.add_argument("--no-progress", action="store_true")
    _engine_options(p, "local: DataLoader workers + encoding here; ray: Ray Data tasks decode, an actor pool "
                       "encodes (pip install -r requirements-scale.txt)",
                    "encoding actors, one model each (default: GPUs / --gpus-per-actor; on a CPU-only cluster "
                    "3/4 of its CPUs, one CPU per actor, at least one CPU left to decoding)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="GPUs per encoding actor on a CUDA cluster")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="if another run is updating this index, wait up to SECONDS for it (default: refuse)")
    _precision_option(p, "fp32, bf16 or int8 (dynamic quantisation); auto (default, unless --dtype is given): "
                         "the fastest whose fidelity against fp32 on a sample of this library passes the bar")
    from .index.walk import DEFAULT_EXCLUDES

    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out folders and files whose name or path inside the library matches this glob "
                        "(repeatable; case-insensitive; e.g. 'raw', '2019/drafts', '*.tmp.jpg'); indexed images "
                        "it matches are removed from the index")
    p.add_argument("--no-default-excludes", action="store_true",
                   help=f"also index the folders left out by default: {', '.join(DEFAULT_EXCLUDES)}")
    p.add_argument("--ocr", action="store_true",
                   help="also read the text in each new or changed photo (RapidOCR, English and Chinese), for "
                        "`search --ocr-text`; resumable, each file's bytes read once")
    p.add_argument("--video-every", type=float, default=2.0, metavar="SECONDS",
                   help="videos (mp4, mov, webm, mkv): index a frame every SECONDS (default 2)")
    p.add_argument("--video-scene", type=float, default=20.0, metavar="DIFF",
                   help="videos: also a frame where the picture differs from the last one taken by more than DIFF "
                        "(mean absolute grey difference, 0-255; default 20)")
    p.add_argument("--video-max-frames", type=int, default=100, metavar="N",
                   help="videos: at most N frames each (a longer video's interval is stretched; default 100)")
    p.add_argument("--watch", action="store_true",
                   help="after indexing, keep watching the library and index what is added, changed, moved or "
                        "deleted (batched; the lock is held only while a batch writes); Ctrl-C stops")
    p.add_argument("--debounce-s", type=float, default=2.0, metavar="SECONDS",
                   help="with --watch: start a batch after SECONDS without new events (default 2)")
    p.add_argument("--rescan-s", type=float, default=None, metavar="SECONDS",
                   help="with --watch: a full rescan every SECONDS, for changes events miss (default 600; 60 where "
                        "file-system events are unavailable; 0: none)")


def _search_flags(p) -> None:
    from .search.queries import STRATEGIES

    p.add_argument("--index", required=True)
    p.add_argument("--text", help="[WEIGHT:]TEXT, English or Chinese (e.g. \"2:a dog on a beach\")")
    p.add_argument("--image", help="[WEIGHT:]an image file, or a path the index holds (its stored vector)")
    p.add_argument("--add", action="append", metavar="TERM",
                   help="add a term: [WEIGHT:]TEXT, IMAGE_FILE or INDEXED_PATH (repeatable)")
    p.add_argument("--subtract", action="append", metavar="TERM", help="subtract a term, as --add (repeatable)")
    p.add_argument("--caption-text", default=None, help="search the stored captions' words (English or Chinese)")
    p.add_argument("--ocr-text", default=None, metavar="WORDS",
                   help="search the text read in the photos (after `index --ocr`), English or Chinese; with "
                        "--hybrid fused with the vector query")
    p.add_argument("--hybrid", action="store_true",
                   help="fuse the vector query and the caption text (default: the --text) or --ocr-text by "
                        "reciprocal rank")
    p.add_argument("--folder", help="only images under this folder of the library (relative, or absolute inside it)")
    p.add_argument("--taken-after", metavar="DATE", help="taken on or after DATE (ISO, e.g. 2024-05-01)")
    p.add_argument("--taken-before", metavar="DATE", help="taken before DATE (ISO; that day excluded)")
    p.add_argument("--camera", help="camera make or model contains this (case-insensitive)")
    p.add_argument("--type", help="file types, a comma list: jpeg,png,webp,heif,avif,gif,tiff,bmp")
    p.add_argument("--min-size", type=_positive_int, metavar="PX", help="shorter side at least PX pixels")
    p.add_argument("--min-width", type=_positive_int, metavar="PX")
    p.add_argument("--min-height", type=_positive_int, metavar="PX")
    p.add_argument("--place", metavar="NAME", help="taken in this city, region or country (English or Chinese, "
                   "e.g. Hangzhou, 杭州, Zhejiang, France; from the photos' EXIF GPS)")
    p.add_argument("--near", metavar="LAT,LON,KM", help="taken within KM kilometres of LAT,LON (EXIF GPS), "
                   "e.g. 30.27,120.15,50")
    p.add_argument("--paths-only", action="store_true", help="print one absolute path a line, nothing else")
    p.add_argument("--k", type=_positive_int, default=10)
    p.add_argument("--strategy", choices=STRATEGIES, default="auto",
                   help="for Chinese queries: translate, multilingual, chinese_clip or clip (default auto)")
    p.add_argument("--search", choices=("auto", "exact", "ann"), default="auto")
    _precision_option(p, "precision of the query encoder (auto: the one the index was built with)")
    _clip_model_option(p, "the CLIP-family checkpoint that reads queries (default: the one the index was built "
                          "with; another one is refused, naming both)")


def _caption_flags(p) -> None:
    p.add_argument("images", nargs="*")
    p.add_argument("--lang", default="en,zh", help="comma list of en, zh (default en,zh)")
    p.add_argument("--index", default=None,
                   help="caption every indexed image once, into the index (resumable; `search` shows them)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="with --index: wait up to SECONDS for a run updating the index (default: refuse)")
    p.add_argument("--captioner", choices=("blip", "vit-gpt2"), default="blip",
                   help="blip (BLIP-base, the default: better captions) or vit-gpt2 (ViT + GPT-2: lighter, faster)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "int8"), default=None,
                   help="the captioner's precision: fp32, int8 (dynamic quantisation) or bf16; auto (default with "
                        "--index): the fastest whose greedy captions on a sample of the library agree with fp32's "
                        "(token agreement >= 0.98, exact captions >= 0.90); without --index: fp32")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="images per generate call (default 8)")
    _engine_options(p, "with --index: local (here), or ray: captioner (and translator) actors on a Ray cluster, "
                       "the captions written here (pip install -r requirements-scale.txt)",
                    "with --engine ray: captioner actors (default: every CPU of the cluster, one each; a "
                    "quarter to translators on an English-only captioner)")


def _eval_flags(p) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--images", help="image folder for COCO (default: found by the split name, e.g. val2017/ "
                                    "beside annotations/)")
    p.add_argument("--split", help="which split when a folder holds several: COCO (val2017) or Chinese-CLIP "
                                   "tsv prefix (valid)")
    p.add_argument("--strategy", default="auto", type=_strategy_list,
                   help="auto, one of clip/translate/multilingual/chinese_clip, a comma list of them, or all "
                        "(compares every Chinese-query strategy side by side)")
    p.add_argument("--captions", action="store_true", help="measure the captioner instead")
    p.add_argument("--limit", type=int, default=200, help="images for --captions (default 200)")


def _finetune_flags(p) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--val", help="held-out data set (default: 20%% of --dataset's images)")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=64)


def _serve_flags(p) -> None:
    p.add_argument("--index", required=True)
    p.add_argument("--host", default="127.0.0.1",
                   help="default loopback only; another (0.0.0.0: every network) needs a login or --no-auth")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=float, default=20)
    p.add_argument("--lang", choices=("en", "zh", "auto"), default="auto",
                   help="the page's language: en, zh, or auto (each browser's own; default)")
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                   help="a login for the page and the API (repeatable); the password shows in `ps` and shell "
                        "history: prefer --auth-file or $CH09_SERVE_AUTH=USER:PASSWORD[,USER:PASSWORD]")
    p.add_argument("--auth-file", default=None, metavar="FILE", help="logins, one USER:PASSWORD per line")
    p.add_argument("--no-auth", action="store_true",
                   help="serve a non-loopback --host without a login (anyone who reaches it sees every photo)")
    _precision_option(p, "precision of the query encoder (auto: the one the index was built with)")
    _clip_model_option(p, "the CLIP-family checkpoint that reads queries (default: the one the index was built "
                          "with; another one is refused, naming both)")


def _bench_flags(p) -> None:
    p.add_argument("--images", type=int, default=512,
                   help="photo-sized JPEGs the indexer encodes per precision (0 skips encoding)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward, pipeline and model alone (as `index`)")
    p.add_argument("--naive-images", type=int, default=None, help="images for the naive loop (default min(64, --images))")
    p.add_argument("--no-startup", action="store_true", help="skip the search/serve start-up probes")
    p.add_argument("--no-engines", action="store_true", help="skip the --engine local vs ray row")
    p.add_argument("--no-captioning", action="store_true", help="skip the captioning rows")
    p.add_argument("--caption-images", type=_positive_int, default=8,
                   help="photos captioned end to end per captioner and precision (at least 2x --caption-batch-size)")
    p.add_argument("--caption-batch-size", type=_positive_int, default=4,
                   help="images per batch end to end (also timed model alone)")
    p.add_argument("--caption-batch-sizes", default="1,4", help="batch sizes timed model alone")
    p.add_argument("--caption-tokens", type=_positive_int, default=20, help="new tokens forced per caption")
    p.add_argument("--captioners", default="blip,vit-gpt2", help="comma list of blip, vit-gpt2")
    p.add_argument("--sizes", default="10000,100000,1000000", help="library sizes for the search table")
    p.add_argument("--append-rows", type=int, default=None,
                   help="rows appended through the store API (default: the largest size; 0 skips)")
    p.add_argument("--queries", type=int, default=100, help="timed queries per size")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="write the report (JSON) to FILE after every part, so an interruption loses nothing measured")
    p.add_argument("--soak-s", type=float, default=0.0, metavar="N",
                   help="also soak the JSON API for N seconds (20 clients, bench/soak.py; 600: issue 34's); "
                        "default 0: skipped")
    p.add_argument("--soak-images", type=int, default=10_000, help="images in the soak's toy index (default 10000)")
    p.add_argument("--web-images", type=int, default=0, metavar="N",
                   help="also time the JSON API (1 and 20 clients) and the page in headless Chromium on a toy index "
                        "of N images (bench/web.py; 10000: issue 34's); default 0: skipped")
    p.add_argument("--rclip-python", default=None, metavar="PYTHON",
                   help="an interpreter with rclip==3.3.0: also time a first index beside rclip's "
                        "(bench/peer_rclip.py); default: skipped")
    p.add_argument("--peer-images", type=int, default=512, help="photos the comparison with rclip indexes (default 512)")


def main(argv=None) -> int:
    quick = _quick_search(sys.argv[1:] if argv is None else list(argv))
    if quick is not None:
        return quick
    parser = build_parser()
    args = parser.parse_args(argv)
    lang = None
    if getattr(args, "speaks", False):  # --lang, else $CH09_LANG, else en; a $CH09_LANG it does not speak is refused
        try:
            lang = resolve(args.lang)
        except ValueError as error:
            parser.error(str(error))
    _RESULT_STREAM.append(sys.stdout)
    try:
        # with --json (or --paths-only), stdout carries the result alone: model banners and notes go to stderr
        quiet = getattr(args, "json", False) or getattr(args, "paths_only", False)
        # --lang zh (index, search, eval): the report's words, through the helper the lessons use
        with contextlib.redirect_stdout(sys.stderr) if quiet else contextlib.nullcontext(), \
                speaking(lang) if lang else contextlib.nullcontext():
            return run_cli(lambda: args.function(args))
    finally:
        _RESULT_STREAM.pop()


if __name__ == "__main__":
    sys.exit(main())
