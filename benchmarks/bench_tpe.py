"""Search efficiency on the planted stores: trials TPE needs to reach 98 % of the best
configuration's val accuracy, against random search (issue 4; target: TPE needs at most half).

    .venv/bin/python benchmarks/bench_tpe.py [--space demo|narrow] [--train-seeds 5] [--jobs 2]
        [--seeds 31] [--trials 400] [--observe one-seed|mean] [--epochs 8]
        [--cache /tmp/bench_tpe_cache.json] [--config conf/search/demo.yaml]

How it works, so the figure is cheap to repeat and cannot be tuned by accident:

1. The space is ``conf/search/demo.yaml`` narrowed, through the same ``--set``-style overrides
   ``python -m search run`` takes, to a FINITE space of categoricals with no conditional parameter
   (``SPACES`` below). ``demo`` (the default): the demo's attention and fusion choices, AdamW or
   SGD, and its learning-rate range [3e-4, 3e-2] at half-decade steps, on two visual variants:
   2 × 4 × 3 × 2 × 2 × 5 = 480 configurations. ``narrow``: only AdamW and three good learning
   rates (144 configurations), the space of the first measurement. Every other trial field keeps
   the search's fixed value (``trial:`` of the YAML, then TrialConfig's defaults: batch 32, cosine
   schedule, dropout 0.3, FBP 4/128, transformer hidden 128, SGD momentum 0.9).
2. The WHOLE grid is trained with ``trainables.train_trial`` on the full-scale planted stores
   (``--epochs`` epochs, training seeds 0..``--train-seeds``−1, 1 torch thread, ``--jobs``
   processes; ~1 s per training with two jobs, ~40 min for 480 × 5 from scratch) and every val_acc
   is cached in a JSON file keyed on the full trial config, the seed and both stores' checksums. A
   re-run trains only what the cache lacks. A configuration's value is its mean over the seeds;
   the best configuration is the maximum over the whole grid, not over what a sampler visited.
3. For each of ``--seeds`` seeds, the project's own searcher (``search.adapter.make_searcher``:
   OptunaSearch over ``search.space.SpaceSampler``, with ``sampler: tpe`` — seeded, multivariate,
   group, n_startup_trials from the budget — or ``sampler: random``, Optuna's RandomSampler) is
   driven for ``--trials`` sequential trials (``max_concurrent=1``, so no constant liar). With
   ``--observe one-seed`` (default) a trial's searcher is told the val_acc of ONE training seed
   drawn at random, as a real search that trains each trial once sees a noisy objective; with
   ``mean`` it is told the configuration's mean. The figure per run is the 1-based index of the
   first trial whose configuration's MEAN val_acc >= ``--fraction`` × best, or trials + 1 when
   none does (a censored run). 400 trials is well beyond the 480-configuration grid's geometric
   median for random search when one configuration qualifies (333), so medians are uncensored as
   long as fewer than half the runs are.

Printed: the grid (size, best configuration, how many are within the fraction and the number of
trials random search would need by the geometric law, as a check on the random runs), then the
median and interquartile range of trials-to-target for TPE and for random, their ratio and whether
the target (ratio <= 0.5) is met; then, as context from the same runs, the medians at lower
fractions of the best (0.95, 0.90, 0.85), where more configurations qualify.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DEMO_CONFIG = REPO / "conf" / "search" / "demo.yaml"
# The finite spaces the searchers are compared on (``--space``). "demo" is conf/search/demo.yaml's
# space made finite: its attention and fusion choices (audio attention without relation), two of its
# optimisers and its learning-rate range [3e-4, 3e-2] at half-decade steps, so it keeps the bad corners
# a real search has to leave (SGD at a small rate, mean pooling). "narrow" is the space of the first
# measurement: only good learning rates and AdamW, where every configuration is within a few
# points of every other and no sampler can be much better than random.
SPACES: dict[str, tuple[list[str], list[str], dict[str, list[Any]]]] = {
    "demo": (
        ["basic", "f-meanstd"],
        ["logmel"],
        {
            "visual_attention": ["mean", "self", "relation", "transformer"],
            "audio_attention": ["mean", "self", "transformer"],
            "fusion": ["fbp", "concat"],
            "optimizer": ["adamw", "sgd"],
            "lr": [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2],
        },
    ),
    "narrow": (
        ["basic", "f-meanstd"],
        ["logmel"],
        {
            "visual_attention": ["mean", "self", "relation", "transformer"],
            "audio_attention": ["mean", "self", "transformer"],
            "fusion": ["fbp", "concat"],
            "lr": [1.0e-3, 3.0e-3, 1.0e-2],
        },
    ),
}
SENSITIVITY = (0.95, 0.90, 0.85)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="trials TPE needs to reach a fraction of the best val_acc, against random search"
    )
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="search config to narrow")
    parser.add_argument(
        "--stores", type=Path, default=None, help="stores root (default: the config's)"
    )
    parser.add_argument(
        "--space", choices=sorted(SPACES), default="demo", help="which finite space (see SPACES)"
    )
    parser.add_argument("--seeds", type=int, default=31, help="sampler seeds per sampler")
    parser.add_argument("--trials", type=int, default=400, help="trials per sampler run")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of every grid trial")
    parser.add_argument(
        "--fraction", type=float, default=0.98, help="target: this fraction of the best val_acc"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/bench_tpe_cache.json"),
        help="JSON table of val_acc per configuration (reused when present)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the grid")
    parser.add_argument(
        "--train-seeds",
        type=int,
        default=5,
        help="a configuration's val_acc is the mean over this many training seeds",
    )
    parser.add_argument(
        "--observe",
        choices=["mean", "one-seed"],
        default="one-seed",
        help="what a searcher is told per trial: the mean over training seeds, or one seed's "
        "val_acc (a noisy objective, like a real search)",
    )
    parser.add_argument(
        "--plot",
        default="runs/bench_tpe.png",
        help="PNG of the best-so-far trajectories ('' for none)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="grid trials trained in parallel")
    args = parser.parse_args()
    if min(args.seeds, args.trials, args.epochs, args.train_seeds, args.jobs) < 1 or not (
        0 < args.fraction <= 1
    ):
        parser.error(
            "--seeds, --trials, --epochs, --train-seeds and --jobs must be >= 1, "
            "--fraction in (0, 1]"
        )
    return args


def overrides(args: argparse.Namespace, stores_root: Path, sampler: str, seed: int) -> list[str]:
    """The narrowing, as the ``--set`` overrides a user would pass to ``python -m search run``."""
    visual, audio, space = SPACES[args.space]
    items = [
        f"name=bench-tpe-{sampler}-{seed}",
        f"seed={seed}",
        f"sampler={sampler}",
        f"stores.root={stores_root}",
        f"stores.visual_feature={json.dumps(visual)}",
        f"stores.audio_feature={json.dumps(audio)}",
        f"space={json.dumps(space)}",
        f"budget.epochs={args.epochs}",
        f"budget.grace_period={min(2, args.epochs)}",
        f"budget.num_trials={args.trials}",
        "budget.max_concurrent=1",
        # the samplers alone: no start points or grid, which both would run alike
        "start_from=[]",
        "start_grid=[]",
    ]
    return items


def load_config(args: argparse.Namespace, sampler: str = "tpe", seed: int = 0):
    import yaml

    from search.config import load_search_config

    root = args.stores
    if root is None:
        raw = yaml.safe_load(args.config.read_text())
        root = (REPO / raw["stores"]["root"]).resolve()
    return load_search_config(args.config, overrides(args, root, sampler, seed))


def ensure_stores(args: argparse.Namespace) -> None:
    """Write the planted stores when the config's root lacks them (as ``make demo`` does)."""
    from search.config import load_search_config

    try:
        load_config(args)
    except Exception:
        config = load_search_config(args.config, check_stores=False)
        root = args.stores or (REPO / config.stores.root)
        print(f"writing the planted stores into {root} ...", flush=True)
        command = [sys.executable, "-m", "feature_store", "synth", "--out", str(root)]
        subprocess.run(command + ["--skip-existing"], check=True, stdout=subprocess.DEVNULL)


