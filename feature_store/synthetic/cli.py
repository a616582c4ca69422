"""``python -m feature_store synth``: its arguments and what runs it. Imports numpy only in
``run``, so ``--help`` stays cheap.

    python -m feature_store synth --out data/demo [--dataset afew] [--scale 1] [--seed 0]
"""

from __future__ import annotations

import argparse

from avcore.datasets import PROFILES, profile
from feature_store.errors import StoreError
from feature_store.options import add_force
from feature_store.synthetic.params import Generator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, help="folder to write visual/<variant>/ and audio/<variant>/ into"
    )
    parser.add_argument(
        "--dataset",
        default=Generator.dataset,
        help=f"the dataset whose shape to plant (classes, class frequencies, clip counts, "
        f"protocol): {', '.join(PROFILES)} (default {Generator.dataset})",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="clips = the dataset's × scale, per split (AFEW: 773/383/653) or in all its folds",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the generator's seed (same seed, same stores)"
    )
    parser.add_argument(
        "--max-frames", type=int, default=Generator.max_frames, help="most face frames per clip"
    )
    add_force(parser, "replace planted stores already in --out")
    parser.add_argument(
        "--skip-existing",
        action="store_true",
        help="do nothing when --out already holds these stores (same parameters)",
    )


def run(args: argparse.Namespace) -> int:
    if args.scale <= 0:
        raise StoreError(f"--scale must be positive, got {args.scale}")
    if args.max_frames < Generator.min_frames:
        raise StoreError(
            f"--max-frames must be at least {Generator.min_frames}, got {args.max_frames}"
        )
    from feature_store.synthetic.oracle import format_table
    from feature_store.synthetic.write import generate

    generator = Generator(
        seed=args.seed,
        dataset=profile(args.dataset).name,
        scale=args.scale,
        max_frames=args.max_frames,
    )
    table = generate(args.out, generator, force=args.force, skip_existing=args.skip_existing)
    print(format_table(table))
    return 0
