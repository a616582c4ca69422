"""The price of a reproducible search (issue 24): the demo search in ``mode: reproducible`` and in
``mode: async`` on the same machine, and whether two reproducible runs leave the same leaderboard
when one of them shares the CPUs with a busy loop.

    .venv/bin/python benchmarks/bench_repro.py [--trials 48] [--concurrent 2] [--window 4]
        [--num-cpus 2] [--rounds 2] [--busy 1] [--repeat-async] [--work runs/bench_repro]

Plants the demo's stores (``python -m feature_store synth``, seconds) and runs
``python -m search run conf/search/demo.yaml`` (its paper-best start, the Table 2 grid, then TPE;
12 epochs a trial) on a local Ray: reproducible and async in turn for ``--rounds`` rounds (ABAB,
so a load that comes and goes weighs on both), then reproducible once more beside ``--busy``
processes spinning ``while True: pass`` (``--repeat-async``: async too, to show what reproducible
mode removes). Prints per run its wall time, trials per hour and trial-epochs per hour over the
span from the first trial's start to the last trial's end (MLflow's run times: Ray's start-up and
the search's closing left out), the share of that span x max_concurrent that trial runs took (a
reproducible search leaves a slot empty while trial n-window runs on; less sensitive to other load
on the machine than the rates), the trial-epochs trained (fewer where ASHA cut more) and the best
finished val_acc; then the ratios reproducible / async (median over rounds) and whether runs of a
mode left the same leaderboard: every trial's number, params, status, epochs, val_acc and
val_loss. A run beside the busy loop is slower by construction: it is not in the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "conf" / "search" / "demo.yaml"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48, help="budget.num_trials (demo: 48)")
    parser.add_argument("--concurrent", type=int, default=2, help="budget.max_concurrent")
    parser.add_argument("--window", type=int, default=None, help="budget.window (demo: 4)")
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--rounds", type=int, default=2, help="reproducible + async rounds")
    parser.add_argument("--busy", type=int, default=1, help="busy-loop processes beside a run")
    parser.add_argument("--repeat-async", action="store_true", help="async again, busy loop on")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_repro")
    return parser.parse_args()


def plant(work: Path) -> Path:
    stores = work / "stores"
    command = [sys.executable, "-m", "feature_store", "synth", "--out", str(stores)]
    subprocess.run([*command, "--skip-existing"], cwd=ROOT, check=True, capture_output=True)
    return stores


def search(args: argparse.Namespace, stores: Path, label: str, mode: str, busy: int) -> dict:
    """One demo search in its own folder; its MLflow trial runs read back."""
    work = args.work / label
    if work.exists():
        subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    command = [
        sys.executable, "-m", "search", "run", str(DEMO), "--num-cpus", str(args.num_cpus),
        "--set", f"mode={mode}", "--set", f"seed={args.seed}", "--set", f"stores.root={stores}",
        "--set", f"budget.num_trials={args.trials}",
        "--set", f"budget.max_concurrent={args.concurrent}",
        "--set", f"tracking.uri=sqlite:///{work}/mlflow.db", "--set", f"storage_path={work}/ray",
    ]  # fmt: skip
    if args.window is not None:
        command += ["--set", f"budget.window={args.window}"]
    spinning = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    finally:
        for process in spinning:
            process.kill()
            process.wait()
    wall = time.perf_counter() - started
    (work / "search.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{label} failed (see {work}/search.log):\n{result.stderr[-3000:]}")
    return {"label": label, "mode": mode, "busy": busy, "wall": wall, **read_runs(work)}


def read_runs(work: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work}/mlflow.db")
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs(
        [experiment.experiment_id], "tags.`avfusion.kind` = 'trial'", max_results=10000
    )
    board = {
        run.data.tags["avfusion.trial_id"]: (
            tuple(sorted(run.data.params.items())),
            run.data.tags["avfusion.status"],
            int(run.data.tags["avfusion.epochs_done"]),
            run.data.metrics.get("val_acc"),
            run.data.metrics.get("val_loss"),
        )
        for run in runs
    }
    span_s = (max(r.info.end_time for r in runs) - min(r.info.start_time for r in runs)) / 1000
    training_s = sum(r.info.end_time - r.info.start_time for r in runs) / 1000
    finished = [row[3] for row in board.values() if row[1] == "finished"]
    return {
        "board": board,
        "span_s": span_s,
        "per_hour": len(runs) / span_s * 3600,
        "epochs_per_hour": sum(row[2] for row in board.values()) / span_s * 3600,
        "training_s": training_s,
        "epochs": sum(row[2] for row in board.values()),
        "best": max(finished, default=float("nan")),
        "stopped": sum(row[1] == "stopped_early" for row in board.values()),
    }


def differences(one: dict, other: dict) -> str:
    """'identical', or how many trials differ and what differs in the first of them."""
    a, b = one["board"], other["board"]
    differ = sorted((k for k in a.keys() | b.keys() if a.get(k) != b.get(k)), key=int)
    if not differ:
        return f"identical ({len(a)} trials: params, status, epochs, val_acc, val_loss)"
    first = differ[0]
    (params_a, *rest_a), (params_b, *rest_b) = a[first], b[first]
    changed = sorted(dict(set(params_a) ^ set(params_b)))
    return (
        f"{len(differ)} of {len(a)} trials differ; the first, #{first}: params {changed}, "
        f"(status, epochs, val_acc, val_loss) {tuple(rest_a)} vs {tuple(rest_b)}"
    )


def show(run: dict) -> None:
    print(
        f"{run['label']:<18} wall {run['wall']:6.1f} s  {len(run['board'])} trials in "
        f"{run['span_s']:6.1f} s: {run['per_hour']:5.0f} trials/h, {run['epochs_per_hour']:6.0f} "
        f"trial-epochs/h, slots busy {run['busy_share']:.0%}  trial-epochs {run['epochs']}  "
        f"stopped early {run['stopped']}  "
        f"best val_acc {run['best']:.4f}",
        flush=True,
    )


def main() -> int:
    args = parse_args()
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    stores = plant(args.work)
    plan = [
        (f"{mode}-{r}", mode, 0) for r in range(args.rounds) for mode in ("reproducible", "async")
    ]
    plan.append(("reproducible-busy", "reproducible", args.busy))
    if args.repeat_async:
        plan.append(("async-busy", "async", args.busy))
    runs = {}
    for label, mode, busy in plan:
        runs[label] = search(args, stores, label, mode, busy)
        runs[label]["busy_share"] = runs[label]["training_s"] / (
            runs[label]["span_s"] * args.concurrent
        )
        show(runs[label])
    for key, what in (
        ("per_hour", "trials/h"),
        ("epochs_per_hour", "trial-epochs/h"),
        ("busy_share", "share of slot time training"),
    ):
        ratios = [
            runs[f"reproducible-{r}"][key] / runs[f"async-{r}"][key] for r in range(args.rounds)
        ]
        print(
            f"{what} reproducible / async: {statistics.median(ratios):.3f} (median; rounds: "
            f"{', '.join(f'{x:.3f}' for x in ratios)}; {args.trials} trials, max_concurrent "
            f"{args.concurrent}, {args.num_cpus} CPUs)"
        )
    first = runs["reproducible-0"]
    for label in [name for name in runs if name.startswith("reproducible")][1:]:
        print(f"reproducible-0 vs {label}: {differences(first, runs[label])}")
    for label in [name for name in runs if name.startswith("async")][1:]:
        print(f"async-0 vs {label}: {differences(runs['async-0'], runs[label])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
