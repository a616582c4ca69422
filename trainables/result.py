"""What one trial hands back (``TrialResult``) and how it is saved: the DESIGN.md ``scores.npz``
that ``ensembling`` reads, and the trial's config as YAML."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import Tensor

from avcore.metrics import score
from avcore.results import write_scores
from trainables.config import TrialConfig
from trainables.tensors import SplitTensors


@dataclass
class TrialResult:
    """What one trial produced: its per-epoch history, final metrics and the scores.npz arrays."""

    config: TrialConfig
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    scores: dict[str, np.ndarray]
    attention: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)

    def save_scores(self, path: str | os.PathLike[str]) -> Path:
        """Write the DESIGN.md ``scores.npz`` (readable with ``allow_pickle=False``)."""
        return write_scores(path, self.scores)

    def save_config(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.config.model_dump(), sort_keys=False))
        return path


def final_metrics(history: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    """The last epoch's figures (without its number) and how many epochs led there."""
    final = {key: value for key, value in history[-1].items() if key != "epoch"}
    final["epochs"] = epochs
    return final


def test_figures(scores: dict[str, np.ndarray], num_classes: int) -> dict[str, float]:
    """``test_acc`` (WAR) and ``test_uar`` on the labelled test clips (a fold protocol's test
    fold, MELD's test), measured once after training, never selected on; none when the test
    split is unlabelled (AFEW)."""
    labelled = scores["labels_test"] >= 0
    if not labelled.any():
        return {}
    predictions = scores["test"][labelled].argmax(axis=1)
    truth = scores["labels_test"][labelled]
    return {
        "test_acc": score(predictions, truth, "acc", num_classes),
        "test_uar": score(predictions, truth, "uar", num_classes),
    }


def score_arrays(
    val: SplitTensors,
    val_probs: Tensor,
    test: SplitTensors,
    test_probs: Tensor,
    *,
    classes: Sequence[str],
    train_labels: Tensor,
) -> dict[str, np.ndarray]:
    """The ``scores.npz`` arrays of one trial: clip ids, probabilities, val and test labels (-1
    unknown), the classes and the training clips per class."""
    return {
        "clip_ids_val": np.array(val.clip_ids, dtype=str),
        "val": val_probs.cpu().numpy().astype(np.float32),
        "labels_val": val.labels.cpu().numpy().astype(np.int64),
        "clip_ids_test": np.array(test.clip_ids, dtype=str),
        "test": test_probs.cpu().numpy().astype(np.float32),
        "labels_test": test.labels.cpu().numpy().astype(np.int64),
        "classes": np.array(classes, dtype=str),
        "train_counts": np.bincount(train_labels.cpu().numpy(), minlength=len(classes)).astype(
            np.int64
        ),
    }
