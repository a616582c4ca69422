"""The best trials of a search trained again: with fresh seeds (``confirm``) or on train + val
(``refit``), one Ray task per retrain with the search's resources per trial.

``python -m search confirm NAME --top K --seeds S``: a search trains each configuration once and ranks it on the 383 clips it is scored on, so the top
of a leaderboard mixes good configurations with lucky seeds. ``confirm`` takes the K best finished
trials, retrains each configuration (its exact ``config.yaml``) with S new seeds on the cluster —
one Ray task per (trial, seed) with the search's resources per trial — and records every retrain
as an MLflow child run of the search tagged ``avfusion.kind=confirm`` and
``avfusion.confirms=<the trial's run id>``. It prints each configuration's mean val accuracy over
its original seed and the new ones, with the standard deviation; ``report`` and ``ensembling``
read the same runs.

``python -m search confirm NAME --top K --folds all`` (a fold protocol: DFEW, MAFW, RAVDESS,
CREMA-D): each configuration trained on every fold (``--folds 1,3`` some), ``--seeds`` seeds
each, its val part carved from that fold's training clips with the search's seed, its figures
those of the fold's test clips; child runs tagged ``avfusion.fold=k``. ``search.folds`` prints
WAR and UAR per fold and their mean ± std over folds; ``search report`` prints them too.

``python -m search refit NAME --top K``: as the paper's submissions 1-3, each of the K best
configurations is trained on train + val for the epochs chosen on val (the epoch of its best
val_acc in the search), with its own seed, as a child run tagged ``avfusion.kind=refit`` and
``avfusion.refits=<the trial's run id>``. Its test scores are what ``ensembling build --refit``
combines with the member and class weights chosen on val; its val figures are in-sample.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from avcore.results import CONFIRM, CONFIRMS, FINISHED, FOLD, REFIT, REFITS, SEED
from feature_store.store.protocol import protocol_of
from search.cluster import check_tracking_reach, init_ray
from search.config import config_from_dict
from search.errors import SearchError
from search.folds import FoldResult
from search.leaderboard import Confirmed
from search.outcome import search_status
from search.plot_actor import draw_plots
from search.recorder import TrialRecorder
from search.stores import fold_stores, load_stores, trial_data
from search.tracking import TrackingContext, client, git_commit
from trainables.config import trial_label

SEED_OFFSET = 1000  # confirm seeds: 1001, 1002, ... never a search's own seed


def _retrain(
    trial_config: dict[str, Any],
    features: tuple[str | None, str | None],
    stores,
    context: TrackingContext,
    of_run: str,
    kind: str,
    view: tuple[int, float, int] | None = None,
) -> float | tuple[float, float]:
    """One retrain on whichever node Ray places it; its MLflow run is complete when this returns.
    ``view`` (fold, val fraction, seed): train on that fold's view and return its test WAR, UAR."""
    from trainables.config import validate_config
    from trainables.train import train_trial

    config = validate_config(trial_config, where=f"{kind} trial config")
    if view is not None:
        stores = fold_stores(stores, *view)
    data = trial_data(stores, *features)
    present = {k: v for k, v in zip(("visual_feature", "audio_feature"), features) if v}
    link = CONFIRMS if kind == CONFIRM else REFITS
    what = f"seed {config.seed}" if kind == CONFIRM else f"{config.epochs} epochs on train+val"
    on_fold = "" if view is None else f"-fold{view[0]}"
    recorder = TrialRecorder(
        context,
        trial_id=f"{of_run[:8]}-{kind}{on_fold}-{config.seed}",
        run_name=f"{config.label(*features)} {kind}{on_fold.replace('-', ' ')} {what}",
        params={**config.used(), **present},
        tags={
            link: of_run,
            SEED: str(config.seed),
            **({} if view is None else {FOLD: str(view[0])}),
        },
        config_yaml=yaml.safe_dump(config.model_dump(), sort_keys=False),
        kind=kind,
    )
    fit_on = ("train", "val") if kind == REFIT else ("train",)
    try:
        result = train_trial(config, data, recorder.log_epoch, fit_on=fit_on)
        recorder.finish(result)
    except Exception as exc:
        recorder.fail(exc)
        raise
    # The same PNGs as a search trial's; drawn here, in the task, since no plotter serves retrains.
    draw_plots(context.uri, recorder.run_id, list(data.classes))
    if view is not None:
        return float(result.metrics["test_acc"]), float(result.metrics["test_uar"])
    return float(result.metrics["val_acc"])


@dataclass
class _Retraining:
    """What every retrain of one search needs: its best trials and their configs, the stores in
    Ray's object store, the tracking context, and the remote function with the search's resources."""

    outcome: Any
    best: Any  # leaderboard rows
    configs: dict[str, dict[str, Any]]
    stores: Any
    context: TrackingContext
    remote: Any
    config: Any  # the search's SearchConfig
    folds: int  # the protocol's folds; 0 for a fixed protocol

    def confirm(self, row, k: int, view: tuple[int, float, int] | None = None):
        """Start the confirm retrain of leaderboard ``row`` with its k-th fresh seed (on the fold
        ``view`` names); the Ray reference of its figure."""
        return self.remote.remote(
            {**self.configs[row.run_id], "seed": SEED_OFFSET + k},
            (row.visual_feature, row.audio_feature),
            self.stores,
            self.context,
            row.run_id,
            CONFIRM,
            view,
        )


