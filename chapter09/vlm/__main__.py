"""The tiny VLM's command line: make toy data, train, evaluate, caption (``python -m chapter09.vlm --help``).

    python -m chapter09.vlm toy-data DATA --n 3000 --split train    # images/ + captions.json
    python -m chapter09.vlm train DATA/captions.json --out runs/tiny_vlm [--lm toy|Qwen/Qwen3-0.6B]
    python -m chapter09.vlm eval runs/tiny_vlm HELDOUT/captions.json
    python -m chapter09.vlm generate runs/tiny_vlm image1.png image2.png
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ..cli import add_model_options, run_cli
from ..images import load_image
from ..models import Settings
from .tiny import build, evaluate, load, read_captions, train, write_toy_captions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.vlm", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("toy-data", help="write toy scenes as images/ + captions.json")
    data.add_argument("out_dir")
    data.add_argument("--n", type=int, default=3000)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--split", choices=("train", "heldout"), default="train")
    tr = sub.add_parser("train", help="train on a captions.json")
    tr.add_argument("captions")
    tr.add_argument("--out", required=True)
    tr.add_argument("--vision", help="a CLIP checkpoint (default: the 'clip' role, real or toy)")
    tr.add_argument("--lm", default="toy", help="'toy' (tiny Qwen3) or a causal LM id/folder, e.g. Qwen/Qwen3-0.6B")
    tr.add_argument("--steps", type=int, default=1500)
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--train-vision", action="store_true", help="train the vision tower too (default: frozen)")
    tr.add_argument("--train-last-lm-layers", type=int, default=-1,
                    help="train only the last N LM layers (and the projector); -1 trains the whole LM")
    add_model_options(tr)
    ev = sub.add_parser("eval", help="caption a captions.json and score the captions")
    ev.add_argument("model_dir")
    ev.add_argument("captions")
    ge = sub.add_parser("generate", help="caption images")
    ge.add_argument("model_dir")
    ge.add_argument("images", nargs="+")
    args = parser.parse_args(argv)

    return run_cli(lambda: run(args))


def run(args) -> int:
    if args.command == "toy-data":
        print(f"wrote {write_toy_captions(args.out_dir, args.n, args.seed, args.split)}")
        return 0
    if args.command == "train":
        torch.set_num_threads(1)  # tiny matmuls: one thread beats two that fight on a shared CPU
        images, captions = read_captions(args.captions)
        model = build(args.vision, args.lm, Settings.from_args(args))
        model.freeze(vision=not args.train_vision, train_last_lm_layers=args.train_last_lm_layers)
        print(f"tiny VLM: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
              f"{model.trainable_parameters() / 1e6:.2f} M trainable; {len(images)} captions")
        started = time.time()
        train(model, images, captions, args.steps, args.batch_size, args.lr)
        print(f"trained in {time.time() - started:.0f} s -> {model.save(args.out)}")
        return 0
    model = load(args.model_dir)
    if args.command == "eval":
        report = evaluate(model, *read_captions(args.captions))
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    for path, caption in zip(args.images, model.generate([load_image(p) for p in args.images])):
        print(f"{path}: {caption}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
