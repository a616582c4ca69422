"""``python -m search``: run, resume and inspect Ray Tune + Optuna searches recorded in MLflow.

python -m search run conf/search/demo.yaml [--set budget.num_trials=8] [--smoke-test]
python -m search resume demo
python -m search status demo
python -m search confirm demo --top 5 --seeds 3
python -m search refit demo --top 5
python -m search report demo
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from avcore.cli import Command, run_cli
from avcore.options import add_tracking_uri


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="a search config, e.g. conf/search/demo.yaml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting by its dotted key (YAML value), e.g. budget.num_trials=8",
    )
    parser.add_argument(
        "--smoke-test", action="store_true", help="a few tiny trials (CI, first check on a cluster)"
    )
    parser.add_argument(
        "--num-cpus",
        type=int,
        default=None,
        help="CPUs of a local Ray (ignored when joining a cluster)",
    )


def run_command(args: argparse.Namespace) -> int:
    from search.config import load_search_config
    from search.driver import run_search
    from search.leaderboard import format_leaderboard

    config = load_search_config(args.config, args.overrides, smoke_test=args.smoke_test)
    outcome = run_search(config, num_cpus=args.num_cpus)
    return _print_outcome(outcome, format_leaderboard)


def _print_outcome(outcome, format_leaderboard) -> int:
    """The leaderboard and a summary; exit status 130 (as for any Ctrl+C) when the search was
    interrupted, 1 when no trial finished."""
    so_far = " so far" if outcome.interrupted else ""
    print(
        f"\nsearch {outcome.name} — leaderboard{so_far} (val_acc{' beside the oracle' if outcome.oracle else ''}):"
    )
    print(format_leaderboard(outcome.leaderboard, outcome.oracle or None))
    print(
        f"\nMLflow: {outcome.tracking_uri}  experiment {outcome.experiment_id}, parent run {outcome.parent_run_id}"
    )
    print(_ui_hint(outcome))
    counts = outcome.leaderboard["status"].value_counts() if len(outcome.leaderboard) else {}
    summary = ", ".join(
        f"{int(counts.get(status, 0))} {status.replace('_', ' ')}"
        for status in ("finished", "stopped_early", "failed")
    )
    print(f"search {outcome.name}: {summary}")
    if not outcome.interrupted and not counts.get("finished", 0):
        # Nothing to ensemble: a script (`make demo`) must stop here.
        print(
            f"search {outcome.name}: no trial finished ({summary}); "
            "the cause of each failed trial is printed above",
            file=sys.stderr,
        )
        return 1
    if outcome.interrupted:
        storage = (
            "" if outcome.storage_path == "ray_results" else f" --storage {outcome.storage_path}"
        )
        print(
            f"\nsearch {outcome.name} interrupted; its state is saved. Continue it with:"
            f"\n  python -m search resume {outcome.name}{storage}",
            file=sys.stderr,
        )
        return 130
    return 0


def _add_resume(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the search name (its folder under the storage path)")
    parser.add_argument(
        "--storage",
        default="ray_results",
        help="Ray Tune storage path or URI (default: ray_results)",
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")


def _run_resume(args: argparse.Namespace) -> int:
    from search.driver import resume_search
    from search.leaderboard import format_leaderboard

    return _print_outcome(
        resume_search(args.name, storage_path=args.storage, num_cpus=args.num_cpus),
        format_leaderboard,
    )


def _add_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the search name (its MLflow experiment)")
    add_tracking_uri(parser)
    parser.add_argument("--limit", type=int, default=20, help="rows to show")


def _run_status(args: argparse.Namespace) -> int:
    from search.leaderboard import format_leaderboard
    from search.outcome import search_status

    outcome = search_status(args.name, tracking_uri=args.tracking_uri)
    print(format_leaderboard(outcome.leaderboard, outcome.oracle or None, limit=args.limit))
    print(_seed_ranking(outcome))
    print(_ui_hint(outcome))
    return 0


def _seed_ranking(outcome) -> str:
    """The confirmed trials (``confirm``) ranked by their mean val accuracy over seeds."""
    from search.leaderboard import confirmed_trials

    rows = confirmed_trials(
        outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id, outcome.leaderboard
    )
    if not rows:
        return (
            "no confirmed trials yet: `python -m search confirm NAME` ranks by the mean over seeds"
        )
    lines = [
        "confirmed by `search confirm`: val accuracy over seeds, ranked by the mean "
        "(configurations selected on val)"
    ]
    for rank, c in enumerate(rows, 1):
        lines.append(
            f"{rank:>3} {c.mean:.4f} ± {c.std:.4f} over {len(c.values)} seeds  "
            f"{c.label} ({c.run_id[:8]})"
        )
    return "\n".join(lines)


def _ui_hint(outcome) -> str:
    """The address that opens the search's runs in the MLflow UI (its view saved if missing)."""
    from search import ui_link

    ui_link.ensure_view(outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id)
    return ui_link.ui_hint(outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id)


