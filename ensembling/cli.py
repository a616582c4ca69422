"""``python -m ensembling``: build a submission ensemble from a finished search, or show one.

    python -m ensembling build --experiment my-search --top 30 --class-weights sqrt-prior --out ens
    python -m ensembling build --experiment my-search --filter "params.visual_feature = 'f-meanstd'"
    python -m ensembling build --scores trial_a trial_b trial_c --out ens
    python -m ensembling show ens
    python -m ensembling compare --experiment my-search --spec conf/ensemble/table4.yaml

The frame (sub-commands, user errors as one line with exit status 2, ``--debug`` for the traceback)
is ``avcore.cli``. MLflow and matplotlib are imported only by the commands that need them, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from avcore import guards
from avcore.cli import Command, run_cli
from ensembling.errors import EnsembleError

PROG = "python -m ensembling"


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    from ensembling.class_weights import PRESETS

    source = parser.add_argument_group("candidates (one of --experiment, --runs, --scores)")
    source.add_argument("--experiment", help="MLflow experiment of the search (named after it)")
    source.add_argument("--runs", nargs="+", metavar="RUN_ID", help="explicit trial run ids")
    source.add_argument("--scores", nargs="+", metavar="DIR", help="directories holding scores.npz")
    source.add_argument(
        "--top", type=int, default=30, help="best K finished trials by val_acc (30)"
    )
    source.add_argument(
        "--filter",
        default="",
        help="MLflow filter narrowing the trials, e.g. \"params.visual_feature = 'f-meanstd'\"",
    )
    source.add_argument(
        "--include-stopped", action="store_true", help="also use trials ASHA stopped early"
    )
    source.add_argument(
        "--with-confirms",
        action="store_true",
        help="also use the retrains of `python -m search confirm` (seed diversity)",
    )
    source.add_argument(
        "--rank-by-seed-mean",
        action="store_true",
        help="rank trials by their mean val_acc over the confirm seeds, not their own",
    )
    source.add_argument(
        "--refit",
        action="store_true",
        help="test scores from the members' refits on train + val (`python -m search refit`); "
        "members and class weights are still chosen on val",
    )
    source.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (else MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)",
    )
    selection = parser.add_argument_group("selection")
    selection.add_argument("--rounds", type=int, default=50, help="forward-selection rounds (50)")
    selection.add_argument(
        "--init-top", type=int, default=0, help="start from the best N candidates (0)"
    )
    selection.add_argument(
        "--objective",
        choices=("acc", "uar"),
        default="acc",
        help="accuracy or unweighted average recall (acc)",
    )
    selection.add_argument(
        "--bags", type=int, default=0, help="bagged selection over N bags (0: plain)"
    )
    selection.add_argument(
        "--bag-fraction", type=float, default=0.5, help="share of candidates per bag (0.5)"
    )
    selection.add_argument(
        "--folds", type=int, default=5, help="folds of the cross-validated estimate (5)"
    )
    selection.add_argument("--seed", type=int, default=0, help="seed of bags and folds (0)")
    selection.add_argument(
        "--class-weights",
        default="none",
        help=f"preset ({', '.join(PRESETS)}), 'auto' (the preset a nested cross-validation "
        "favours) or 7 comma-separated numbers, Angry..Surprise (none)",
    )
    selection.add_argument(
        "--train-counts", help="train clips per class for sqrt-prior (AFEW's by default)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="output directory (ensembles/<source>-<time>)")
    output.add_argument("--force", action="store_true", help="replace an existing output directory")
    output.add_argument(
        "--log-experiment", help="with --scores: also log to this MLflow experiment"
    )
    output.add_argument("--no-log", action="store_true", help="do not log the ensemble to MLflow")


def _build(args: argparse.Namespace) -> int:
    from ensembling import report, sources, tracking
    from ensembling.build import Recipe, build

    given = [name for name in ("experiment", "runs", "scores") if getattr(args, name)]
    if not given or (args.scores and len(given) > 1):
        raise EnsembleError("give --experiment (and/or --runs) or --scores DIR ...")
    if args.top < 1:
        raise EnsembleError(f"--top must be >= 1, got {args.top}")
    options = dict(
        rounds=args.rounds,
        init_top=args.init_top,
        objective=args.objective,
        class_weights=args.class_weights,
        bags=args.bags,
        bag_fraction=args.bag_fraction,
        folds=args.folds,
        seed=args.seed,
    )
    if args.train_counts:
        options["train_counts"] = _counts(args.train_counts)
    recipe = Recipe(**options)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.out is not None:  # before any work: exists without --force, not ours, read-only
        guards.prepare_out(args.out, force=args.force, marker=report.SUMMARY_FILE)

    client, log_experiment_id = None, None
    if args.scores:
        scores = sources.from_dirs(args.scores)
        source = {"kind": "scores", "dirs": [str(d) for d in args.scores]}
        if args.log_experiment and not args.no_log:
            client = tracking.connect(args.tracking_uri, must_exist=False)
            log_experiment_id = tracking.experiment_id_for(client, args.log_experiment)
        label = "scores"
    else:
        client = tracking.connect(args.tracking_uri)
        scores = sources.from_mlflow(
            client,
            args.experiment,
            top=args.top,
            filter_string=args.filter,
            run_ids=args.runs,
            include_stopped=args.include_stopped,
            with_confirms=args.with_confirms,
            rank_by_seed_mean=args.rank_by_seed_mean,
        )
        source = {
            "kind": "mlflow",
            "tracking_uri": client.tracking_uri,
            "experiment": scores.experiment_name,
            "experiment_id": scores.experiment_id,
            "filter": args.filter,
            "top": args.top,
            "runs": args.runs or [],
            "skipped": scores.skipped,
        }
        if scores.skipped:
            left_out = ", ".join(f"{n} {status}" for status, n in scores.skipped.items())
            print(f"left out trial runs that did not finish: {left_out}", file=sys.stderr)
        log_experiment_id = None if args.no_log else scores.experiment_id
        label = scores.experiment_name
    ensemble = build(scores, recipe)
    if args.refit:
        if args.scores:
            raise EnsembleError("--refit needs --experiment: refits are MLflow runs")
        from dataclasses import replace

        import numpy as np

        from ensembling.greedy import combine

        weights = ensemble.selection.weights
        refit_test, refits = sources.refit_test_scores(client, scores, np.flatnonzero(weights))
        test_probs = combine(refit_test, weights, ensemble.class_weights)
        ensemble = replace(ensemble, test_probs=test_probs)
        source["refits"] = refits
    # An experiment name is the user's (or MLflow's): a folder name only through the guard.
    out = args.out or Path("ensembles") / f"{guards.folder_name(label)}-{stamp}"

    run_id = None
    if log_experiment_id is not None:
        run_id = tracking.start_ensemble_run(client, log_experiment_id, f"ensemble-{stamp}")
    try:
        info = report.summary(ensemble, source=source, mlflow_run_id=run_id)
        report.write(ensemble, out, info, force=args.force)
        if run_id is not None:
            tracking.log_ensemble_run(
                client,
                run_id,
                params={
                    **recipe.model_dump(),
                    "candidates": len(scores.candidates),
                    "filter": args.filter,
                },
                metrics=_metrics(info),
                out_dir=out,
            )
    except BaseException:
        if run_id is not None:
            client.set_terminated(run_id, status="FAILED")
        raise
    print(report.render(info), end="")
    print(f"wrote {out}")
    return 0


def _metrics(info: dict) -> dict[str, float]:
    cv = info["cross_validated"]
    return {
        "val_acc": info["in_sample"]["acc"],
        "val_uar": info["in_sample"]["uar"],
        "cv_val_acc": cv["acc"],
        "cv_val_uar": cv["uar"],
        "cv_val_acc_without_class_weights": cv["acc_without_class_weights"],
        "best_single_val_acc": info["best_single"]["acc"],
        "members": len(info["members"]),
    }


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise EnsembleError(
            f"--train-counts {text!r}: expected 7 comma-separated integers"
        ) from None


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="an output directory of `build`")


def _show(args: argparse.Namespace) -> int:
    from ensembling import report

    print(report.render(report.read(args.directory)), end="")
    return 0


def _compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", required=True, help="MLflow experiment of the search")
    parser.add_argument("--spec", required=True, type=Path, help="YAML naming the ensembles")
    parser.add_argument(
        "--top", type=int, default=200, help="candidates: the best K finished trials (200)"
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI (else MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)",
    )
    parser.add_argument("--out", type=Path, help="also write compare.md and compare.json here")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")


def _compare(args: argparse.Namespace) -> int:
    import json

    from ensembling import compare, sources, tracking

    spec = compare.load_spec(args.spec)
    if args.out is not None:
        guards.prepare_out(args.out, force=args.force, marker=compare.SUMMARY_FILE)
    client = tracking.connect(args.tracking_uri)
    scores = sources.from_mlflow(client, args.experiment, top=args.top)
    rows = compare.compare(scores, spec)
    text = compare.render(rows, spec, f"{scores.experiment_name} ({len(scores.candidates)} trials)")
    print(text, end="")
    if args.out is not None:
        staging = guards.staging_dir(args.out)
        staging.mkdir(parents=True)
        (staging / "compare.md").write_text(text)
        payload = json.dumps(compare.as_json(rows, spec), indent=2, default=str)
        (staging / compare.SUMMARY_FILE).write_text(payload + "\n")
        guards.swap_in(staging, args.out)
        print(f"wrote {args.out}")
    return 0


COMMANDS: dict[str, Command] = {
    "build": Command(
        "build an ensemble from MLflow trial runs or scores.npz directories",
        _build_arguments,
        _build,
    ),
    "show": Command("print the report of a built ensemble", _show_arguments, _show),
    "compare": Command(
        "several named ensembles of one search side by side (the paper's Table 4)",
        _compare_arguments,
        _compare,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(PROG, __doc__.split("\n\n")[0], COMMANDS, argv)
