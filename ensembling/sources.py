"""Where candidate scores come from, checked and aligned on clip ids into one ``ScoreSet``.

- ``from_dirs(["trial_a", "trial_b"])``: directories each holding a ``scores.npz``;
- ``from_mlflow(client, "my-search", top=30, filter_string="params.visual_feature = 'f-meanstd'")``:
  the top finished trial runs of a search by ``val_acc`` (DESIGN.md "Trial results"), or explicit
  run ids with ``run_ids=[...]``.

A file that is missing, malformed, holds NaN/Inf or lists different clips is named in one line.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from avcore import results
from avcore.results import (
    CONFIRM,
    CONFIRMS,
    FINISHED,
    KIND,
    REFIT,
    REFITS,
    SCORES_FILE,
    STATUS,
    STOPPED_EARLY,
)
from ensembling.errors import ScoresError, TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient


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
    val: np.ndarray  # (C, N_val, 7) float32
    clip_ids_test: np.ndarray  # (N_test,) str
    test: np.ndarray  # (C, N_test, 7) float32
    experiment_id: str | None = None
    experiment_name: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # trial runs left out, by status


def load_scores(path: Path, name: str) -> dict[str, np.ndarray]:
    """Read and check one ``scores.npz``; ``name`` is how errors call its owner."""
    return results.read_scores(path, name, error=ScoresError)


def _order(
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
    vals, tests = [], []
    for candidate, arrays in loaded:
        val_order = _order(
            arrays["clip_ids_val"],
            reference["clip_ids_val"],
            candidate.name,
            first.name,
            "validation",
        )
        test_order = _order(
            arrays["clip_ids_test"], reference["clip_ids_test"], candidate.name, first.name, "test"
        )
        labels = arrays["labels_val"][val_order]
        differs = labels != reference["labels_val"]
        if differs.any():
            clip = str(reference["clip_ids_val"][differs][0])
            raise ScoresError(
                f"{candidate.name}: clip {clip!r} has label {labels[differs][0]}, "
                f"{first.name} says {reference['labels_val'][differs][0]}"
            )
        vals.append(arrays["val"][val_order])
        tests.append(arrays["test"][test_order])
    return ScoreSet(
        candidates=tuple(candidate for candidate, _ in loaded),
        clip_ids_val=reference["clip_ids_val"],
        labels_val=reference["labels_val"],
        val=np.stack(vals),
        clip_ids_test=reference["clip_ids_test"],
        test=np.stack(tests),
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


def from_mlflow(
    client: MlflowClient,
    experiment: str | None,
    *,
    top: int = 30,
    filter_string: str = "",
    run_ids: list[str] | None = None,
    include_stopped: bool = False,
    with_confirms: bool = False,
    rank_by_seed_mean: bool = False,
) -> ScoreSet:
    """The ``top`` finished trial runs of ``experiment`` by ``val_acc`` (``filter_string`` narrows
    them), or the runs ``run_ids`` whatever their status; their ``scores.npz`` downloaded and
    aligned. ``include_stopped`` also admits trials that ASHA stopped early. ``with_confirms`` also
    admits the retrains of ``search confirm`` (the same configurations with other seeds: diversity
    for the ensemble); ``rank_by_seed_mean`` ranks a trial and its retrains by their mean val_acc
    over seeds instead of each run's own."""
    from mlflow.exceptions import MlflowException

    skipped: dict[str, int] = {}
    if run_ids:
        runs = []
        for run_id in run_ids:
            try:
                runs.append(client.get_run(run_id))
            except MlflowException as exc:
                raise TrackingError(f"run {run_id}: not found ({_first_line(exc)})") from None
        experiment_id = runs[0].info.experiment_id
        found = client.get_experiment(experiment_id)
        if experiment is not None and found.name != experiment:
            raise TrackingError(
                f"run {runs[0].info.run_id} belongs to experiment {found.name!r}, not {experiment!r}"
            )
    else:
        if experiment is None:
            raise TrackingError("give an experiment (--experiment) or run ids (--runs)")
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = [e.name for e in client.search_experiments()]
            raise TrackingError(
                f"no experiment named {experiment!r}; known: {', '.join(known) or 'none'}"
            )
        experiment_id = found.experiment_id
        trials = _search_all(client, experiment_id, filter_string)
        if with_confirms or rank_by_seed_mean:
            confirms = _search_all(client, experiment_id, filter_string, kind=CONFIRM)
            confirms = [r for r in confirms if r.data.tags.get(STATUS) == FINISHED]
        admitted = {FINISHED, STOPPED_EARLY} if include_stopped else {FINISHED}
        statuses = Counter(run.data.tags.get(STATUS, "no status") for run in trials)
        skipped = {status: n for status, n in sorted(statuses.items()) if status not in admitted}
        eligible = [run for run in trials if run.data.tags.get(STATUS) in admitted]
        if not eligible:
            where = f" matching {filter_string!r}" if filter_string else ""
            left_out = (
                ", ".join(f"{n} {status}" for status, n in skipped.items()) or "no trial runs"
            )
            raise TrackingError(
                f"experiment {experiment!r} has no finished trial runs{where} ({left_out})"
            )
        for run in eligible:
            if "val_acc" not in run.data.metrics:
                raise ScoresError(f"run {run.info.run_id}: finished but has no val_acc metric")
        if with_confirms:
            eligible += confirms
        rank = {run.info.run_id: run.data.metrics["val_acc"] for run in eligible}
        if rank_by_seed_mean:
            rank = _seed_means(eligible, confirms)
        eligible.sort(key=lambda run: (-rank[run.info.run_id], run.info.run_id))
        runs = eligible[:top]
    loaded = []
    with tempfile.TemporaryDirectory(prefix="avfusion-scores-") as tmp:
        for run in tqdm(runs, desc="downloading scores", unit="run", disable=len(runs) < 10):
            run_id = run.info.run_id
            candidate = Candidate(
                name=run.info.run_name or run_id,
                run_id=run_id,
                val_acc=run.data.metrics.get("val_acc"),
                params=dict(run.data.params),
            )
            try:
                local = client.download_artifacts(run_id, SCORES_FILE, str(Path(tmp) / run_id))
            except (MlflowException, OSError) as exc:
                status = run.data.tags.get(STATUS, "no status")
                raise ScoresError(
                    f"run {run_id} ({status}): no {SCORES_FILE} artifact ({_first_line(exc)})"
                ) from None
            loaded.append((candidate, load_scores(Path(local), f"run {run_id}")))
    return align(loaded, experiment_id=experiment_id, experiment_name=found.name, skipped=skipped)


