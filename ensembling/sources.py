"""Candidate scores checked and aligned on clip ids into one ``ScoreSet``.

- ``from_dirs(["trial_a", "trial_b"])``: directories each holding a ``scores.npz``;
- ``ensembling.trial_runs.from_mlflow``: the trial runs of a search, downloaded, then ``align``-ed here.

A file that is missing, malformed, holds NaN/Inf or lists different clips is named in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avcore import results
from avcore.datasets import default_classes, default_train_counts
from avcore.results import SCORES_FILE
from ensembling.errors import ScoresError


@dataclass(frozen=True)
class Candidate:
    """One source of scores: a trial run or a directory."""

    name: str
    run_id: str | None = None
    val_acc: float | None = None  # as the run logged it; None for a directory
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreSet:
    """Every candidate's scores on the same clips in the same order (the first candidate's)."""

    candidates: tuple[Candidate, ...]
    clip_ids_val: np.ndarray  # (N_val,) str
    labels_val: np.ndarray  # (N_val,) int64
    val: np.ndarray  # (C, N_val, K) float32
    clip_ids_test: np.ndarray  # (N_test,) str
    test: np.ndarray  # (C, N_test, K) float32
    classes: tuple[str, ...] = ()  # the K columns' classes, in order
    labels_test: np.ndarray | None = None  # (N_test,) int64, -1 where unlabelled
    train_counts: tuple[int, ...] | None = None  # train clips per class (the first candidate's)
    experiment_id: str | None = None
    experiment_name: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # trial runs left out, by status

    def __post_init__(self) -> None:
        # Scores from before classes were recorded are AFEW's, their test split unlabelled.
        if not self.classes:
            object.__setattr__(self, "classes", default_classes())
            if self.train_counts is None:
                object.__setattr__(self, "train_counts", default_train_counts(self.classes))
        if self.labels_test is None:
            object.__setattr__(self, "labels_test", np.full(len(self.clip_ids_test), -1))


def load_scores(path: Path, name: str) -> dict[str, np.ndarray]:
    """Read and check one ``scores.npz``; ``name`` is how errors call its owner."""
    return results.read_scores(path, name, error=ScoresError)


def clip_order(
    ids: np.ndarray, reference: np.ndarray, name: str, reference_name: str, split: str
) -> np.ndarray:
    """Indices that put ``ids`` in the order of ``reference``; one line naming a differing clip."""
    position = {clip: i for i, clip in enumerate(ids)}
    missing = [clip for clip in reference if clip not in position]
    if missing:
        raise ScoresError(
            f"{name}: {split} clips differ from {reference_name}'s: lacks clip {str(missing[0])!r}"
        )
    if len(ids) != len(reference):
        known = set(reference)
        extra = next(clip for clip in ids if clip not in known)
        raise ScoresError(
            f"{name}: {split} clips differ from {reference_name}'s: extra clip {str(extra)!r}"
        )
    return np.fromiter((position[clip] for clip in reference), dtype=np.int64, count=len(reference))


def align(loaded: list[tuple[Candidate, dict[str, np.ndarray]]], **extra) -> ScoreSet:
    """Stack candidates' scores in the first candidate's clip order."""
    if not loaded:
        raise ScoresError("no score sources given")
    first, reference = loaded[0]
    classes = tuple(reference["classes"].tolist())
    vals, tests = [], []
    for candidate, arrays in loaded:
        theirs = tuple(arrays["classes"].tolist())
        if theirs != classes:
            raise ScoresError(
                f"{candidate.name}: classes {', '.join(theirs)} differ from {first.name}'s "
                f"{', '.join(classes)}; an ensemble combines scores of one class set"
            )
        val_order = clip_order(
            arrays["clip_ids_val"],
            reference["clip_ids_val"],
            candidate.name,
            first.name,
            "validation",
        )
        test_order = clip_order(
            arrays["clip_ids_test"], reference["clip_ids_test"], candidate.name, first.name, "test"
        )
        for split, order in (("val", val_order), ("test", test_order)):
            labels = arrays[f"labels_{split}"][order]
            differs = labels != reference[f"labels_{split}"]
            if differs.any():
                clip = str(reference[f"clip_ids_{split}"][differs][0])
                raise ScoresError(
                    f"{candidate.name}: {'test ' if split == 'test' else ''}clip {clip!r} has "
                    f"label {labels[differs][0]}, {first.name} says "
                    f"{reference[f'labels_{split}'][differs][0]}"
                )
        vals.append(arrays["val"][val_order])
        tests.append(arrays["test"][test_order])
    counts = reference.get("train_counts")
    return ScoreSet(
        candidates=tuple(candidate for candidate, _ in loaded),
        clip_ids_val=reference["clip_ids_val"],
        labels_val=reference["labels_val"],
        val=np.stack(vals),
        clip_ids_test=reference["clip_ids_test"],
        test=np.stack(tests),
        classes=classes,
        labels_test=reference["labels_test"],
        train_counts=None if counts is None else tuple(int(c) for c in counts),
        **extra,
    )


def from_dirs(directories: list[str | Path]) -> ScoreSet:
    """Candidates from directories holding ``scores.npz`` (a directory's name is its name)."""
    loaded = []
    for directory in directories:
        directory = Path(directory)
        candidate = Candidate(name=str(directory))
        loaded.append((candidate, load_scores(directory / SCORES_FILE, candidate.name)))
    return align(loaded)
