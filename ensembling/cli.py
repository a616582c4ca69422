"""``python -m ensembling``: build a submission ensemble from a finished search, or show one.

    python -m ensembling build --experiment my-search --top 30 --class-weights sqrt-prior --out ens
    python -m ensembling build --experiment my-search --filter "params.visual_feature = 'f-meanstd'"
    python -m ensembling build --scores trial_a trial_b trial_c --out ens
    python -m ensembling show ens
    python -m ensembling compare --experiment my-search --spec conf/ensemble/table4.yaml

The frame (sub-commands, user errors as one line with exit status 2, ``--debug`` for the traceback)
is ``avcore.cli``; ``build`` lives in ``ensembling.cli_build``. MLflow and matplotlib are imported
only by the commands that need them, so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from avcore import guards
from avcore.cli import Command, run_cli
from avcore.options import add_tracking_uri
from avcore.staged import staged
from ensembling import cli_build

PROG = "python -m ensembling"


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
    add_tracking_uri(parser)
    parser.add_argument("--out", type=Path, help="also write compare.md and compare.json here")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")


def _compare(args: argparse.Namespace) -> int:
    import json

    from ensembling import compare, tracking, trial_runs

    spec = compare.load_spec(args.spec)
    if args.out is not None:
        guards.prepare_out(args.out, force=args.force, marker=compare.SUMMARY_FILE)
    client = tracking.connect(args.tracking_uri)
    scores = trial_runs.from_mlflow(client, args.experiment, top=args.top)
    rows = compare.compare(scores, spec)
    text = compare.render(rows, spec, f"{scores.experiment_name} ({len(scores.candidates)} trials)")
    print(text, end="")
    if args.out is not None:
        payload = json.dumps(compare.as_json(rows, spec), indent=2, default=str)
        with staged(args.out) as staging:
            (staging / "compare.md").write_text(text)
            (staging / compare.SUMMARY_FILE).write_text(payload + "\n")
        print(f"wrote {args.out}")
    return 0


COMMANDS: dict[str, Command] = {
    "build": Command(
        "build an ensemble from MLflow trial runs or scores.npz directories",
        cli_build.add_arguments,
        cli_build.run,
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