def _prepare(
    name: str, top: int, tracking_uri: str | None, num_cpus: int | None, *, seeds: int = 1
) -> _Retraining:
    import ray

    if top < 1:
        raise SearchError(f"--top must be >= 1, got {top}")
    if seeds < 1:
        raise SearchError(f"--seeds must be >= 1, got {seeds}")
    outcome = search_status(name, tracking_uri=tracking_uri)
    mlflow_client = client(outcome.tracking_uri)
    table = outcome.leaderboard
    best = table[table["status"] == FINISHED].head(top)
    if best.empty:
        raise SearchError(f"search {name!r} has no finished trial to retrain")
    with tempfile.TemporaryDirectory() as folder:
        raw = yaml.safe_load(
            Path(
                mlflow_client.download_artifacts(outcome.parent_run_id, "search.yaml", folder)
            ).read_text()
        )
        configs = {
            row.run_id: yaml.safe_load(
                Path(
                    mlflow_client.download_artifacts(row.run_id, "config.yaml", folder)
                ).read_text()
            )
            for row in best.itertuples()
        }
    config = config_from_dict(raw, source=f"search {name!r} (its search.yaml in MLflow)")
    stores = load_stores(config)
    init_ray(num_cpus)
    check_tracking_reach(outcome.tracking_uri)
    context = TrackingContext(
        outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id, name, git_commit()
    )
    remote = ray.remote(num_cpus=config.resources.cpus, num_gpus=config.resources.gpu)(_retrain)
    folds = protocol_of(next(iter(stores["visual"].values()))).folds
    return _Retraining(outcome, best, configs, ray.put(stores), context, remote, config, folds)


def confirm_search(
    name: str, *, top: int, seeds: int, tracking_uri: str | None = None, num_cpus: int | None = None
) -> list[Confirmed]:
    import ray

    job = _prepare(name, top, tracking_uri, num_cpus, seeds=seeds)
    pending = {
        row.run_id: [job.confirm(row, k) for k in range(1, seeds + 1)]
        for row in job.best.itertuples()
    }
    results = []
    for row in job.best.itertuples():
        values = [float(v) for v in ray.get(pending[row.run_id])]
        label = trial_label(row._asdict())
        results.append(Confirmed(row.run_id, label, float(row.val_acc), values))
    return sorted(results, key=lambda c: -c.mean)


def confirm_folds(
    name: str,
    *,
    top: int,
    seeds: int,
    folds: str,
    tracking_uri: str | None = None,
    num_cpus: int | None = None,
) -> list[FoldResult]:
    """Train the ``top`` best configurations on each fold of ``folds`` (``all`` or ``1,3``),
    ``seeds`` seeds each; returns their WAR/UAR per fold, best mean WAR first."""
    import ray

    job = _prepare(name, top, tracking_uri, num_cpus, seeds=seeds)
    count = job.folds
    if not count:
        raise SearchError(
            f"search {name!r} runs on a fixed protocol (the dataset's own splits): it has no folds"
        )
    chosen = parse_folds(folds, count)
    view = job.config.stores.val_fraction, job.config.seed
    pending = [
        (row, fold, job.confirm(row, k, (fold, *view)))
        for row in job.best.itertuples()
        for fold in chosen
        for k in range(1, seeds + 1)
    ]
    results: dict[str, FoldResult] = {}
    for row, fold, ref in pending:
        result = results.setdefault(row.run_id, FoldResult(row.run_id, trial_label(row._asdict())))
        result.runs.setdefault(fold, []).append(ray.get(ref))
    return sorted(results.values(), key=lambda r: -r.summary()[0])


def parse_folds(text: str, count: int) -> list[int]:
    """``all`` -> 1..count; ``1,3`` -> [1, 3]; anything else one line."""
    if text.strip().lower() == "all":
        return list(range(1, count + 1))
    try:
        folds = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise SearchError(f"--folds {text!r}: expected 'all' or fold numbers like 1,3") from None
    if not folds or folds[0] < 1 or folds[-1] > count:
        raise SearchError(f"--folds {text!r}: this protocol has folds 1..{count}")
    return folds


def refit_search(
    name: str, *, top: int, tracking_uri: str | None = None, num_cpus: int | None = None
) -> list[tuple[str, str, int]]:
    """Refit the ``top`` best trials on train + val; returns (trial run, label, epochs) each."""
    import ray

    job = _prepare(name, top, tracking_uri, num_cpus)
    mlflow_client = client(job.outcome.tracking_uri)
    pending, chosen = [], []
    for row in job.best.itertuples():
        history = mlflow_client.get_metric_history(row.run_id, "val_acc")
        epochs = max(history, key=lambda m: (m.value, -m.step)).step if history else None
        epochs = int(epochs or job.configs[row.run_id]["epochs"])
        features = (row.visual_feature, row.audio_feature)
        config = {**job.configs[row.run_id], "epochs": epochs}
        pending.append(
            job.remote.remote(config, features, job.stores, job.context, row.run_id, REFIT)
        )
        chosen.append((row.run_id, trial_label(row._asdict()), epochs))
    ray.get(pending)
    return chosen


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
