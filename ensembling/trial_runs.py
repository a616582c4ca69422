"""The trial runs of a search as ensemble candidates: which runs are chosen, and their
``scores.npz`` downloaded from MLflow and aligned.

    scores = from_mlflow(client, "my-search", top=30, filter_string="params.visual_feature = 'f'")

The top finished trial runs of a search by ``val_acc`` (DESIGN.md "Trial results"), or explicit
run ids with ``run_ids=[...]``; ``refit_test_scores`` swaps in the test scores of the members'
refits (``search refit``). Tag names and statuses are ``avcore.results``'.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avcore.progress import progress
from avcore.results import (
    CONFIRM,
    CONFIRMS,
    FINISHED,
    FOLD,
    KIND,
    REFIT,
    REFITS,
    SCORES_FILE,
    STATUS,
    STOPPED_EARLY,
)
from ensembling.errors import ScoresError, TrackingError
from ensembling.sources import Candidate, ScoreSet, align, clip_order, load_scores

if TYPE_CHECKING:
    from mlflow import MlflowClient


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
    skipped: dict[str, int] = {}
    if run_ids:
        runs, found = _runs_by_id(client, experiment, run_ids)
    else:
        if experiment is None:
            raise TrackingError("give an experiment (--experiment) or run ids (--runs)")
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = [e.name for e in client.search_experiments()]
            raise TrackingError(
                f"no experiment named {experiment!r}; known: {', '.join(known) or 'none'}"
            )
        runs, skipped = _top_runs(
            client,
            found.experiment_id,
            experiment,
            top=top,
            filter_string=filter_string,
            include_stopped=include_stopped,
            with_confirms=with_confirms,
            rank_by_seed_mean=rank_by_seed_mean,
        )
    return align(
        _download(client, runs),
        experiment_id=found.experiment_id,
        experiment_name=found.name,
        skipped=skipped,
    )


def _runs_by_id(client: MlflowClient, experiment: str | None, run_ids: list[str]) -> tuple:
    """The runs ``run_ids`` and their experiment, which must be ``experiment`` when one is given."""
    from mlflow.exceptions import MlflowException

    runs = []
    for run_id in run_ids:
        try:
            runs.append(client.get_run(run_id))
        except MlflowException as exc:
            raise TrackingError(f"run {run_id}: not found ({_first_line(exc)})") from None
    found = client.get_experiment(runs[0].info.experiment_id)
    if experiment is not None and found.name != experiment:
        raise TrackingError(
            f"run {runs[0].info.run_id} belongs to experiment {found.name!r}, not {experiment!r}"
        )
    return runs, found


def _top_runs(
    client: MlflowClient,
    experiment_id: str,
    experiment: str,
    *,
    top: int,
    filter_string: str,
    include_stopped: bool,
    with_confirms: bool,
    rank_by_seed_mean: bool,
) -> tuple[list, dict[str, int]]:
    """The ``top`` admitted trial runs (and confirm runs, if asked) by rank, and how many trial
    runs were left out by status."""
    trials = _search_all(client, experiment_id, filter_string)
    confirms = []
    if with_confirms or rank_by_seed_mean:
        confirms = _search_all(client, experiment_id, filter_string, kind=CONFIRM)
        # A fold run (``confirm --folds``) scored another fold's clips: not a seed of these.
        confirms = [
            r for r in confirms if r.data.tags.get(STATUS) == FINISHED and FOLD not in r.data.tags
        ]
    admitted = {FINISHED, STOPPED_EARLY} if include_stopped else {FINISHED}
    statuses = Counter(run.data.tags.get(STATUS, "no status") for run in trials)
    skipped = {status: n for status, n in sorted(statuses.items()) if status not in admitted}
    eligible = [run for run in trials if run.data.tags.get(STATUS) in admitted]
    if not eligible:
        where = f" matching {filter_string!r}" if filter_string else ""
        left_out = ", ".join(f"{n} {status}" for status, n in skipped.items()) or "no trial runs"
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
    return eligible[:top], skipped


def _download(client: MlflowClient, runs: list) -> list[tuple[Candidate, dict[str, np.ndarray]]]:
    """Each run as a candidate with its checked ``scores.npz`` artifact."""
    from mlflow.exceptions import MlflowException

    loaded = []
    with tempfile.TemporaryDirectory(prefix="avfusion-scores-") as tmp:
        for run in progress(runs, desc="downloading scores", unit="run", enabled=len(runs) >= 10):
            run_id = run.info.run_id
            candidate = Candidate(
                name=run.info.run_name or run_id,
                run_id=run_id,
                val_acc=run.data.metrics.get("val_acc"),
                params=dict(run.data.params),
            )
            into = Path(tmp, run_id)
            into.mkdir()  # MLflow 2.10 downloads only into a folder that exists
            try:
                local = client.download_artifacts(run_id, SCORES_FILE, str(into))
            except (MlflowException, OSError) as exc:
                status = run.data.tags.get(STATUS, "no status")
                raise ScoresError(
                    f"run {run_id} ({status}): no {SCORES_FILE} artifact ({_first_line(exc)})"
                ) from None
            loaded.append((candidate, load_scores(Path(local), f"run {run_id}")))
    return loaded


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
            into = Path(tmp, refit)
            into.mkdir(exist_ok=True)
            try:
                local = client.download_artifacts(refit, SCORES_FILE, str(into))
            except (MlflowException, OSError) as exc:
                raise ScoresError(
                    f"refit run {refit}: no {SCORES_FILE} ({_first_line(exc)})"
                ) from None
            arrays = load_scores(Path(local), f"refit run {refit}")
            order = clip_order(
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
