"""``python -m feature_store``: build, inspect and validate feature stores."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from feature_store import inspect as inspect_mod
from feature_store.cli import Command, run_cli
from feature_store.store import open_store


def _add_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="a store directory, or a folder of stores (e.g. data/demo)")
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="only the oracle accuracy table of a folder of planted stores (its planted.json)",
    )


def _run_inspect(args: argparse.Namespace) -> int:
    if args.oracle:
        from feature_store import synthetic

        print(synthetic.format_table(synthetic.load_planted(args.store)))
    else:
        print(inspect_mod.summarize_path(args.store))
    return 0


def _add_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="a store directory")
    parser.add_argument("--deep", action="store_true", help="also check checksums and NaN/Inf")


def _run_validate(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    if args.deep:
        store.validate_deep()
    print(
        f"{store.path}: ok ({len(store)} clips, {len(store.array)} vectors, dim {store.dim}"
        f"{', checksums and values checked' if args.deep else ''})"
    )
    return 0


def _add_synth(parser: argparse.ArgumentParser) -> None:
    from feature_store import synthetic

    synthetic.add_arguments(parser)


def _run_synth(args: argparse.Namespace) -> int:
    from feature_store import synthetic

    return synthetic.run(args)


def _add_build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="CSV with clip_id,path,split,label")
    parser.add_argument(
        "--recipe",
        required=True,
        nargs="+",
        action="extend",
        help="a store recipe, e.g. conf/store/dlib-resnet-basic.yaml; several (repeat the "
        "option, or a shell glob such as conf/store/dlib-*.yaml) build in one pass over the videos",
    )
    parser.add_argument(
        "--out",
        required=True,
        help="the store directory to write; with several recipes (or --per-recipe) the folder "
        "ROOT that gets one store per recipe, ROOT/<recipe file stem>/",
    )
    parser.add_argument(
        "--per-recipe",
        action="store_true",
        help="treat --out as ROOT even for one recipe (to reuse ROOT's cached face tracks)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="parallel worker processes (or Ray actors)"
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="list bad clips in rejected.csv and go on"
    )
    parser.add_argument(
        "--ray", action="store_true", help="spread clips over the Ray cluster's workers"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing store at --out")


def _run_build(args: argparse.Namespace) -> int:
    from feature_store.build import build_store
    from feature_store.matrix_build import build_stores

    options = dict(workers=args.workers, skip_bad=args.skip_bad, use_ray=args.ray, force=args.force)
    if len(args.recipe) > 1 or args.per_recipe:
        stores = list(build_stores(args.manifest, args.recipe, args.out, **options).values())
    else:
        stores = [build_store(args.manifest, args.recipe[0], args.out, **options)]
    for store in stores:
        rejected = store.meta.get("num_rejected", 0)
        print(
            f"{store.path}: {len(store)} clips, {len(store.array)} vectors, dim {store.dim}"
            f"{f', {rejected} rejected (rejected.csv)' if rejected else ''}"
        )
    return 0


def _add_train_audio(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="CSV with clip_id,path,split,label")
    parser.add_argument(
        "--recipe", required=True, help="an audio recipe, e.g. conf/store/audio-spectrogram.yaml"
    )
    parser.add_argument("--out", required=True, help="the checkpoint file to write (best epoch)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes computing the spectrograms"
    )


def _run_train_audio(args: argparse.Namespace) -> int:
    from feature_store.audio_cnn import train_audio

    result = train_audio(
        args.manifest, args.recipe, args.out, epochs=args.epochs, workers=args.workers
    )
    print(
        f"{args.out}: best val accuracy {result['best_val_acc']:.3f} at epoch "
        f"{result['best_epoch']} (MLflow run {result['run_id']})"
    )
    return 0


COMMANDS: dict[str, Command] = {
    "build": Command(
        "build stores from raw clips: a manifest CSV and one or more recipes (resumable)",
        _add_build,
        _run_build,
    ),
    "train-audio": Command(
        "train the audio AlexNet on a manifest's train split, keep the best-val checkpoint",
        _add_train_audio,
        _run_train_audio,
    ),
    "synth": Command(
        "write the planted benchmark stores (known oracle accuracy)", _add_synth, _run_synth
    ),
    "inspect": Command(
        "print a store's summary: clips per split and class, vectors, oracle",
        _add_inspect,
        _run_inspect,
    ),
    "validate": Command(
        "check a store's format, shapes and offsets (--deep: checksums, NaN/Inf)",
        _add_validate,
        _run_validate,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("feature_store", __doc__.strip(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
