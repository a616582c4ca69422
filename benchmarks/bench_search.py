"""Search overhead per trial: our search against a bare sequential loop of the same configurations,
and against stock Ray Tune + OptunaSearch + MLflowLoggerCallback.

    .venv/bin/python benchmarks/bench_search.py [--trials 16] [--epochs 2]

All three run the same trivial trials (tiny stores, a couple of epochs) one at a time, so what
remains after subtracting the bare loop's time is what the machinery costs per trial:

- bare loop: ``train_trial`` on each configuration in one process, nothing else;
- ours: ``search.driver.run_search`` (OptunaSearch + ASHA + an MLflow run per trial with its
  artifacts and plots, reused actors), ``max_concurrent=1``; startup (Ray, stores, experiment) is
  shown separately from the per-trial figure;
- stock: a Tuner with OptunaSearch enqueuing the same configurations, ``MLflowLoggerCallback`` and
  Tune's defaults (a fresh actor per trial, Tune's own loggers), the trial function calling the
  same ``train_trial``.

Overhead per trial = (wall time of the trials - bare loop time) / trials. Two figures for ours:

- whole search: ``run_search`` from its call to its return (experiment and parent run, the
  first actor's start, every trial, the queued PNG plots, the parent run's plots), over all trials;
- steady state: trials 2..n only, as throughput: the interval between the first and the last
  trial's *completed* per-trial work divided by n - 1, minus the bare loop's time per trial. The
  trials' PNGs are drawn by a background actor after their runs close, so the steady state is
  measured up to the last PNG landing (the slower of the two pipelines bounds the throughput);
  the trial path alone (run closed, PNGs not yet drawn) is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--skip-stock", action="store_true", help="leave out the stock Tune baseline"
    )
    args = parser.parse_args()

    import ray
    from test_search_support import DEMO_CONFIG, write_tiny_stores

    import feature_store
    from avcore import results
    from search import plot_actor, trial_runs
    from search.config import load_search_config
    from search.driver import run_search
    from trainables import train_trial

    work = Path(tempfile.mkdtemp(prefix="bench_search_"))
    root = write_tiny_stores(work / "stores")
    config = load_search_config(
        DEMO_CONFIG,
        [
            f"name=bench{os.getpid()}",
            f"stores.root={root}",
            "stores.visual_feature=[basic]",
            "stores.audio_feature=[spectrogram]",
            f"tracking.uri=sqlite:///{work}/mlruns/mlflow.db",
            f"storage_path={work}/ray_results",
            f"budget.num_trials={args.trials}",
            f"budget.epochs={args.epochs}",
            f"budget.grace_period={args.epochs}",  # no ASHA stops: every trial runs the same epochs
            "budget.max_concurrent=1",
            "budget.time_limit_s=null",
            "trial.device=cpu",
        ],
    )

    # -- ours ---------------------------------------------------------------------------------
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    init_s = time.perf_counter() - started
    fit_started, fit_started_epoch = time.perf_counter(), time.time()
    outcome = run_search(config)
    ours_s = time.perf_counter() - fit_started
    fit_ended_epoch = time.time()
    runs = trial_runs.trial_runs(outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id)
    runs.sort(key=lambda r: r.info.start_time)
    first_start = runs[0].info.start_time / 1000
    first_end, last_end = runs[0].info.end_time / 1000, runs[-1].info.end_time / 1000
    trial_configs = []
    for run in runs:
        params = run.data.params
        keep = set(config.space) | {"visual_feature", "audio_feature"}
        trial_configs.append({k: _typed(params[k]) for k in keep if k in params})
    statuses = {r.data.tags.get(results.STATUS) for r in runs}
    # When each run's PNGs landed (the embedded store keeps artifacts on this disk).
    landed = sorted(max(_mtime(run, name) for name in plot_actor.PLOTS) for run in runs)

    # -- bare loop ------------------------------------------------------------------------------
    data = feature_store.pair(root / "visual" / "basic", root / "audio" / "spectrogram").load()
    fixed = {**config.trial, "epochs": args.epochs, "seed": config.seed}

    def trial_config(sampled):
        return {**fixed, **{k: v for k, v in sampled.items() if not k.endswith("_feature")}}

    # Imports and first-call costs once, as a warm Ray actor has paid them.
    train_trial(trial_config(trial_configs[0]), data)
    started = time.perf_counter()
    for sampled in trial_configs:
        train_trial(trial_config(sampled), data)
    bare_s = time.perf_counter() - started

    stock_s = None
    if not args.skip_stock:
        stock_s = _stock(trial_configs, trial_config, data, work)
    ray.shutdown()

    n = len(trial_configs)
    bare_per_trial = bare_s / n
    ours_overhead = (ours_s - bare_s) / n
    # Trials 2..n as throughput: no one-time cost, every per-trial one (scheduling, Optuna,
    # actor reuse, the MLflow run and its artifacts, and the PNGs drawn behind the trials).
    trial_path = (last_end - first_end) / (n - 1) - bare_per_trial
    steady = max(trial_path, (landed[-1] - landed[0]) / (n - 1) - bare_per_trial)
    stock_overhead = None if stock_s is None else (stock_s - bare_s) / n

    def versus(overhead: float) -> str:
        text = f"{overhead:6.3f} s/trial = {overhead / bare_per_trial:5.1f} x bare trial"
        if stock_overhead:
            text += f", {overhead / stock_overhead:5.3f} x stock overhead"
        return text

    print(f"\ntrials: {n} x {args.epochs} epochs on tiny stores, one at a time; {sorted(statuses)}")
    print(f"bare loop (baseline)            {bare_s:7.2f} s   {bare_per_trial:6.3f} s/trial")
    if stock_s is not None:
        print(f"stock Tune+Optuna+MLflowLogger  {stock_s:7.2f} s   overhead {stock_overhead:6.3f}"
              f" s/trial (DESIGN.md: about 3.3 on 2 cores)")  # fmt: skip
    print(f"ours: ray.init                  {init_s:7.2f} s   once per search, not counted below")
    print(f"ours: whole search incl. startup {ours_s:6.2f} s   overhead {versus(ours_overhead)}")
    print(
        f"      one-time: to the first trial's start {first_start - fit_started_epoch:.1f} s, "
        f"first trial {first_end - first_start:.1f} s (actor start, imports); after the last "
        f"run closed {fit_ended_epoch - last_end:.1f} s (queued PNGs, parent run and its plots)"
    )
    print(f"ours: steady state, trials 2..n  overhead {versus(steady)}  (target <= 0.5 s)")
    print(
        f"      trial path alone (runs closed)  {trial_path:6.3f} s/trial;"
        f" PNGs landed every {(landed[-1] - landed[0]) / (n - 1):.3f} s"
    )
    return 0


def _mtime(run, name: str) -> float:
    from urllib.parse import urlparse

    path = Path(urlparse(run.info.artifact_uri).path, name)
    return path.stat().st_mtime if path.exists() else float("nan")


def _typed(text: str):
    import yaml

    return yaml.safe_load(text)


def _stock(trial_configs, trial_config, data, work: Path) -> float:
    """Stock Tune: OptunaSearch replaying the same configurations, MLflowLoggerCallback, defaults."""
    from optuna.distributions import CategoricalDistribution
    from ray import tune
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.search.optuna import OptunaSearch

    from trainables import train_trial

    # One categorical parameter holding the configuration's index replays exactly these trials.
    space = {"index": CategoricalDistribution(list(range(len(trial_configs))))}
    points = [{"index": i} for i in range(len(trial_configs))]

    def trainable(config, data=None):
        sampled = trial_configs[config["index"]]
        train_trial(trial_config(sampled), data, report=lambda m: tune.report(m))

    tuner = tune.Tuner(
        tune.with_parameters(trainable, data=data),
        tune_config=tune.TuneConfig(
            search_alg=OptunaSearch(
                space=space, metric="val_acc", mode="max", points_to_evaluate=points, seed=0
            ),
            num_samples=len(trial_configs),
            max_concurrent_trials=1,
        ),
        run_config=tune.RunConfig(
            name="stock",
            storage_path=str(work / "stock_results"),
            verbose=0,
            callbacks=[
                MLflowLoggerCallback(
                    tracking_uri=f"sqlite:///{work}/stock_mlruns/mlflow.db",
                    experiment_name="stock",
                )
            ],
        ),
    )
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "0"
    started = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
