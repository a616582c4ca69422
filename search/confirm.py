"""``python -m search confirm NAME --top K --seeds S``: the best trials retrained with fresh seeds.

A search trains each configuration once and ranks it on the 383 clips it is scored on, so the top
of a leaderboard mixes good configurations with lucky seeds. ``confirm`` takes the K best finished
trials, retrains each configuration (its exact ``config.yaml``) with S new seeds on the cluster —
one Ray task per (trial, seed) with the search's resources per trial — and records every retrain
as an MLflow child run of the search tagged ``avfusion.kind=confirm`` and
``avfusion.confirms=<the trial's run id>``. It prints each configuration's mean val accuracy over
its original seed and the new ones, with the standard deviation; ``report`` and ``ensembling``
read the same runs.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from search import tracking
from search.config import config_from_dict
from search.errors import SearchError
from search.tune_runner import init_ray, load_stores, search_status

CONFIRM = "confirm"
CONFIRMS = "avfusion.confirms"
SEED_OFFSET = 1000  # confirm seeds: 1001, 1002, ... never a search's own seed


@dataclass(frozen=True)
class Confirmed:
    run_id: str
    label: str
    original: float
    retrained: list[float]

    @property
    def values(self) -> list[float]:
        return [self.original, *self.retrained]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def _label(config: dict[str, Any], features: tuple[str, str]) -> str:
    return (
        f"{features[0]}+{features[1]} {config['visual_attention']}/{config['audio_attention']} "
        f"{config['fusion']}"
    )


def _retrain(
    trial_config: dict[str, Any],
    features: tuple[str, str],
    seed: int,
    stores,
    context: tracking.TrackingContext,
    confirms: str,
) -> float:
    """One retrain on whichever node Ray places it; its MLflow run is complete when this returns."""
    from feature_store.store import StorePair
    from trainables import train_trial, validate_config

    config = validate_config({**trial_config, "seed": seed}, where="confirmed trial config")
    visual, audio = stores["visual"][features[0]], stores["audio"][features[1]]
    recorder = tracking.TrialRecorder(
        context,
        trial_id=f"{confirms[:8]}-seed{seed}",
        run_name=f"{_label(config.model_dump(), features)} confirm seed {seed}",
        params={**config.model_dump(), "visual_feature": features[0], "audio_feature": features[1]},
        tags={CONFIRMS: confirms, "avfusion.seed": str(seed)},
        config_yaml=yaml.safe_dump(config.model_dump(), sort_keys=False),
        kind=CONFIRM,
    )
    try:
        result = train_trial(config, StorePair(visual, audio), report=recorder.log_epoch)
        recorder.finish(result)
    except Exception as exc:
        recorder.fail(exc)
        raise
    return float(result.metrics["val_acc"])


def confirm_search(
    name: str, *, top: int, seeds: int, tracking_uri: str | None = None, num_cpus: int | None = None
) -> list[Confirmed]:
    import ray

    if top < 1 or seeds < 1:
        raise SearchError(f"--top and --seeds must be >= 1, got {top} and {seeds}")
    outcome = search_status(name, tracking_uri=tracking_uri)
    client = tracking.client(outcome.tracking_uri)
    table = outcome.leaderboard
    best = table[table["status"] == tracking.FINISHED].head(top)
    if best.empty:
        raise SearchError(f"search {name!r} has no finished trial to confirm")
    with tempfile.TemporaryDirectory() as folder:
        raw = yaml.safe_load(
            Path(
                client.download_artifacts(outcome.parent_run_id, "search.yaml", folder)
            ).read_text()
        )
        configs = {
            row.run_id: yaml.safe_load(
                Path(client.download_artifacts(row.run_id, "config.yaml", folder)).read_text()
            )
            for row in best.itertuples()
        }
    config = config_from_dict(raw, source=f"search {name!r} (its search.yaml in MLflow)")
    stores = load_stores(config)
    init_ray(num_cpus)
    context = tracking.TrackingContext(
        outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id, name,
        tracking.git_commit(),
    )  # fmt: skip
    retrain = ray.remote(num_cpus=config.resources.cpus, num_gpus=config.resources.gpu)(_retrain)
    stores_ref = ray.put(stores)
    pending = {
        row.run_id: [
            retrain.remote(
                configs[row.run_id],
                (row.visual_feature, row.audio_feature),
                SEED_OFFSET + k,
                stores_ref,
                context,
                row.run_id,
            )  # fmt: skip
            for k in range(1, seeds + 1)
        ]
        for row in best.itertuples()
    }
    results = []
    for row in best.itertuples():
        values = [float(v) for v in ray.get(pending[row.run_id])]
        label = _label(row._asdict(), (row.visual_feature, row.audio_feature))
        results.append(Confirmed(row.run_id, label, float(row.val_acc), values))
    return sorted(results, key=lambda c: -c.mean)


def format_confirmed(results: list[Confirmed]) -> str:
    lines = [
        "val accuracy over seeds (the search's seed and the confirm seeds); ranked by the mean",
        f"{'#':>3} {'mean':>7} {'± std':>7} {'search':>7} {'seeds':>5}  configuration  run",
    ]
    for rank, c in enumerate(results, 1):
        lines.append(
            f"{rank:>3} {c.mean:7.4f} {c.std:7.4f} {c.original:7.4f} {len(c.values):>5}  "
            f"{c.label}  {c.run_id[:8]}"
        )
    return "\n".join(lines)
