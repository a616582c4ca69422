"""How epochs are allocated and where a search starts (issue 18), on the demo search: one ASHA
over all trials, ASHA compared within a fusion kind (``budget.compare_within: fusion``), and the
same started from the paper's hand-picked best (``start_from``), and the demo as shipped: that
start, then every Table 2 cell once (``start_grid``), then TPE, 48 trials; beside the hand-picked
configuration trained alone for the same epochs (``python -m trainables fit``).

    .venv/bin/python benchmarks/bench_schedule.py [--demo data/demo] [--trials 24] [--seeds 0]

Runs ``python -m search run conf/search/demo.yaml`` once per setting and seed (same seed, same
TPE), then prints per fusion kind how many trials finished and were stopped early, the Table 2
cells that hold a finished trial, the best finished val accuracy beside the planted oracle of its
store pair, and the best of the trials TPE proposed itself (start points and grid left out). Ratios: each
setting's best / the paper-best configuration's val accuracy at the same epochs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "conf" / "search" / "demo.yaml"
SETTINGS = {  # label: (overrides, how many start points the search runs first)
    "one ASHA": (["budget.compare_within=null", "start_from=[]", "start_grid=[]"], 0),
    "within fusion": (["budget.compare_within=fusion", "start_from=[]", "start_grid=[]"], 0),
    "+ paper-best start": (["budget.compare_within=fusion", "start_grid=[]"], 1),
    # the demo as shipped: the paper-best start, then every Table 2 cell once (32), then TPE
    "+ Table 2 grid (demo)": (["budget.compare_within=fusion", "budget.num_trials=48"], 33),
}


def paper_best(demo: Path, epochs: int, seed: int) -> float:
    """The hand-picked configuration alone, on the demo start point's stores, same epochs/seed."""
    command = [
        sys.executable, "-m", "trainables", "fit", "--visual", str(demo / "visual" / "f-mean"),
        "--audio", str(demo / "audio" / "logmel"), "--config", "conf/trial/paper-best.yaml",
        "--set", f"epochs={epochs}", "--set", f"seed={seed}", "--set", "device=cpu",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return float(re.findall(r"final: val_acc ([0-9.]+)", result.stdout + result.stderr)[-1])


def run(setting: list[str], index: int, seed: int, demo: Path, trials: int, work: Path):
    name = f"sched-{index}-{seed}"
    command = [
        sys.executable, "-m", "search", "run", str(DEMO), "--num-cpus", "2",
        "--set", f"name={name}", "--set", f"seed={seed}", "--set", f"stores.root={demo}",
        "--set", f"budget.num_trials={trials}",
        "--set", f"tracking.uri=sqlite:///{work}/mlflow.db", "--set", f"storage_path={work}/ray",
    ]  # fmt: skip
    for override in setting:
        command += ["--set", override]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
    from search.outcome import search_status

    return search_status(name, tracking_uri=f"sqlite:///{work}/mlflow.db")


def summary(outcome, starts: int) -> dict[str, object]:
    table, oracle = outcome.leaderboard, outcome.oracle
    finished = table[table["status"] == "finished"]
    row: dict[str, object] = {}
    for fusion in ("fbp", "concat"):
        kind = table[table["fusion"] == fusion]
        done = finished[finished["fusion"] == fusion]
        row[fusion] = (
            f"{len(done)} finished / {int((kind['status'] == 'stopped_early').sum())} stopped, "
            f"{done.groupby(['visual_attention', 'audio_attention']).ngroups} cells"
        )
    best = finished.sort_values("val_acc", ascending=False).iloc[0]
    pair = oracle.get((best["visual_feature"], best["audio_feature"]))
    row["trials"] = len(table)
    row["best"] = float(best["val_acc"])
    # what TPE proposed itself: the start points are the first trials (numbers 0..k-1)
    proposed = finished[finished["trial_id"].astype(int) >= starts]
    row["tpe"] = float(proposed["val_acc"].max()) if not proposed.empty else float("nan")
    row["best_text"] = (
        f"{best['val_acc']:.4f} ({best['fusion']}, {best['visual_attention']}/"
        f"{best['audio_attention']}{f', {best.val_acc / pair:.3f} of oracle' if pair else ''})"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seeds", default="0", help="comma-separated search seeds")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, "-m", "feature_store", "synth", "--out", str(args.demo), "--skip-existing"],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    epochs = 12  # the demo's budget.epochs
    with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            baseline = paper_best(args.demo, epochs, seed)
            rows = {
                label: summary(run(setting, i, seed, args.demo, args.trials, Path(tmp)), starts)
                for i, (label, (setting, starts)) in enumerate(SETTINGS.items())
            }
            print(f"demo search, seed {seed}, {epochs} epochs:")
            print(f"  paper-best configuration alone (f-mean+logmel): val_acc {baseline:.4f}")
            for label, row in rows.items():
                print(
                    f"  {label:19} {row['trials']:>2} trials  FBP: {row['fbp']:30} "
                    f"concat: {row['concat']:30} "
                    f"best {row['best_text']}, TPE's own best {row['tpe']:.4f}; "
                    f"best / paper-best {row['best'] / baseline:.3f}"
                )
            ratio = rows["within fusion"]["best"] / rows["one ASHA"]["best"]
            print(f"  best found, within fusion / one ASHA: {ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
