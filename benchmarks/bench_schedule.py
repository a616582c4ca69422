"""How epochs are allocated (issue 18): one ASHA over all trials against ASHA compared within a
fusion kind (``budget.compare_within: fusion``), on the demo search.

    .venv/bin/python benchmarks/bench_schedule.py [--demo data/demo] [--trials 24] [--seeds 0]

Runs ``python -m search run conf/search/demo.yaml`` once per setting and seed (same seed, same
TPE), then prints per fusion kind how many trials finished and were stopped early, the Table 2
cells that hold a finished trial, and the best finished val accuracy beside the planted oracle of
its store pair; the ratio is grouped / one ASHA.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "conf" / "search" / "demo.yaml"
SETTINGS = {"one ASHA": "null", "within fusion": "fusion"}


def run(setting: str, seed: int, demo: Path, trials: int, work: Path):
    name = f"sched-{setting}-{seed}"
    command = [
        sys.executable, "-m", "search", "run", str(DEMO), "--num-cpus", "2",
        "--set", f"name={name}", "--set", f"seed={seed}", "--set", f"stores.root={demo}",
        "--set", f"budget.num_trials={trials}", "--set", f"budget.compare_within={setting}",
        "--set", f"tracking.uri=sqlite:///{work}/mlflow.db", "--set", f"storage_path={work}/ray",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
    from search.outcome import search_status

    return search_status(name, tracking_uri=f"sqlite:///{work}/mlflow.db")


def summary(outcome) -> dict[str, object]:
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
    row["best"] = float(best["val_acc"])
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
    with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            rows = {
                label: summary(run(value, seed, args.demo, args.trials, Path(tmp)))
                for label, value in SETTINGS.items()
            }
            print(f"demo search, {args.trials} trials, seed {seed}:")
            for label, row in rows.items():
                print(
                    f"  {label:14} FBP: {row['fbp']:32} concat: {row['concat']:32} best {row['best_text']}"
                )
            ratio = rows["within fusion"]["best"] / rows["one ASHA"]["best"]
            print(f"  best found, within fusion / one ASHA: {ratio:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