def grid(config) -> list[dict[str, Any]]:
    """Every configuration of the finite space, as the sampled parameters a searcher returns."""
    from itertools import product

    from search.space import CONDITIONS

    axes: dict[str, list[Any]] = {
        "visual_feature": list(config.stores.visual_feature),
        "audio_feature": list(config.stores.audio_feature),
    }
    for key, spec in config.space.items():
        if not isinstance(spec, list) or key in CONDITIONS:
            raise SystemExit(f"space.{key}: the benchmark needs categoricals without conditions")
        axes[key] = spec
    return [dict(zip(axes, values, strict=True)) for values in product(*axes.values())]


def trial_of(config, params: dict[str, Any], seed: int):
    """The TrialConfig a search would train for these sampled parameters, with a training seed."""
    from search.trial_fields import FEATURE_KEYS, TRIAL_NUMBER
    from trainables import validate_config

    sampled = {k: v for k, v in params.items() if k not in (*FEATURE_KEYS, TRIAL_NUMBER)}
    return validate_config(
        {**config.trial, **sampled, "epochs": config.budget.epochs, "seed": seed}
    )


@functools.cache
def trainables_code() -> str:
    """sha256 of the trainables package's sources: a cached val_acc holds only for the code that
    trained it, so a change to the models or the training loop retrains the grid."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "trainables").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(config, params: dict[str, Any], checksums: dict[str, str], seed: int = 0) -> str:
    """The full trial config (what ``search.trial.run_trial`` trains), both stores' checksums and
    the trainables code."""
    visual, audio = params["visual_feature"], params["audio_feature"]
    trial = trial_of(config, params, seed)
    return json.dumps(
        {
            **trial.model_dump(),
            "trainables_code": trainables_code(),
            "visual_feature": visual,
            "audio_feature": audio,
            "visual_checksum": checksums[f"visual/{visual}"],
            "audio_checksum": checksums[f"audio/{audio}"],
        },
        sort_keys=True,
    )


def store_paths(config) -> dict[str, str]:
    """ "visual/VARIANT" / "audio/VARIANT" -> store folder, for every variant the space uses."""
    return {
        f"{modality}/{variant}": str(config.stores.path(modality, variant))
        for modality in ("visual", "audio")
        for variant in getattr(config.stores, f"{modality}_feature")
    }


def store_checksums(paths: dict[str, str]) -> dict[str, str]:
    import feature_store

    return {name: feature_store.open_store(path).checksum for name, path in paths.items()}


_LOADED: dict[str, Any] = {}


def _load_stores(paths: dict[str, str], threads: int) -> None:
    """Worker initializer: every store read into memory once per process."""
    import torch

    import feature_store

    torch.set_num_threads(threads)
    _LOADED.update({name: feature_store.open_store(path).load() for name, path in paths.items()})


def _train(config, params: dict[str, Any], seed: int) -> float:
    import feature_store
    from trainables import train_trial

    pair = feature_store.StorePair(
        _LOADED[f"visual/{params['visual_feature']}"], _LOADED[f"audio/{params['audio_feature']}"]
    )
    return float(train_trial(trial_of(config, params, seed), pair).history[-1]["val_acc"])


def evaluate_grid(config, args: argparse.Namespace) -> dict[str, list[float]]:
    """val_acc of every grid configuration for each of ``--train-seeds`` training seeds, each
    (configuration, seed) trained once and kept in ``args.cache``."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm import tqdm

    paths = store_paths(config)
    checksums = store_checksums(paths)
    table: dict[str, float] = json.loads(args.cache.read_text()) if args.cache.is_file() else {}
    configs = grid(config)
    seeds = range(args.train_seeds)
    keys = {
        (index, seed): cache_key(config, params, checksums, seed)
        for index, params in enumerate(configs)
        for seed in seeds
    }
    todo = [(index, seed) for (index, seed), key in keys.items() if key not in table]
    if todo:
        started = time.perf_counter()
        with ProcessPoolExecutor(
            args.jobs,
            mp_context=get_context("spawn"),
            initializer=_load_stores,
            initargs=(paths, args.threads),
        ) as pool:
            futures = {
                pool.submit(_train, config, configs[index], seed): (index, seed)
                for index, seed in todo
            }
            for future in tqdm(as_completed(futures), total=len(futures), desc="grid trials"):
                table[keys[futures[future]]] = future.result()
                args.cache.write_text(json.dumps(table, indent=0))  # an interrupted run resumes
        print(f"trained {len(todo)} grid trials in {time.perf_counter() - started:.0f} s")
    else:
        print(f"all {len(keys)} grid trials read from {args.cache}")
    return {
        cache_key(config, params, checksums): [table[keys[index, seed]] for seed in seeds]
        for index, params in enumerate(configs)
    }


