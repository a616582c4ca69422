"""GPU sharing (issue 17): trials per hour on one GPU at ``resources.gpu`` = 1, 1/4, 1/8, 1/16.

    .venv/bin/python benchmarks/bench_gpu.py [--demo DIR] [--fractions 1,0.25,0.125,0.0625]
        [--trials-per-process 2] [--epochs 40] [--device cuda]

A fractional ``resources.gpu`` is how Ray Tune packs 1/f trials onto one GPU: each trial is its own
worker process (one CPU, so one torch thread) and all of them see the same CUDA device. This
benchmark reproduces exactly that packing without Ray in the loop: for each fraction f it starts
1/f processes on one device; each opens the AFEW-sized planted stores (773/383/653 clips, written
by ``feature_store synth`` when missing), warms up (CUDA context, kernels: Tune's reused actors pay
this once), waits at a barrier, then trains the paper-best trial (``conf/trial/paper-best.yaml``)
``--trials-per-process`` times with different seeds. It prints trials/hour per fraction with the
ratio against fraction 1, where a trial's time goes (setup = store tensors onto the device and the
model; train; eval = val scoring every epoch) and the peak GPU memory per trial process, which
bounds how small a fraction the card can hold. Ray's own per-trial cost is
``benchmarks/bench_search.py``'s figure (about 0.2 s per trial), small beside these trials.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAPER_BEST = ROOT / "conf" / "trial" / "paper-best.yaml"


def ensure_demo(demo: Path) -> None:
    command = [sys.executable, "-m", "feature_store", "synth", "--out", str(demo)]
    subprocess.run([*command, "--skip-existing"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def trial_process(
    demo: str,
    overrides: list[str],
    seeds: list[int],
    barrier: mp.synchronize.Barrier,
    results: mp.Queue,
) -> None:
    """One Tune trial worker: one thread, the shared device, several trials in a row."""
    os.environ["OMP_NUM_THREADS"] = "1"  # what Ray gives a 1-CPU trial
    import torch

    import feature_store
    from trainables import load_trial_config, train_trial

    torch.set_num_threads(1)
    data = feature_store.pair(
        Path(demo) / "visual" / "basic", Path(demo) / "audio" / "spectrogram"
    ).load()
    warm = time.perf_counter()
    train_trial(load_trial_config(PAPER_BEST, [*overrides, "epochs=1"]), data)
    warm_s = time.perf_counter() - warm
    cuda = torch.cuda.is_available() and "device=cpu" not in overrides
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    barrier.wait()
    timings = []
    for seed in seeds:
        result = train_trial(load_trial_config(PAPER_BEST, [*overrides, f"seed={seed}"]), data)
        timings.append(dict(result.timing, val_acc=result.metrics["val_acc"]))
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
    results.put({"warm_s": warm_s, "timings": timings, "peak_mib": peak, "done": time.time()})


def run_fraction(
    fraction: float, demo: Path, overrides: list[str], trials_per_process: int
) -> dict[str, float]:
    processes = round(1 / fraction)
    context = mp.get_context("spawn")  # CUDA cannot be forked
    barrier = context.Barrier(processes + 1)
    results: mp.Queue = context.Queue()
    workers = [
        context.Process(
            target=trial_process,
            args=(
                str(demo),
                overrides,
                [1000 * index + k for k in range(trials_per_process)],
                barrier,
                results,
            ),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    barrier.wait(timeout=900)
    start = time.time()
    reports = [results.get(timeout=3600) for _ in workers]
    for worker in workers:
        worker.join()
    wall = max(report["done"] for report in reports) - start
    trials = [t for report in reports for t in report["timings"]]
    return {
        "processes": processes,
        "trials": len(trials),
        "wall_s": wall,
        "per_hour": len(trials) / wall * 3600,
        "trial_s": statistics.median(t["setup_s"] + t["train_s"] + t["eval_s"] for t in trials),
        "setup_s": statistics.median(t["setup_s"] for t in trials),
        "train_s": statistics.median(t["train_s"] for t in trials),
        "eval_s": statistics.median(t["eval_s"] for t in trials),
        "warm_s": statistics.median(report["warm_s"] for report in reports),
        "peak_mib": max(report["peak_mib"] for report in reports),
        "val_acc": statistics.median(t["val_acc"] for t in trials),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "data" / "demo")
    parser.add_argument("--fractions", default="1,0.25,0.125,0.0625")
    parser.add_argument("--trials-per-process", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40, help="paper-best trains 40")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "no CUDA device here: this benchmark measures GPU sharing and has not run", flush=True
        )
        return 1
    ensure_demo(args.demo)
    overrides = [f"device={args.device}", f"epochs={args.epochs}"]
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"paper-best trial, {args.epochs} epochs, AFEW-sized planted stores (visual/basic x "
        f"audio/spectrogram), {args.trials_per_process} trials per process, device {name}",
        flush=True,
    )
    header = (
        f"{'gpu':>7} {'procs':>5} {'trials':>6} {'wall s':>7} {'trials/h':>9} {'ratio':>6} "
        f"{'trial s':>7} {'setup':>6} {'train':>6} {'eval':>6} {'warm-up':>7} {'MiB':>6} {'val':>5}"
    )
    print(header, flush=True)
    baseline = None
    for fraction in (float(f) for f in args.fractions.split(",")):
        row = run_fraction(fraction, args.demo, overrides, args.trials_per_process)
        baseline = baseline or row["per_hour"]
        print(
            f"{fraction:7.4g} {row['processes']:5d} {row['trials']:6d} {row['wall_s']:7.1f} "
            f"{row['per_hour']:9.0f} {row['per_hour'] / baseline:6.2f} {row['trial_s']:7.1f} "
            f"{row['setup_s']:6.2f} {row['train_s']:6.1f} {row['eval_s']:6.2f} "
            f"{row['warm_s']:7.1f} {row['peak_mib']:6.0f} {row['val_acc']:5.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
