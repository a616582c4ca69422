"""``python -m ensembling build``: its arguments, and the run from candidates to an output folder.

Candidates come from ``--scores`` folders or a search's MLflow experiment (``--experiment``,
``--runs``); the ensemble is chosen on val (``ensembling.build``), optionally scored on test by
the members' refits (``--refit``), written whole (``ensembling.report``) and logged to MLflow as
an ``ensemble`` run unless ``--no-log``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avcore import guards
from avcore.options import add_tracking_uri
from ensembling.errors import EnsembleError

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ensembling.build import Ensemble, Recipe
    from ensembling.sources import ScoreSet


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    add_tracking_uri(source)
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
        "favours) or one number per class in the scores' class order, e.g. 7 for AFEW's "
        "Angry..Surprise (none)",
    )
    selection.add_argument(
        "--train-counts",
        help="train clips per class for sqrt-prior (default: what the runs' scores record)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="output directory (ensembles/<source>-<time>)")
    output.add_argument("--force", action="store_true", help="replace an existing output directory")
    output.add_argument(
        "--log-experiment", help="with --scores: also log to this MLflow experiment"
    )
    output.add_argument("--no-log", action="store_true", help="do not log the ensemble to MLflow")


@dataclass
class _Candidates:
    """The candidates' scores, what ``ensemble.json`` records of where they came from, and the
    MLflow client and experiment the ensemble is logged to (``None``: not logged)."""

    scores: ScoreSet
    source: dict[str, Any]
    label: str  # names the default output folder
    client: MlflowClient | None = None
    log_experiment_id: str | None = None


def run(args: argparse.Namespace) -> int:
    from ensembling import report
    from ensembling.build import build

    given = [name for name in ("experiment", "runs", "scores") if getattr(args, name)]
    if not given or (args.scores and len(given) > 1):
        raise EnsembleError("give --experiment (and/or --runs) or --scores DIR ...")
    if args.top < 1:
        raise EnsembleError(f"--top must be >= 1, got {args.top}")
    if args.refit and args.scores:
        raise EnsembleError("--refit needs --experiment: refits are MLflow runs")
    recipe = _recipe(args)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.out is not None:  # before any work: exists without --force, not ours, read-only
        guards.prepare_out(args.out, force=args.force, marker=report.SUMMARY_FILE)
    found = _from_dirs(args) if args.scores else _from_mlflow(args)
    ensemble = build(found.scores, recipe)
    if args.refit:
        ensemble = _on_refits(ensemble, found)
    # An experiment name is the user's (or MLflow's): a folder name only through the guard.
    out = args.out or Path("ensembles") / f"{guards.folder_name(found.label)}-{stamp}"
    info = _write_and_log(ensemble, found, out, stamp, args)
    print(report.render(info), end="")
    print(f"wrote {out}")
    return 0


def _recipe(args: argparse.Namespace) -> Recipe:
    from ensembling.build import Recipe

    options: dict[str, Any] = dict(
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
    return Recipe(**options)


def _from_dirs(args: argparse.Namespace) -> _Candidates:
    from ensembling import sources, tracking

    found = _Candidates(
        scores=sources.from_dirs(args.scores),
        source={"kind": "scores", "dirs": [str(d) for d in args.scores]},
        label="scores",
    )
    if args.log_experiment and not args.no_log:
        found.client = tracking.connect(args.tracking_uri, must_exist=False)
        found.log_experiment_id = tracking.experiment_id_for(found.client, args.log_experiment)
    return found


def _from_mlflow(args: argparse.Namespace) -> _Candidates:
    from ensembling import tracking, trial_runs

    client = tracking.connect(args.tracking_uri)
    scores = trial_runs.from_mlflow(
        client,
        args.experiment,
        top=args.top,
        filter_string=args.filter,
        run_ids=args.runs,
        include_stopped=args.include_stopped,
        with_confirms=args.with_confirms,
        rank_by_seed_mean=args.rank_by_seed_mean,
    )
    if scores.skipped:
        left_out = ", ".join(f"{n} {status}" for status, n in scores.skipped.items())
        print(f"left out trial runs that did not finish: {left_out}", file=sys.stderr)
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
    log_experiment_id = None if args.no_log else scores.experiment_id
    return _Candidates(scores, source, scores.experiment_name, client, log_experiment_id)


def _on_refits(ensemble: Ensemble, found: _Candidates) -> Ensemble:
    """The ensemble with its test scores from the members' refits (same member and class
    weights); ``found.source`` records which refit stood in for which member."""
    import numpy as np

    from ensembling import trial_runs
    from ensembling.greedy import combine

    weights = ensemble.selection.weights
    refit_test, refits = trial_runs.refit_test_scores(
        found.client, found.scores, np.flatnonzero(weights)
    )
    found.source["refits"] = refits
    return replace(ensemble, test_probs=combine(refit_test, weights, ensemble.class_weights))


def _write_and_log(
    ensemble: Ensemble, found: _Candidates, out: Path, stamp: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Write the output folder and, when logging, the MLflow run (FAILED if writing fails)."""
    import numpy as np

    from ensembling import report, tracking

    client, run_id = found.client, None
    if found.log_experiment_id is not None:
        weights = ensemble.selection.weights
        members = [
            found.scores.candidates[i]
            for i in np.argsort(-weights, kind="stable")
            if weights[i] > 0
        ]
        run_id = tracking.start_ensemble_run(
            client, found.log_experiment_id, f"ensemble-{stamp}", members
        )
    try:
        info = report.summary(ensemble, source=found.source, mlflow_run_id=run_id)
        report.write(ensemble, out, info, force=args.force)
        if run_id is not None:
            tracking.log_ensemble_run(
                client,
                run_id,
                params={
                    **ensemble.recipe.model_dump(),
                    "candidates": len(found.scores.candidates),
                    "filter": args.filter,
                },
                metrics=_metrics(info),
                out_dir=out,
            )
    except BaseException:
        if run_id is not None:
            client.set_terminated(run_id, status="FAILED")
        raise
    return info


def _metrics(info: dict) -> dict[str, float]:
    """The ensemble's figures under names that say how they were measured. No plain ``val_acc``:
    the in-sample figure is chosen on the same clips it scores, so it would sort above every trial
    it is not better than; the cross-validated one is the honest estimate."""
    cv = info["cross_validated"]
    return {
        "val_acc_in_sample": info["in_sample"]["acc"],
        "val_uar_in_sample": info["in_sample"]["uar"],
        "val_acc_cv": cv["acc"],
        "val_uar_cv": cv["uar"],
        "val_acc_cv_without_class_weights": cv["acc_without_class_weights"],
        "best_single_val_acc": info["best_single"]["acc"],
        "members": len(info["members"]),
        **(
            {"test_acc": info["test"]["acc"], "test_uar": info["test"]["uar"]}
            if info.get("test")
            else {}
        ),
    }


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise EnsembleError(
            f"--train-counts {text!r}: expected one integer per class, comma-separated"
        ) from None