def search_values(args, sampler: str, seed: int, observe) -> list[float]:
    """Drive the search's own searcher for ``args.trials`` trials. The searcher is told what
    ``observe(params, rng)`` returns; the list holds each trial's configuration's mean val_acc,
    in trial order (what "reached 98 % of the best" is judged on)."""
    import random

    from search.adapter import make_searcher

    searcher = make_searcher(load_config(args, sampler, seed))
    rng = random.Random(f"observe-{seed}")  # both samplers see the same draws for a configuration
    values = []
    for index in range(1, args.trials + 1):
        trial_id = f"{sampler}-{seed}-{index}"
        params = searcher.suggest(trial_id)
        observed, mean = observe(params, rng)
        values.append(mean)
        searcher.on_trial_complete(trial_id, {"val_acc": observed, "finished": 1})
    return values


def first_reaching(values: list[float], target: float) -> int:
    """1-based index of the first trial at or above target; len(values) + 1 when none is."""
    return next((i for i, value in enumerate(values, 1) if value >= target), len(values) + 1)


def quartiles(values: list[int]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def main() -> int:
    args = parse_args()
    warnings.filterwarnings("ignore")
    ensure_stores(args)
    config = load_config(args)
    per_seed = evaluate_grid(config, args)
    table = {key: statistics.mean(values) for key, values in per_seed.items()}

    checksums = store_checksums(store_paths(config))
    visual, audio, space = SPACES[args.space]
    best_key = max(table, key=table.__getitem__)
    best = table[best_key]
    target = args.fraction * best
    good = sum(value >= target for value in table.values())
    size = len(table)
    values = sorted(table.values())
    best_params = {k: v for k, v in json.loads(best_key).items() if k in space or "feature" in k}
    # Random search samples with replacement: trials to the first hit are geometric, p = good/size.
    geometric = math.ceil(math.log(0.5) / math.log(1 - good / size)) if good < size else 1
    print(
        f"space {args.space!r}: visual_feature={visual} audio_feature={audio} " + json.dumps(space)
    )
    print(
        f"grid: {size} configurations, {args.epochs} epochs, mean of {args.train_seeds} "
        f"training seed(s); val_acc min {values[0]:.3f}, "
        f"median {statistics.median(values):.3f}, best {best:.3f} ({best_params})"
    )
    print(
        f"target: val_acc >= {args.fraction:g} x {best:.4f} = {target:.4f}; "
        f"{good} of {size} configurations reach it (random search's median by the geometric "
        f"law: {geometric} trials)"
    )

    def observe(params: dict[str, Any], rng) -> tuple[float, float]:
        key = cache_key(config, params, checksums)
        seen = table[key] if args.observe == "mean" else rng.choice(per_seed[key])
        return seen, table[key]

    print(
        "the searchers see "
        + (
            "each configuration's mean val_acc"
            if args.observe == "mean"
            else "the val_acc of ONE training seed drawn at random per trial (as a real search "
            "does); reaching the target is judged on the configuration's mean"
        )
    )
    from tqdm import tqdm

    runs = {
        sampler: [
            search_values(args, sampler, seed, observe)
            for seed in tqdm(range(args.seeds), desc=f"{sampler} searches", leave=False)
        ]
        for sampler in ("tpe", "random")
    }
    print(f"trials to the target, {args.seeds} seeds, at most {args.trials} trials each")
    print(f"({args.trials + 1} = not reached):")
    results = {s: [first_reaching(v, target) for v in found] for s, found in runs.items()}
    for sampler, found in results.items():
        q1, median, q3 = quartiles(found)
        missed = sum(n > args.trials for n in found)
        print(
            f"  {sampler:<6} median {median:5.1f}  IQR {q1:.1f}-{q3:.1f}  "
            f"not reached {missed}/{args.seeds}  runs {found}"
        )
    tpe, random = (statistics.median(results[s]) for s in ("tpe", "random"))
    ratio = tpe / random
    verdict = "met" if ratio <= 0.5 else "NOT met"
    print(f"TPE / random (medians): {tpe:g} / {random:g} = {ratio:.2f}  (target <= 0.5: {verdict})")
    # Context only, from the same runs: how the ratio depends on how many configurations qualify.
    print("same runs, other fractions of the best (context, not the target):")
    for fraction in SENSITIVITY:
        level = fraction * best
        medians = {
            s: statistics.median(first_reaching(v, level) for v in found)
            for s, found in runs.items()
        }
        count = sum(value >= level for value in table.values())
        print(
            f"  {fraction:.2f} x best ({count:3d}/{size} qualify): TPE {medians['tpe']:g}, "
            f"random {medians['random']:g}, ratio {medians['tpe'] / medians['random']:.2f}"
        )
    if args.plot:
        plot_trajectories(runs, best, args)
        print(f"trajectories: {args.plot}")
    return 0


def plot_trajectories(runs: dict[str, list[list[float]]], best: float, args) -> None:
    """Best configuration so far (its mean val_acc, as a fraction of the grid's best) against
    trials: the median over seeds with the interquartile band, per sampler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    trials = np.arange(1, args.trials + 1)
    for (sampler, found), color in zip(runs.items(), ("tab:blue", "tab:orange"), strict=True):
        so_far = np.maximum.accumulate(np.asarray(found), axis=1) / best
        q1, median, q3 = np.percentile(so_far, [25, 50, 75], axis=0)
        ax.plot(trials, median, color=color, label=f"{sampler} (median of {len(found)} seeds)")
        ax.fill_between(trials, q1, q3, color=color, alpha=0.2, linewidth=0)
    ax.axhline(args.fraction, color="0.3", linestyle="--", linewidth=1)
    ax.text(1, args.fraction, f" {args.fraction:g} × best", ha="left", va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("trial")
    ax.set_ylabel("best so far / best of the grid")
    ax.set_title(f"space {args.space!r}, searchers see {args.observe}")
    ax.legend(loc="lower right")
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.plot)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
