"""Caruana's ensemble selection (forward selection with replacement) over trial scores.

``select`` takes every candidate's validation probabilities ``[candidates, clips, classes]`` and
adds, round after round, the candidate that most improves the objective (accuracy or UAR) of the
class-weighted mean of the members' probabilities; the best prefix of that trajectory is kept.
``bagged_select`` averages selections made on random subsets of candidates (Caruana's bagging).
The in-sample figure of a selection made on the validation clips is optimistic:
``ensembling.crossval`` scores it on held-out folds.

The inner loop never recomputes a mean. A clip n with label y is right when, for every class k,
``w_y (P_y + S_y) > w_k (P_k + S_k)`` (``>=`` for k after y: argmax breaks ties to the lower
class), where S is the running sum of the members. Rearranged, ``D_k = w_y P_y - w_k P_k`` is fixed
per candidate and computed once, and only the thresholds ``E_k = w_k S_k - w_y S_y`` (one small
[clips, classes] array) change per round: one comparison per candidate, clip and class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avcore.metrics import check_objective, score

# Objectives of different ensembles that differ by less than this are ties (UAR is a float mean).
_TIE = 1e-12


@dataclass(frozen=True)
class Selection:
    """The outcome of a selection.

    ``weights`` [candidates]: how often each candidate was picked (a plain selection) or the
    average of the bags' normalised weights (a bagged one). ``added`` and ``trajectory``: the
    candidate added at each step and the objective after it (for a bagged selection, no steps and
    the objective after each bag). ``kept``: steps in the best prefix. ``score``: the in-sample
    objective of the kept ensemble.
    """

    weights: np.ndarray
    added: tuple[int, ...]
    trajectory: tuple[float, ...]
    kept: int
    objective: str
    score: float
    bags: tuple[Selection, ...] = field(default=())

    @property
    def members(self) -> np.ndarray:
        return np.flatnonzero(self.weights)


def combine(
    probs: np.ndarray, weights: np.ndarray, class_weights: np.ndarray | None = None
) -> np.ndarray:
    """The ensemble's probabilities [clips, classes]: the weighted mean of ``probs`` [candidates,
    clips, classes], multiplied by the class weights and renormalised to sum to one per clip."""
    weights = np.asarray(weights, dtype=np.float64)
    members = np.flatnonzero(weights)
    mean = np.tensordot(weights[members], probs[members].astype(np.float64), axes=1)
    if class_weights is not None:
        mean = mean * class_weights
    total = mean.sum(axis=1, keepdims=True)
    return mean / np.where(total > 0, total, 1.0)


def evaluate(
    probs: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    class_weights: np.ndarray | None,
    objective: str,
) -> float:
    predictions = combine(probs, weights, class_weights).argmax(axis=1)
    return score(predictions, labels, objective, probs.shape[2])


class _Scorer:
    """Objective of ``S + P_c`` for every candidate c at once, S being the running member sum."""

    def __init__(
        self,
        val_probs: np.ndarray,
        labels: np.ndarray,
        class_weights: np.ndarray | None,
        objective: str,
    ) -> None:
        n_candidates, n_clips, n_classes = val_probs.shape
        self.labels = labels
        self.objective = objective
        self.class_weights = (
            np.ones(n_classes) if class_weights is None else np.asarray(class_weights, np.float64)
        )
        weighted = val_probs.astype(np.float32) * self.class_weights.astype(np.float32)  # (C, N, K)
        clips = np.arange(n_clips)
        at_label = weighted[:, clips, labels]  # (C, N)
        # D[k, c, n] = w_y P_y - w_k P_k, laid out class-first so each class is one flat array.
        self.margins = np.ascontiguousarray((at_label[:, :, None] - weighted).transpose(2, 0, 1))
        self.after_label = np.arange(n_classes)[:, None] > labels[None, :]  # (K, N)
        self.is_label = np.arange(n_classes)[:, None] == labels[None, :]  # (K, N)
        counts = np.bincount(labels, minlength=n_classes).astype(np.float32)
        present = counts > 0
        # UAR = hits @ (one-hot / class count), averaged over the classes present.
        self.recall_matrix = (
            (labels[:, None] == np.arange(n_classes)[None, :]) / np.where(present, counts, 1)
        ).astype(np.float32)[:, present] / present.sum()
        self._right = np.empty((n_candidates, n_clips), dtype=bool)
        self._buffer = np.empty((n_candidates, n_clips), dtype=bool)

    def objectives(self, running_sum: np.ndarray) -> np.ndarray:
        """[candidates] objective of adding each candidate once to ``running_sum`` [N, K]."""
        weighted = running_sum * self.class_weights  # (N, K)
        clips = np.arange(len(self.labels))
        thresholds = (weighted - weighted[clips, self.labels][:, None]).T.astype(np.float32)
        # D >= E is D > nextafter(E, -inf) exactly in float32; the label's own class always passes.
        thresholds = np.where(
            self.after_label, np.nextafter(thresholds, np.float32(-np.inf)), thresholds
        )
        thresholds[self.is_label] = -np.inf
        right, buffer = self._right, self._buffer
        np.greater(self.margins[0], thresholds[0], out=right)
        for margin, threshold in zip(self.margins[1:], thresholds[1:]):
            np.greater(margin, threshold, out=buffer)
            right &= buffer
        if self.objective == "acc":
            return np.count_nonzero(right, axis=1) / len(self.labels)
        return (right.astype(np.float32) @ self.recall_matrix).sum(axis=1, dtype=np.float64)


def check_inputs(val_probs: np.ndarray, labels: np.ndarray) -> None:
    """``ValueError`` unless ``val_probs`` is [candidates, clips, classes] and ``labels`` [clips]
    holds class indices."""
    if val_probs.ndim != 3 or val_probs.shape[0] == 0 or val_probs.shape[1] == 0:
        raise ValueError(f"val_probs must be [candidates, clips, classes], got {val_probs.shape}")
    if labels.shape != (val_probs.shape[1],):
        raise ValueError(f"labels must be [{val_probs.shape[1]}], got {labels.shape}")
    if labels.min() < 0 or labels.max() >= val_probs.shape[2]:
        raise ValueError(f"labels must lie in [0, {val_probs.shape[2]})")


def select(
    val_probs: np.ndarray,
    labels: np.ndarray,
    *,
    rounds: int = 50,
    class_weights: np.ndarray | None = None,
    init_top: int = 0,
    objective: str = "acc",
) -> Selection:
    """Forward selection with replacement; see the module docstring.

    Each round adds the candidate whose addition maximises the objective. Ties go to a candidate
    already in the ensemble, then to the higher individual objective, then to the lower index.
    ``init_top`` first adds the best ``init_top`` candidates once each (sorted initialisation);
    the kept prefix is never shorter than that initial block.
    """
    check_objective(objective)
    labels = np.asarray(labels, dtype=np.int64)
    check_inputs(val_probs, labels)
    n_candidates, n_clips, n_classes = val_probs.shape
    if rounds < 0 or not 0 <= init_top <= n_candidates or rounds + init_top == 0:
        raise ValueError(
            f"need rounds >= 0, 0 <= init_top <= {n_candidates} and at least one step; "
            f"got rounds={rounds}, init_top={init_top}"
        )
    scorer = _Scorer(val_probs, labels, class_weights, objective)
    running_sum = np.zeros((n_clips, n_classes), dtype=np.float64)
    individual = scorer.objectives(running_sum)
    counts = np.zeros(n_candidates, dtype=np.int64)
    added: list[int] = []
    trajectory: list[float] = []
    candidates = np.arange(n_candidates)

    def add(candidate: int, value: float) -> None:
        running_sum[:] += val_probs[candidate]
        counts[candidate] += 1
        added.append(int(candidate))
        trajectory.append(float(value))

    best_first = np.lexsort((candidates, -individual))
    for candidate in best_first[:init_top]:
        add(
            candidate,
            individual[candidate] if not added else scorer.objectives(running_sum)[candidate],
        )
    for _ in range(rounds):
        values = scorer.objectives(running_sum)
        tied = np.flatnonzero(values >= values.max() - _TIE)
        # lexsort sorts by its last key first: in the ensemble, then individual objective, then index.
        order = np.lexsort((tied, -individual[tied], counts[tied] == 0))
        add(tied[order[0]], values[tied[order[0]]])

    start = max(init_top, 1)
    kept = start + int(
        np.argmax(np.asarray(trajectory[start - 1 :]) >= max(trajectory[start - 1 :]) - _TIE)
    )
    weights = np.bincount(added[:kept], minlength=n_candidates).astype(np.float64)
    return Selection(
        weights=weights,
        added=tuple(added),
        trajectory=tuple(trajectory),
        kept=kept,
        objective=objective,
        score=evaluate(val_probs, labels, weights, class_weights, objective),
    )


def bagged_select(
    val_probs: np.ndarray,
    labels: np.ndarray,
    *,
    bags: int = 20,
    fraction: float = 0.5,
    seed: int = 0,
    rounds: int = 50,
    class_weights: np.ndarray | None = None,
    init_top: int = 0,
    objective: str = "acc",
) -> Selection:
    """Caruana's bagged selection: ``select`` on ``bags`` random subsets of ``fraction`` of the
    candidates; the result averages the bags' normalised weights, so no bag dominates by size."""
    if bags < 1 or not 0 < fraction <= 1:
        raise ValueError(f"need bags >= 1 and 0 < fraction <= 1, got {bags}, {fraction}")
    n_candidates = val_probs.shape[0]
    subset_size = max(1, round(fraction * n_candidates))
    rng = np.random.default_rng(seed)
    weights = np.zeros(n_candidates, dtype=np.float64)
    selections: list[Selection] = []
    trajectory: list[float] = []
    for _ in range(bags):
        subset = np.sort(rng.choice(n_candidates, size=subset_size, replace=False))
        bag = select(
            val_probs[subset],
            labels,
            rounds=rounds,
            class_weights=class_weights,
            init_top=min(init_top, subset_size),
            objective=objective,
        )
        selections.append(bag)
        weights[subset] += bag.weights / bag.weights.sum()
        trajectory.append(evaluate(val_probs, labels, weights, class_weights, objective))
    weights /= bags
    return Selection(
        weights=weights,
        added=(),
        trajectory=tuple(trajectory),
        kept=bags,
        objective=objective,
        score=trajectory[-1],
        bags=tuple(selections),
    )
