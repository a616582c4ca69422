"""The Tune trainable: what Ray Tune runs for every trial of a search, on whichever node Ray places
it (the trial side; the driver never calls it). Not to be confused with ``trainables.train_trial``,
which trains one configuration on a pair of stores and knows nothing of Tune or MLflow.

``run_trial`` turns Optuna's sampled parameters into a ``TrialConfig``, pairs the two stores the driver put in
the object store (zero-copy numpy), trains with ``trainables.train_trial`` and records the trial in
MLflow through the tracking URI as it goes. The last epoch's result goes to Tune only after the
run holds its artifacts and status ``finished``: a result with ``finished=1`` is therefore a
complete run, and one without it (ASHA or the time limit stopped the trial) never is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from avcore import results
from avcore.results import EPOCHS_DONE, FINISHED, STATUS, TRIAL_ID, TUNE_TRIAL_ID
from feature_store.store import Store
from search.recorder import TrialRecorder
from search.stores import trial_data
from search.tracking import TrackingContext, client
from search.trial_fields import TRIAL_NUMBER, trial_number_text
from search.trial_runs import delete_runs, runs_of_trial


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its sampled parameters and the stores."""

    tracking: TrackingContext
    fixed: Mapping[str, Any]
    epochs: int
    seed: int
    # Set by ``resume``: a trial first looks for runs an interrupted driver left for its id.
    resumed: bool = False
    # mode reproducible: a resumed trial whose run is complete hands back its whole val_acc curve,
    # epoch by epoch (later trials' ASHA rungs are judged on it), not its last epoch alone.
    replay_curve: bool = False


def run_trial(
    config: dict[str, Any], *, stores: Mapping[str, Mapping[str, Store]], context: TrialContext
) -> None:
    """One trial: Optuna's sampled ``config`` trained on its two stores, reported to Tune epoch by
    epoch and recorded in MLflow (``search.recorder``)."""
    import ray
    from ray import tune

    from trainables.config import validate_config
    from trainables.tensors import stores_of
    from trainables.train import train_trial

    sampled = dict(config)
    # A single-modality trial (space.modality) has drawn only the variant it reads.
    visual_feature = sampled.pop("visual_feature", None)
    audio_feature = sampled.pop("audio_feature", None)
    sampled.pop(TRIAL_NUMBER, None)
    trial_config = validate_config(
        {**context.fixed, **sampled, "epochs": context.epochs, "seed": context.seed},
        where="sampled trial config",
    )
    data = trial_data(stores, visual_feature, audio_feature)
    read = stores_of(data, trial_config.modality)
    features = {"visual_feature": visual_feature, "audio_feature": audio_feature}
    tune_context = tune.get_context()
    tune_trial_id = tune_context.get_trial_id()
    trial_id = trial_number_text(config, tune_trial_id)
    if context.resumed and _replayed(context, trial_id, tune_trial_id):
        return
    recorder = TrialRecorder(
        context.tracking,
        trial_id=trial_id,
        tune_trial_id=tune_trial_id,
        run_name=f"{trial_config.label(visual_feature, audio_feature)} #{trial_id}",
        # Only what this configuration trains with; the stores' checksums are tags (below).
        params={**trial_config.used(), **{k: v for k, v in features.items() if v is not None}},
        tags={
            results.NODE_ID: ray.get_runtime_context().get_node_id(),
            **{
                k: v
                for modality, store in read.items()
                for k, v in _store_tags(modality, store).items()
            },
        },
        config_yaml=yaml.safe_dump(trial_config.model_dump(), sort_keys=False),
    )
    extra = {"epochs": context.epochs, "mlflow_run_id": recorder.run_id, "finished": 0}
    held: dict[str, Any] = {}

    def report(metrics: dict[str, Any]) -> None:
        recorder.log_epoch(metrics)
        if metrics.get("epoch", 0) >= context.epochs:
            held.update(metrics)  # reported once the run is complete, below
        else:
            tune.report({**metrics, **extra})

    try:
        result = train_trial(trial_config, data, report=report)
        recorder.finish(result)
    except Exception as exc:
        recorder.fail(exc)
        raise
    tune.report({**(held or result.history[-1]), **extra, "finished": 1})


def _store_tags(modality: str, store: Store) -> dict[str, str]:
    # Whether the features' sha256 and finiteness were checked (stores.validate_deep); the clip
    # tables' hashes are checked on every open.
    return {
        results.checksum(modality): store.checksum,
        results.deep_validated(modality): str(store.deep_validated).lower(),
    }


def _replayed(context: TrialContext, trial_id: str, tune_trial_id: str) -> bool:
    """On resume, Tune starts again every trial its last snapshot had not seen end (and a
    reproducible search proposes again, under the same number, each trial proposed after it).
    One whose run is complete in MLflow is not trained twice: its result goes back to Tune from
    the run, which now names this Tune trial. Any other run of it (interrupted, stopped, failed)
    is deleted, so the rerun is its only one."""
    from ray import tune

    runs = runs_of_trial(context.tracking, trial_id, key=TRIAL_ID)
    done = next((r for r in runs if r.data.tags.get(STATUS) == FINISHED), None)
    delete_runs(context.tracking.uri, [r.info.run_id for r in runs if r is not done])
    if done is None:
        return False
    run_id = done.info.run_id
    if done.data.tags.get(TUNE_TRIAL_ID) != tune_trial_id:  # kept by drop_unknown_trials
        client(context.tracking.uri).set_tag(run_id, TUNE_TRIAL_ID, tune_trial_id)
    epochs = int(done.data.tags.get(EPOCHS_DONE) or context.epochs)
    extra = {"epochs": context.epochs, "mlflow_run_id": run_id, "replayed": 1}
    if context.replay_curve:
        curve = client(context.tracking.uri).get_metric_history(run_id, "val_acc")
        for metric in sorted(curve, key=lambda m: m.step):
            if metric.step < epochs:
                tune.report({"val_acc": metric.value, "epoch": metric.step, **extra, "finished": 0})
    metrics = {k: v for k, v in done.data.metrics.items() if k not in ("epoch", "epochs")}
    tune.report({**metrics, "epoch": epochs, **extra, "finished": 1})
    return True