def refit_test_scores(
    client: MlflowClient, scores: ScoreSet, members: np.ndarray
) -> tuple[np.ndarray, dict[str, str]]:
    """The test probabilities of each member's refit (``search refit``: the same configuration
    trained on train + val, tag ``avfusion.refits=<member run id>``), in ``scores``' test clip
    order, as a [candidates, clips, classes] array (zeros for non-members); and member run id ->
    refit run id. A member without a finished refit is one line naming it."""
    from mlflow.exceptions import MlflowException

    test = np.zeros_like(scores.test)
    refits: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="avfusion-refit-") as tmp:
        for index in members:
            candidate = scores.candidates[int(index)]
            if candidate.run_id is None:
                raise ScoresError(f"--refit needs MLflow trial runs; {candidate.name} is a folder")
            found = client.search_runs(
                [scores.experiment_id],
                f"tags.`{KIND}` = '{REFIT}' AND tags.`{REFITS}` = '{candidate.run_id}' "
                f"AND tags.`{STATUS}` = '{FINISHED}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if not found:
                raise ScoresError(
                    f"member {candidate.name} ({candidate.run_id}) has no finished refit; run "
                    f"`python -m search refit {scores.experiment_name}` with a --top that covers it"
                )
            refit = found[0].info.run_id
            try:
                local = client.download_artifacts(refit, SCORES_FILE, str(Path(tmp) / refit))
            except (MlflowException, OSError) as exc:
                raise ScoresError(
                    f"refit run {refit}: no {SCORES_FILE} ({_first_line(exc)})"
                ) from None
            arrays = load_scores(Path(local), f"refit run {refit}")
            order = _order(
                arrays["clip_ids_test"], scores.clip_ids_test, f"refit run {refit}",
                candidate.name, "test",
            )  # fmt: skip
            test[int(index)] = arrays["test"][order]
            refits[candidate.run_id] = refit
    return test, refits


def _seed_means(runs: list, confirms: list) -> dict[str, float]:
    """Each run's ranking value: the mean val_acc of its configuration over the search's seed and
    the confirm seeds (a confirm run counts for the trial it confirms)."""
    values: dict[str, list[float]] = {}
    for run in runs:
        if run.data.tags.get(KIND) != CONFIRM:
            values.setdefault(run.info.run_id, []).append(run.data.metrics["val_acc"])
    for run in confirms:
        trial = run.data.tags.get(CONFIRMS)
        if trial in values and "val_acc" in run.data.metrics:
            values[trial].append(run.data.metrics["val_acc"])
    means = {trial: float(np.mean(v)) for trial, v in values.items()}
    for run in runs:
        if run.info.run_id not in means:  # a confirm run ranks with its trial
            means[run.info.run_id] = means.get(
                run.data.tags.get(CONFIRMS), run.data.metrics["val_acc"]
            )
    return means


def _search_all(
    client: MlflowClient, experiment_id: str, filter_string: str, kind: str = "trial"
) -> list:
    from mlflow.exceptions import MlflowException

    query = f"tags.`{KIND}` = '{kind}'" + (f" AND {filter_string}" if filter_string.strip() else "")
    runs, token = [], None
    while True:
        try:
            page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        except MlflowException as exc:
            raise TrackingError(f"filter {filter_string!r}: {_first_line(exc)}") from None
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
