"""``python -m chapter09.toyworld {make,eval,train}``: data sets, measurement and training of the twins."""
from __future__ import annotations

import argparse
import json
import sys

from ..cli import run_cli
from ..models import Settings
from .scenes import SPLITS, write_dataset
from .trainers import TRAINERS, train_role


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chapter09.toyworld", description="The toy world: make data sets, evaluate, train twins.")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make", help="write a data set of scenes, captions and questions")
    make.add_argument("out_dir")
    make.add_argument("--n", type=int, default=600, help="number of images (default 600)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--split", choices=SPLITS, default="heldout",
                      help="heldout (all colour x shape pairs, the default), hard (2-4 objects in families "
                           "of three whose captions share every word: binding and position swaps) or train")
    evaluate = sub.add_parser("eval", help="measure the toy CLIP on a data set")
    evaluate.add_argument("data_dir")
    evaluate.add_argument("--json", action="store_true", help="print the figures as JSON")
    evaluate.add_argument("--models", choices=("auto", "real", "toy"), default="toy",
                          help="which CLIP to measure (default: the toy twin)")
    train = sub.add_parser("train", help="train a toy twin from scratch and save it")
    train.add_argument("role", choices=sorted(TRAINERS), help="model role to train")
    train.add_argument("--out", help="where to save (default: chapter09/toyworld/twins/<role>)")
    train.add_argument("--steps", type=int, help="training steps (default: the role's recipe)")
    train.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "make" and args.n < 1:
        parser.error("--n must be at least 1")
    return run_cli(lambda: run(args))


def run(args) -> int:
    if args.command == "make":
        out = write_dataset(args.out_dir, args.n, args.seed, args.split)
        print(f"wrote {args.n} {args.split} scenes to {out} (images/, captions.jsonl, qa.jsonl, scenes.jsonl)")
        return 0
    if args.command == "eval":
        from .eval import evaluate_clip_on_dataset, format_report

        report = evaluate_clip_on_dataset(args.data_dir, Settings(args.models))
        print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else format_report(report))
        return 0
    train_role(args.role, out_dir=args.out, steps=args.steps, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
