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

``scores.npz`` holds ``clip_ids_val`` (N_val,) str, ``val`` (N_val, K) float32 softmax scores,
``labels_val`` (N_val,) int64, ``clip_ids_test`` (N_test,) str and ``test`` (N_test, K) float32,
and, written since the class set became the data's, ``classes`` (K,) str (the stores' ordered
classes: the columns' order), ``labels_test`` (N_test,) int64 (-1 where the test split is
unlabelled, e.g. AFEW's; a fold protocol's test fold is labelled) and ``train_counts`` (K,) int64
(the training clips per class the run fitted on: the class-weight priors start from them). Files
without them are AFEW's (7 columns). It must load with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from avcore.datasets import default_classes, default_train_counts
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
# A confirm run on one fold of a fold protocol (``search confirm --folds``): the fold whose clips
# were its test; its val part carved from the other folds with the search's seed.
FOLD = "avfusion.fold"
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
CLASS_KEYS = ("classes", "labels_test", "train_counts")  # optional: absent in AFEW-era files


def write_scores(path: str | os.PathLike[str], scores: Mapping[str, np.ndarray]) -> Path:
    """Write ``scores`` (``SCORE_KEYS``, and any of ``CLASS_KEYS``) as a ``scores.npz`` that
    loads without pickle."""
    missing = [key for key in SCORE_KEYS if key not in scores]
    if missing or set(scores) - set(SCORE_KEYS) - set(CLASS_KEYS):
        raise ValueError(
            f"scores.npz needs {', '.join(SCORE_KEYS)} (and may have {', '.join(CLASS_KEYS)}); "
            f"got {', '.join(scores)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        key: np.asarray(scores[key], dtype=str)
        if key.startswith("clip_ids") or key == "classes"
        else np.asarray(scores[key])
        for key in (*SCORE_KEYS, *CLASS_KEYS)
        if key in scores
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
            arrays = {key: npz[key] for key in (*SCORE_KEYS, *CLASS_KEYS) if key in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise error(f"{name}: cannot read {path}: {exc}") from None
    classes = _classes(arrays, f"{name}: {path}", error)
    for split in ("val", "test"):
        ids, probs = arrays[f"clip_ids_{split}"], arrays[split]
        if probs.ndim != 2 or probs.shape[1] != len(classes) or ids.shape != (probs.shape[0],):
            raise error(
                f"{name}: {path} key {split!r} must be [{ids.shape[0]}, {len(classes)}] "
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
    arrays["classes"] = np.asarray(classes, dtype=str)
    arrays.setdefault("labels_test", np.full(len(arrays["clip_ids_test"]), -1, np.int64))
    for split in ("val", "test"):
        key, ids = f"labels_{split}", arrays[f"clip_ids_{split}"]
        labels = arrays[key]
        if labels.shape != ids.shape or labels.dtype.kind not in "iu":
            raise error(f"{name}: {path} key {key!r} must be integers, one per {split} clip")
        low = 0 if split == "val" else -1  # an unlabelled test clip is -1
        out_of_range = (labels < low) | (labels >= len(classes))
        if out_of_range.any():
            raise error(
                f"{name}: {path} clip {str(ids[out_of_range][0])!r} has label "
                f"{labels[out_of_range][0]}, expected {low}..{len(classes) - 1}"
            )
        arrays[key] = labels.astype(np.int64)
    counts = arrays.get("train_counts")
    if counts is None:
        counts = default_train_counts(classes)
    elif counts.shape != (len(classes),) or counts.dtype.kind not in "iu" or (counts < 0).any():
        raise error(f"{name}: {path} key 'train_counts' must be {len(classes)} counts")
    if counts is not None:
        arrays["train_counts"] = np.asarray(counts, np.int64)
    return arrays


def _classes(
    arrays: Mapping[str, np.ndarray], where: str, error: type[Exception]
) -> tuple[str, ...]:
    """The score columns' classes: recorded, or AFEW's for a 7-column file written before."""
    if "classes" not in arrays:
        width = arrays["val"].shape[-1] if arrays["val"].ndim == 2 else -1
        if width != len(default_classes()):
            raise error(
                f"{where} records no 'classes', so key 'val' must be [N, "
                f"{len(default_classes())}] (AFEW's), got {list(arrays['val'].shape)}"
            )
        return default_classes()
    classes = arrays["classes"]
    if classes.ndim != 1 or classes.dtype.kind not in "US" or len(set(classes.tolist())) < 2:
        raise error(f"{where} key 'classes' must be distinct class names")
    return tuple(str(name) for name in classes)
