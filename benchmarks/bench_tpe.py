"""Search efficiency on the planted stores: trials TPE needs to reach 98 % of the best
configuration's val accuracy, against random search (issue 4; target: TPE needs at most half).

    .venv/bin/python benchmarks/bench_tpe.py [--seeds 11] [--trials 200] [--epochs 8]
        [--cache /tmp/bench_tpe_cache.json] [--config conf/search/demo.yaml]

How it works, so the figure is cheap to repeat and cannot be tuned by accident:

1. The space is ``conf/search/demo.yaml`` narrowed, through the same ``--set``-style overrides
   ``python -m search run`` takes, to a FINITE space of categoricals with no conditional parameter
   (``SPACE`` and ``VISUAL``/``AUDIO`` below; 2 × 1 × 4 × 3 × 2 × 3 = 144 configurations). Every
   other trial field keeps the search's fixed value (``trial:`` of the YAML, then TrialConfig's
   defaults: AdamW, batch 32, cosine schedule, dropout 0.3, FBP 4/128, transformer hidden 128).
2. The WHOLE grid is trained once with ``trainables.train_trial`` on the full-scale planted stores
   (``--epochs`` epochs, trial seeds 0..``--train-seeds``−1 with a configuration's value the mean
   over them, 1 torch thread, ``--jobs`` processes; ~3 s each, ~8 min for 144) and every val_acc
   is cached in a JSON file keyed on the full trial config and both stores' checksums. A re-run with
   the same cache trains nothing. The best configuration is the maximum over the whole grid, not
   over what a sampler happened to visit.
3. For each of ``--seeds`` seeds, the project's own searcher (``search.tune_runner.make_searcher``:
   OptunaSearch over ``search.space.SpaceSampler``, with ``sampler: tpe`` — seeded, multivariate,
   group, n_startup_trials from the budget — or ``sampler: random``, Optuna's RandomSampler) is
   driven for ``--trials`` sequential trials (``max_concurrent=1``, so no constant liar), each
   trial answered from the table. The figure per run is the 1-based index of the first trial whose
   val_acc >= ``--fraction`` × best, or trials + 1 when none does (a censored run). The default
   of 200 trials exceeds the grid so that few runs are censored and the medians mean something.

Printed: the grid (size, best configuration, how many are within the fraction and the number of
trials random search would need by the geometric law, as a check on the random runs), then the
median and interquartile range of trials-to-target for TPE and for random, their ratio and whether
the target (ratio <= 0.5) is met; then, as context from the same runs, the medians at lower
fractions of the best (0.95, 0.90, 0.85), where more configurations qualify. The trial seed is
fixed at 0 for every configuration so one table serves all sampler seeds; a real search trains its
trials with the search's seed instead.
"""

from __future__ import annotations

import argparse
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
# The narrowed space: the paper's attention × fusion choices, the learning rate as a short list.
VISUAL = ["basic", "f-meanstd"]
AUDIO = ["logmel"]
SPACE: dict[str, list[Any]] = {
    "visual_attention": ["mean", "self", "relation", "transformer"],
    "audio_attention": ["mean", "self", "transformer"],
    "fusion": ["fbp", "concat"],
    "lr": [1.0e-3, 3.0e-3, 1.0e-2],
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
    parser.add_argument("--seeds", type=int, default=11, help="sampler seeds per sampler")
    parser.add_argument(
        "--trials", type=int, default=200, help="trials per sampler run (more than the grid)"
    )
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
        default=1,
        help="a configuration's val_acc is the mean over this many training seeds (less noise)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="grid trials trained in parallel")
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
    items = [
        f"name=bench-tpe-{sampler}-{seed}",
        f"seed={seed}",
        f"sampler={sampler}",
        f"stores.root={stores_root}",
        f"stores.visual_feature={json.dumps(VISUAL)}",
        f"stores.audio_feature={json.dumps(AUDIO)}",
        f"space={json.dumps(SPACE)}",
        f"budget.epochs={args.epochs}",
        f"budget.grace_period={min(2, args.epochs)}",
        f"budget.num_trials={args.trials}",
        "budget.max_concurrent=1",
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
    from trainables import validate_config

    sampled = {k: v for k, v in params.items() if k not in ("visual_feature", "audio_feature")}
    return validate_config(
        {**config.trial, **sampled, "epochs": config.budget.epochs, "seed": seed}
    )


def cache_key(config, params: dict[str, Any], checksums: dict[str, str], seed: int = 0) -> str:
    """The full trial config (what ``search.trial.run_trial`` trains) plus both stores' checksums."""
    visual, audio = params["visual_feature"], params["audio_feature"]
    trial = trial_of(config, params, seed)
    return json.dumps(
        {
            **trial.model_dump(),
            "visual_feature": visual,
            "audio_feature": audio,
            "visual_checksum": checksums[f"visual/{visual}"],
            "audio_checksum": checksums[f"audio/{audio}"],
        },
        sort_keys=True,
    )


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


def evaluate_grid(config, args: argparse.Namespace) -> dict[str, float]:
    """val_acc of every grid configuration (mean over ``--train-seeds`` training seeds), each
    (configuration, seed) trained once and kept in ``args.cache``."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm import tqdm

    import feature_store

    paths = {
        f"{modality}/{variant}": str(config.stores.path(modality, variant))
        for modality in ("visual", "audio")
        for variant in getattr(config.stores, f"{modality}_feature")
    }
    checksums = {name: feature_store.open_store(path).checksum for name, path in paths.items()}
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
        cache_key(config, params, checksums): statistics.mean(
            table[keys[index, seed]] for seed in seeds
        )
        for index, params in enumerate(configs)
    }


def search_values(args, sampler: str, seed: int, value_of) -> list[float]:
    """Drive the search's own searcher for ``args.trials`` trials; the val_acc of each, in order."""
    from search.tune_runner import make_searcher

    searcher = make_searcher(load_config(args, sampler, seed))
    values = []
    for index in range(1, args.trials + 1):
        trial_id = f"{sampler}-{seed}-{index}"
        params = searcher.suggest(trial_id)
        values.append(value_of(params))
        searcher.on_trial_complete(trial_id, {"val_acc": values[-1], "finished": 1})
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
    table = evaluate_grid(config, args)

    import feature_store

    checksums = {
        f"{modality}/{variant}": feature_store.open_store(
            config.stores.path(modality, variant)
        ).checksum
        for modality in ("visual", "audio")
        for variant in getattr(config.stores, f"{modality}_feature")
    }
    best_key = max(table, key=table.__getitem__)
    best = table[best_key]
    target = args.fraction * best
    good = sum(value >= target for value in table.values())
    size = len(table)
    values = sorted(table.values())
    best_params = {k: v for k, v in json.loads(best_key).items() if k in SPACE or "feature" in k}
    # Random search samples with replacement: trials to the first hit are geometric, p = good/size.
    geometric = math.ceil(math.log(0.5) / math.log(1 - good / size)) if good < size else 1
    print(f"space: visual_feature={VISUAL} audio_feature={AUDIO} " + json.dumps(SPACE))
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

    def value_of(params: dict[str, Any]) -> float:
        return table[cache_key(config, params, checksums)]

    runs = {
        sampler: [search_values(args, sampler, seed, value_of) for seed in range(args.seeds)]
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