def _add_report(parser: argparse.ArgumentParser) -> None:
    _add_status(parser)
    parser.add_argument("--out", default=None, help="also write report.md and table2.png here")


def _run_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from search.outcome import search_status
    from search.report import write_report

    outcome = search_status(args.name, tracking_uri=args.tracking_uri)
    text, folder = write_report(outcome, Path(args.out) if args.out else None)
    print(text, end="")
    print(
        f"\nwrote {folder}/report.md and table2.png; logged to parent run {outcome.parent_run_id}"
    )
    return 0


def _add_confirm(parser: argparse.ArgumentParser) -> None:
    _add_status(parser)
    parser.add_argument("--top", type=int, default=5, help="the K best finished trials (5)")
    parser.add_argument("--seeds", type=int, default=3, help="fresh seeds per trial (3)")
    parser.add_argument(
        "--folds",
        default=None,
        help="a fold protocol: train on these folds (all, or 1,3), report test WAR/UAR per fold",
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")


def _run_confirm(args: argparse.Namespace) -> int:
    from search.retrain import confirm_folds, confirm_search, format_confirmed

    if args.folds is not None:
        from search.folds import format_folds

        by_fold = confirm_folds(
            args.name,
            top=args.top,
            seeds=args.seeds,
            folds=args.folds,
            tracking_uri=args.tracking_uri,
            num_cpus=args.num_cpus,
        )
        print("test WAR / UAR (%) per fold, mean over seeds; mean ± std over folds")
        print("\n".join(format_folds(by_fold)))
        return 0
    results = confirm_search(
        args.name,
        top=args.top,
        seeds=args.seeds,
        tracking_uri=args.tracking_uri,
        num_cpus=args.num_cpus,
    )
    print(format_confirmed(results))
    return 0


def _add_refit(parser: argparse.ArgumentParser) -> None:
    _add_status(parser)
    parser.add_argument("--top", type=int, default=5, help="the K best finished trials (5)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray")


def _run_refit(args: argparse.Namespace) -> int:
    from search.retrain import refit_search

    done = refit_search(
        args.name, top=args.top, tracking_uri=args.tracking_uri, num_cpus=args.num_cpus
    )
    print("refit on train + val (epochs chosen on val):")
    for run_id, label, epochs in done:
        print(f"  {run_id[:8]}  {label}  {epochs} epochs")
    print(f"then: python -m ensembling build --experiment {args.name} --refit")
    return 0


COMMANDS: dict[str, Command] = {
    "run": Command(
        "run a search from a config (Ray Tune + Optuna TPE + ASHA, MLflow)",
        add_run_arguments,
        run_command,
    ),
    "resume": Command("continue an interrupted search where it stopped", _add_resume, _run_resume),
    "status": Command("print a search's leaderboard so far, from MLflow", _add_status, _run_status),
    "confirm": Command(
        "retrain the best trials with fresh seeds (child runs of the search, kind confirm)",
        _add_confirm,
        _run_confirm,
    ),
    "refit": Command(
        "retrain the best trials on train + val (child runs of the search, kind refit)",
        _add_refit,
        _run_refit,
    ),
    "report": Command(
        "the paper's Table 2 and 3 from a search, with bootstrap marks (logged to MLflow)",
        _add_report,
        _run_report,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(
        "search",
        __doc__.strip().splitlines()[0],
        COMMANDS,
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
