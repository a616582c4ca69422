"""The contract between a search and ``ensembling`` (DESIGN.md "Trial results"): the MLflow tags
and statuses a run carries, the per-epoch metric names, and the ``scores.npz`` each trial, confirm
and refit run uploads. ``search`` and ``trainables`` write through here; ``ensembling`` reads
through here; neither side spells a tag or a key of its own.

Tags: ``avfusion.kind`` (``KINDS``), ``avfusion.status`` (``STATUSES``, ours: MLflow's own run
status says only whether the process ended; a trial ASHA stopped is FINISHED there and
``stopped_early`` here), ``avfusion.search``, ``avfusion.trial_id`` (the trial's number in the
search, as its run name, the progress lines and the leaderboard show it), ``avfusion.tune_trial_id``
(Ray Tune's id for it, what ``resume`` matches runs by), ``mlflow.parentRunId`` (a trial's search
run, an ensemble's when its members come from one search), ``avfusion.confirms`` / ``avfusion.refits`` (the
trial run a retraining repeats), ``avfusion.seed``, ``avfusion.driver`` (on a search run: "pid N on
HOST since TIME").

``scores.npz`` holds ``clip_ids_val`` (N_val,) str, ``val`` (N_val, 7) float32 softmax scores,
``labels_val`` (N_val,) int64, ``clip_ids_test`` (N_test,) str and ``test`` (N_test, 7) float32,
classes in ``avcore.afew.CLASSES`` order; it must load with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from avcore.afew import CLASSES
from avcore.errors import UserError

KIND, STATUS, SEARCH, TRIAL_ID = (
    "avfusion.kind",
    "avfusion.status",
    "avfusion.search",
    "avfusion.trial_id",
)
PARENT = "mlflow.parentRunId"
CONFIRMS, REFITS, SEED = "avfusion.confirms", "avfusion.refits", "avfusion.seed"
DRIVER = "avfusion.driver"
TUNE_TRIAL_ID = "avfusion.tune_trial_id"
# An ensemble run's members: their run ids and run names, comma-separated in weight order.
MEMBERS, MEMBER_NAMES = "avfusion.members", "avfusion.member_names"
EPOCHS_DONE = "avfusion.epochs_done"

TRIAL, SEARCH_RUN, CONFIRM, REFIT, ENSEMBLE = "trial", "search", "confirm", "refit", "ensemble"
KINDS = (TRIAL, SEARCH_RUN, CONFIRM, REFIT, ENSEMBLE, "train-audio", "finetune")

FINISHED, STOPPED_EARLY, FAILED, RUNNING = "finished", "stopped_early", "failed", "running"
INTERRUPTED = "interrupted"  # a search, or its trials, stopped by Ctrl+C: `resume` goes on
STATUSES = (RUNNING, FINISHED, STOPPED_EARLY, FAILED, INTERRUPTED)

EPOCH_METRICS = ("train_loss", "val_loss", "val_acc", "val_uar")

# Tags a person reads in the MLflow UI, which ``ensembling`` never needs: the commit a run trained
# (ours and MLflow's own name), a failed run's one-line cause, why the driver stopped a trial, the
# Ray node it ran on, the stores it read and whether their sha256 was checked, a search's best.
GIT_COMMIT = "avfusion.git_commit"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
ERROR = "avfusion.error"
STOP_REASON = "avfusion.stop_reason"
NODE_ID = "avfusion.node_id"
BEST_RUN_ID, BEST_TRIAL_ID = "avfusion.best_run_id", "avfusion.best_trial_id"
MLFLOW_EXPERIMENT_KIND = "mlflow.experimentKind"
# The metric the MLflow UI's charts (parallel coordinates included) put first for an experiment.
MLFLOW_PRIMARY_METRIC = "mlflow.experiment.primaryMetric.name"


def checksum(modality: str) -> str:
    """``avfusion.visual_checksum`` / ``avfusion.audio_checksum``: the store's checksum."""
    return f"avfusion.{modality}_checksum"


def deep_validated(modality: str) -> str:
    """``avfusion.visual_deep_validated`` / ...: "true" once the features' sha256 was checked."""
    return f"avfusion.{modality}_deep_validated"


SCORES_FILE = "scores.npz"
ATTENTION_FILE = "attention.json"
SCORE_KEYS = ("clip_ids_val", "val", "labels_val", "clip_ids_test", "test")


def write_scores(path: str | os.PathLike[str], scores: Mapping[str, np.ndarray]) -> Path:
    """Write ``scores`` (exactly ``SCORE_KEYS``) as a ``scores.npz`` that loads without pickle."""
    missing = [key for key in SCORE_KEYS if key not in scores]
    if missing or set(scores) - set(SCORE_KEYS):
        raise ValueError(
            f"scores.npz needs exactly {', '.join(SCORE_KEYS)}; got {', '.join(scores)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        key: np.asarray(scores[key], dtype=str)
        if key.startswith("clip_ids")
        else np.asarray(scores[key])
        for key in SCORE_KEYS
    }
    with open(path, "wb") as handle:  # a file handle, so np.savez adds no ".npz" of its own
        np.savez(handle, **arrays)
    return path


def read_scores(
    path: str | os.PathLike[str], name: str, *, error: type[Exception] = UserError
) -> dict[str, np.ndarray]:
    """Read and check one ``scores.npz`` (never unpickling); ``name`` is how errors call its owner,
    ``error`` the class each one-line problem is raised as."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{name}: no {SCORES_FILE} at {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in SCORE_KEYS if key not in npz.files]
            if missing:
                raise error(
                    f"{name}: {path} lacks key {missing[0]!r} (needs {', '.join(SCORE_KEYS)})"
                )
            arrays = {key: npz[key] for key in SCORE_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise error(f"{name}: cannot read {path}: {exc}") from None
    for split in ("val", "test"):
        ids, probs = arrays[f"clip_ids_{split}"], arrays[split]
        if probs.ndim != 2 or probs.shape[1] != len(CLASSES) or ids.shape != (probs.shape[0],):
            raise error(
                f"{name}: {path} key {split!r} must be [{ids.shape[0]}, {len(CLASSES)}] "
                f"to match clip_ids_{split}, got {list(probs.shape)}"
            )
        if ids.dtype.kind not in "US":
            raise error(f"{name}: {path} key 'clip_ids_{split}' must hold strings")
        ids = ids.astype(str)
        bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
        if bad.any():
            raise error(
                f"{name}: {path} has NaN, Inf or negative scores for clip {str(ids[bad][0])!r}"
            )
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise error(
                f"{name}: {path} lists clip {str(unique[counts > 1][0])!r} twice in {split}"
            )
        arrays[f"clip_ids_{split}"] = ids
        arrays[split] = probs.astype(np.float32)
    labels = arrays["labels_val"]
    if labels.shape != arrays["clip_ids_val"].shape or labels.dtype.kind not in "iu":
        raise error(f"{name}: {path} key 'labels_val' must be integers, one per validation clip")
    out_of_range = (labels < 0) | (labels >= len(CLASSES))
    if out_of_range.any():
        raise error(
            f"{name}: {path} clip {str(arrays['clip_ids_val'][out_of_range][0])!r} has label "
            f"{labels[out_of_range][0]}, expected 0..{len(CLASSES) - 1}"
        )
    arrays["labels_val"] = labels.astype(np.int64)
    return arrays
