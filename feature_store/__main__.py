"""``python -m feature_store``: build, inspect and validate feature stores."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from avcore.cli import Command, run_cli
from feature_store.datasets import cli as manifest_cli
from feature_store.options import add_force, add_manifest, add_workers
from feature_store.synthetic import cli as synth_cli


def _add_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="a store directory, or a folder of stores (e.g. data/demo)")
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="only the oracle accuracy table of a folder of planted stores (its planted.json)",
    )


def _run_inspect(args: argparse.Namespace) -> int:
    if args.oracle:
        from feature_store.synthetic.oracle import format_table
        from feature_store.synthetic.write import load_planted

        print(format_table(load_planted(args.store)))
    else:
        from feature_store.inspect import summarize_path

        print(summarize_path(args.store))
    return 0


def _add_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="a store directory")
    parser.add_argument("--deep", action="store_true", help="also check checksums and NaN/Inf")


def _run_validate(args: argparse.Namespace) -> int:
    from feature_store.inspect import counts
    from feature_store.store.reader import open_store

    store = open_store(args.store)
    if args.deep:
        store.validate_deep()
    checked = ", checksums and values checked" if args.deep else ""
    print(f"{store.path}: ok ({counts(store)}{checked})")
    return 0


def _add_build(parser: argparse.ArgumentParser) -> None:
    add_manifest(parser)
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
    add_workers(parser, "parallel worker processes (or Ray actors)")
    parser.add_argument(
        "--skip-bad", action="store_true", help="list bad clips in rejected.csv and go on"
    )
    parser.add_argument(
        "--ray", action="store_true", help="spread clips over the Ray cluster's workers"
    )
    add_force(parser, "overwrite an existing store at --out")


def _run_build(args: argparse.Namespace) -> int:
    from feature_store.build import build_store
    from feature_store.inspect import counts
    from feature_store.visual.matrix_build import build_stores

    options = dict(
        workers=args.workers,
        skip_bad=args.skip_bad,
        use_ray=args.ray,
        force=args.force,
        classes=args.classes,
    )
    if len(args.recipe) > 1 or args.per_recipe:
        stores = list(build_stores(args.manifest, args.recipe, args.out, **options).values())
    else:
        stores = [build_store(args.manifest, args.recipe[0], args.out, **options)]
    for store in stores:
        rejected = store.meta.get("num_rejected", 0)
        faceless = store.meta.get("num_without_face", 0)
        notes = [f"{rejected} rejected (rejected.csv)"] if rejected else []
        if faceless:
            notes.append(f"{faceless} without a face in any frame (frames_with_face = 0)")
        print(f"{store.path}: {', '.join([counts(store), *notes])}")
    return 0


def _add_train_audio(parser: argparse.ArgumentParser) -> None:
    add_manifest(parser)
    parser.add_argument(
        "--recipe", required=True, help="an audio recipe, e.g. conf/store/audio-spectrogram.yaml"
    )
    parser.add_argument("--out", required=True, help="the checkpoint file to write (best epoch)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    add_workers(parser, "processes computing the spectrograms")


def _run_train_audio(args: argparse.Namespace) -> int:
    from feature_store.audio.train import train_audio

    result = train_audio(
        args.manifest,
        args.recipe,
        args.out,
        epochs=args.epochs,
        workers=args.workers,
        classes=args.classes,
    )
    print(
        f"{args.out}: best val accuracy {result['best_val_acc']:.3f} at epoch "
        f"{result['best_epoch']} (MLflow run {result['run_id']})"
    )
    return 0


def _add_finetune(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--images",
        required=True,
        help="an image set: a manifest CSV (path,split,label), or a FER+, RAF-DB or AffectNet folder",
    )
    parser.add_argument(
        "--recipe", required=True, help="a visual recipe; its backbone checkpoint is the start"
    )
    parser.add_argument("--out", required=True, help="the fine-tuned checkpoint file to write")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default 10)")
    add_workers(parser, "Ray Train workers")
    parser.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (0: CPU with gloo)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--lr", type=float, default=0.01, help="learning rate (cosine schedule)")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument(
        "--balanced", action="store_true", help="draw every class equally often (with replacement)"
    )
    parser.add_argument(
        "--no-augment", action="store_true", help="no flip / rotation / scale augmentation"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of train images held out for val when the set has no val split",
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="Ray Train checkpoints (default OUT.ray; shared on clusters)",
    )
    parser.add_argument(
        "--cache", default=None, help="face-crop cache folder (default STORAGE/crops)"
    )
    add_workers(parser, "processes cutting the face crops", flag="--crop-workers")
    parser.add_argument(
        "--max-failures", type=int, default=3, help="worker-group restarts Ray Train may make"
    )
    parser.add_argument("--experiment", default="finetune", help="MLflow experiment name")
    add_force(parser, "discard an interrupted run with other settings")


def _run_finetune(args: argparse.Namespace) -> int:
    from feature_store.finetune import DEFAULT_AUGMENT, finetune

    meta = finetune(
        args.images,
        args.recipe,
        args.out,
        epochs=args.epochs,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        balanced=args.balanced,
        augment=None if args.no_augment else DEFAULT_AUGMENT,
        seed=args.seed,
        val_fraction=args.val_fraction,
        storage=args.storage,
        cache=args.cache,
        crop_workers=args.crop_workers,
        max_failures=args.max_failures,
        experiment=args.experiment,
        force=args.force,
    )
    test = meta["test_acc"]
    print(
        f"{args.out}: {meta['backbone']} fine-tuned on {meta['image_set']['layout']}, "
        f"test accuracy {'n/a' if test is None else f'{test:.3f}'} (MLflow run {meta['run_id']})"
    )
    return 0


def _add_probe(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--recipe", action="append", required=True, help="a visual recipe (repeat: one per column)"
    )
    parser.add_argument("--images", default=None, help="an image set: probe on its test faces")
    parser.add_argument("--clips", default=None, help="a clips manifest: probe on its val clips")
    parser.add_argument(
        "--stores", default="data/stores/probe", help="where --clips stores are built or reused"
    )
    parser.add_argument("--cache", default="data/probe-cache", help="face-crop cache for --images")
    add_workers(parser, "store build workers")


def _run_probe(args: argparse.Namespace) -> int:
    from feature_store import probe

    rows = probe.table(
        args.recipe,
        images=args.images,
        clips=args.clips,
        stores=args.stores,
        cache=args.cache,
        workers=args.workers,
    )
    print(probe.format_table(rows))
    return 0


COMMANDS: dict[str, Command] = {
    "manifest": Command(
        "write a manifest CSV (+ MANIFEST.yaml) from a dataset's tree as its authors distribute it",
        manifest_cli.add_arguments,
        manifest_cli.run,
    ),
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
    "finetune": Command(
        "fine-tune a recipe's face backbone on a labelled image set with Ray Train (Table 1)",
        _add_finetune,
        _run_finetune,
    ),
    "probe": Command(
        "Table 1: softmax-probe accuracy of several pretrained backbones, side by side",
        _add_probe,
        _run_probe,
    ),
    "synth": Command(
        "write the planted benchmark stores (known oracle accuracy)",
        synth_cli.add_arguments,
        synth_cli.run,
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
