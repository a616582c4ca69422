"""``python -m feature_store manifest``: its arguments and what runs it. The readers load only in
``run``, so ``--help`` stays cheap.

    python -m feature_store manifest ravdess data/RAVDESS --out data/ravdess/manifest.csv \\
        [--folds 6] [--seed 0] [--force]

Fixed protocols (AFEW, MELD) keep the dataset's splits; fold protocols (DFEW, MAFW) mark every
clip ``train`` with the official fold whose test it is in; speaker protocols (RAVDESS, CREMA-D)
deal the actors into ``--folds`` folds with ``--seed`` (recorded in the YAML's protocol).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from feature_store.options import add_force

NAMES = "afew, dfew, mafw, ravdess, crema-d, meld"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help=f"the dataset: {NAMES}")
    parser.add_argument("root", help="the dataset's folder, laid out as its authors distribute it")
    parser.add_argument(
        "--out", required=True, help="the manifest CSV to write; its MANIFEST.yaml goes beside it"
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=None,
        help="speaker protocols: speaker-independent folds (default RAVDESS 6, CREMA-D 5)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="speaker protocols: seed of the fold draw (default 0)",
    )
    parser.add_argument(
        "--speaker-folds",
        choices=("shuffled", "blocks"),
        default=None,
        help="speaker protocols: shuffled (by --seed, dealt round robin; default) or blocks "
        "(contiguous runs of the sorted actor ids, e.g. RAVDESS 1-4, 5-8, ... as MAE-DFER)",
    )
    add_force(parser, "replace a manifest (and its YAML) already at --out")


def run(args: argparse.Namespace) -> int:
    from avcore.datasets import ProtocolSpec
    from feature_store.datasets import DatasetError, reader
    from feature_store.datasets.common import speaker_folds
    from feature_store.datasets.write import check_out, summary, write_manifest
    from feature_store.manifest_spec import ManifestSpec

    chosen = reader(args.dataset)
    name, protocol = chosen.profile.name, chosen.profile.protocol
    speaker_options = (args.folds, args.seed, args.speaker_folds)
    if protocol.kind != "speakers" and any(option is not None for option in speaker_options):
        fixed = "its own splits" if protocol.kind == "fixed" else f"{protocol.folds} official folds"
        raise DatasetError(
            f"--folds, --seed and --speaker-folds are for speaker protocols; {name} has {fixed}"
        )
    if args.speaker_folds == "blocks" and args.seed is not None:
        raise DatasetError("--seed draws shuffled speaker folds; blocks take no seed")
    out = Path(args.out)
    check_out(out, force=args.force)
    root = Path(args.root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (the {name} dataset's root)")
    listing = chosen.read(root)
    if not listing.clips:
        missing = f" (first missing: {listing.first_missing})" if listing.first_missing else ""
        left = ", ".join(f"{count} {reason}" for reason, count in sorted(listing.excluded.items()))
        raise DatasetError(f"{root}: no {name} clips to write; left out: {left}{missing}")
    if protocol.kind == "speakers":
        folds = protocol.folds if args.folds is None else args.folds
        seed = (protocol.seed or 0) if args.seed is None else args.seed
        how = args.speaker_folds or "shuffled"
        assignment = speaker_folds((clip.speaker for clip in listing.clips), folds, seed, how)
        listing.clips = [replace(clip, fold=assignment[clip.speaker]) for clip in listing.clips]
        protocol = ProtocolSpec("speakers", folds, seed if how == "shuffled" else None, how)
    spec = ManifestSpec(
        dataset=name,
        classes=chosen.profile.classes,
        protocol=protocol,
        excluded=dict(sorted(listing.excluded.items())),
        source=chosen.source,
    )
    write_manifest(out, listing.clips, spec)
    print(summary(out, listing, spec))
    return 0
