"""Several named ensembles of one search side by side, as the paper's Table 4 compares submissions.

A spec (YAML, ``conf/ensemble/*.yaml``) names each ensemble and says how its members are chosen:

    class_weights: sqrt-prior          # the "with class weights" columns; "none" is always shown
    ensembles:
      - name: 4 x F-MeanStd            # the best 4 finished trials whose visual_feature is f-meanstd
        members: [{where: {visual_feature: f-meanstd}, count: 4}]
      - name: one of each visual variant
        one_per: visual_feature        # the best trial of every value of this param
      - name: greedy, top 30
        greedy: {top: 30}              # Caruana's selection over the 30 best trials

Members are chosen by validation accuracy on the clips at hand, so every figure comes twice: on val
with the members chosen on val (in-sample, optimistic), and the k-fold cross-validation of the same
choice (members and fitted class weights chosen on k-1 folds, scored on the held-out one). The best
single trial is chosen and scored the same way, so the rows compare like with like.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from avcore import guards
from avcore.metrics import score
from avcore.parsing import pydantic_line
from ensembling.build import Recipe, fit
from ensembling.class_weights import WeightContext, resolve
from ensembling.crossval import Procedure, cross_validate
from ensembling.errors import EnsembleError
from ensembling.greedy import combine
from ensembling.sources import ScoreSet

SUMMARY_FILE = "compare.json"  # what marks a folder as a comparison we wrote (for --force)


class MemberGroup(BaseModel):
    """The ``count`` best finished trials whose params equal every ``where`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    where: dict[str, str] = Field(default_factory=dict, description="param name -> value")
    count: int = Field(1, ge=1, description="how many of the matching trials, best first")


class GreedySpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(30, ge=1, description="candidates: the best N finished trials")
    rounds: int = Field(50, ge=1, description="forward-selection rounds")
    where: dict[str, str] = Field(default_factory=dict, description="param name -> value")


class EnsembleSpec(BaseModel):
    """One row of the table: exactly one of ``members``, ``one_per`` and ``greedy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    members: list[MemberGroup] | None = None
    one_per: str | None = Field(None, description="the best trial of each value of this param")
    greedy: GreedySpec | None = None

    @model_validator(mode="after")
    def _one_way(self) -> EnsembleSpec:
        given = [k for k in ("members", "one_per", "greedy") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of members, one_per, greedy (got {given or 'none'})"
            )
        return self


class CompareSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    class_weights: str = Field("sqrt-prior", description="preset or 7 numbers for 'with' columns")
    folds: int = Field(5, ge=2, description="folds of the cross-validated figures")
    seed: int = Field(0, description="seed of the folds")
    ensembles: list[EnsembleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_class_weights(self) -> CompareSpec:
        try:
            resolve(self.class_weights)
        except EnsembleError as exc:
            raise ValueError(str(exc)) from None
        names = [e.name for e in self.ensembles]
        if len(set(names)) != len(names):
            raise ValueError(f"ensemble names repeat: {names}")
        return self


def load_spec(path: str | os.PathLike[str]) -> CompareSpec:
    """The spec at ``path``; any problem is one ``EnsembleError`` line naming the file."""
    path = Path(path)
    data = guards.read_yaml(path, "compare spec", error=EnsembleError)
    try:
        return CompareSpec.model_validate(data)
    except ValidationError as exc:
        raise EnsembleError(pydantic_line(exc, str(path))) from None


@dataclass(frozen=True)
class Row:
    name: str
    members: list[str]  # chosen on all val clips
    in_sample: float  # val accuracy, members chosen on val
    cv: float  # val accuracy, k-fold CV of the choice
    in_sample_plain: float  # the same without class weights
    cv_plain: float
    missing: str = ""  # why the search cannot make this ensemble (then no figures)


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    return score(probs.argmax(axis=1), labels, "acc", probs.shape[1])


def _matching(scores: ScoreSet, where: dict[str, str]) -> np.ndarray:
    return np.array(
        [
            all(c.params.get(key) == str(value) for key, value in where.items())
            for c in scores.candidates
        ]
    )


def _procedure(spec: EnsembleSpec, scores: ScoreSet, class_weights: str) -> Procedure:
    """How this row picks its members (and fits class weights) from the clips it is given."""
    weight_spec = resolve(class_weights)

    def top(val: np.ndarray, labels: np.ndarray, eligible: np.ndarray, count: int) -> np.ndarray:
        accuracy = (val.argmax(axis=2) == labels).mean(axis=1)
        order = [i for i in np.argsort(-accuracy, kind="stable") if eligible[i]]
        return np.array(order[:count], dtype=np.int64)

    def with_class_weights(val, labels, weights):
        ensemble = combine(val, weights)
        context = WeightContext(
            classes=scores.classes,
            train_counts=scores.train_counts,
            val_probs=ensemble,
            labels=labels,
        )
        return weights, weight_spec.vector(context)

    if spec.greedy is not None:
        eligible = _matching(scores, spec.greedy.where)
        recipe = Recipe(
            rounds=spec.greedy.rounds,
            class_weights=class_weights,
            classes=scores.classes,
            train_counts=scores.train_counts,
        )

        def greedy(val: np.ndarray, labels: np.ndarray):
            chosen = top(val, labels, eligible, spec.greedy.top)
            fitted = fit(val[chosen], labels, recipe)
            weights = np.zeros(len(val))
            weights[chosen] = fitted.selection.weights
            return weights, fitted.class_weights

        return greedy
    if spec.one_per is not None:
        values = sorted({c.params.get(spec.one_per) for c in scores.candidates} - {None})
        if not values:
            raise EnsembleError(f"{spec.name}: no trial has a param {spec.one_per!r}")
        groups = [MemberGroup(where={spec.one_per: value}) for value in values]
    else:
        groups = spec.members
    for group in groups:
        found = int(_matching(scores, group.where).sum())
        if found < group.count:
            raise EnsembleError(
                f"{spec.name}: {group.count} trial(s) with {group.where} wanted, {found} finished"
            )

    def fixed(val: np.ndarray, labels: np.ndarray):
        weights = np.zeros(len(val))
        for group in groups:
            weights[top(val, labels, _matching(scores, group.where), group.count)] += 1.0
        return with_class_weights(val, labels, weights / weights.sum())

    return fixed


def _best_single() -> Procedure:
    def single(val: np.ndarray, labels: np.ndarray):
        weights = np.zeros(len(val))
        weights[int(np.argmax((val.argmax(axis=2) == labels).mean(axis=1)))] = 1.0
        return weights, None

    return single


def compare(scores: ScoreSet, spec: CompareSpec) -> list[Row]:
    """Every ensemble of ``spec`` and the best single trial, in-sample and cross-validated."""
    labels = scores.labels_val
    rows_in: list[tuple[str, Callable[[str], Procedure]]] = [
        (e.name, lambda weights, e=e: _procedure(e, scores, weights)) for e in spec.ensembles
    ]
    rows_in.append(("best single trial", lambda weights: _best_single()))
    rows = []
    for name, make in rows_in:
        figures: dict[str, tuple[float, float]] = {}
        members: list[str] = []
        for key, weights in (("with", spec.class_weights), ("plain", "none")):
            try:
                procedure = make(weights)
            except EnsembleError as exc:
                nan = float("nan")
                rows.append(Row(name, [], nan, nan, nan, nan, missing=str(exc)))
                break
            member_weights, class_weights = procedure(scores.val, labels)
            in_sample = _accuracy(combine(scores.val, member_weights, class_weights), labels)
            cv = cross_validate(scores.val, labels, procedure, folds=spec.folds, seed=spec.seed)
            figures[key] = (in_sample, cv.acc)
            members = members or [scores.candidates[i].name for i in np.flatnonzero(member_weights)]
        else:
            rows.append(Row(name, members, *figures["with"], *figures["plain"]))
    return rows


def render(rows: list[Row], spec: CompareSpec, source: str) -> str:
    """The markdown table; every figure says what it was selected on and where it was measured."""
    weights = spec.class_weights
    lines = [
        f"# Ensembles of {source}",
        "",
        "Accuracy on val. *Selected on val*: members (and fitted class weights) chosen on all val "
        f"clips, then scored on them (optimistic). *{spec.folds}-fold CV*: the same choice made on "
        f"{spec.folds - 1} folds, scored on the held-out one.",
        "",
        f"| ensemble | members | {weights}: selected on val | {weights}: {spec.folds}-fold CV "
        f"| no class weights: selected on val | no class weights: {spec.folds}-fold CV |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.missing:
            lines.append(f"| {row.name} | – | {row.missing} | | | |")
            continue
        lines.append(
            f"| {row.name} | {len(row.members)} | {row.in_sample:.4f} | {row.cv:.4f} "
            f"| {row.in_sample_plain:.4f} | {row.cv_plain:.4f} |"
        )
    return "\n".join(lines) + "\n"


def as_json(rows: list[Row], spec: CompareSpec) -> dict[str, Any]:
    return {
        "class_weights": spec.class_weights,
        "folds": spec.folds,
        "rows": [row.__dict__ for row in rows],
    }
