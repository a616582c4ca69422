"""The trial side of MLflow: ``TrialRecorder`` writes one trial's run from whichever node Ray put
the trial on (also each ``confirm``/``refit`` retrain's run).

A run carries ``avcore.results``' ``KIND``, ``STATUS`` (running, then finished or failed; the
driver marks stopped_early), ``SEARCH``, ``TRIAL_ID`` (and ``TUNE_TRIAL_ID`` for a search's trial),
``PARENT`` (the search's parent run), the commit (``avcore.results.GIT_COMMIT`` and MLflow's own),
plus the caller's tags (node, store checksums, see ``search.trial``). It holds the settings the
caller passes as params (those the configuration uses), the whole config as ``config.yaml``
from the start, a metric batch per epoch, and at the end ``scores.npz`` and ``attention.json``.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avcore import results
from avcore.results import (
    ATTENTION_FILE,
    EPOCHS_DONE,
    FAILED,
    FINISHED,
    KIND,
    PARENT,
    RUNNING,
    SCORES_FILE,
    SEARCH,
    STATUS,
    TRIAL,
    TRIAL_ID,
)
from avcore.tracking import MAX_TAG
from search.tracking import (
    TrackingContext,
    client,
    entities,
    logging_step,
    now_ms,
    param_value,
)


class TrialRecorder:
    """One trial's MLflow run: params and tags on start, a metric batch per epoch, artifacts and
    the final status at the end."""

    def __init__(
        self,
        context: TrackingContext,
        *,
        trial_id: str,
        run_name: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        config_yaml: str,
        kind: str = TRIAL,
        tune_trial_id: str | None = None,
    ) -> None:
        _, Param, _ = entities()
        self.client = client(context.uri)
        all_tags = {
            KIND: kind,
            STATUS: RUNNING,
            SEARCH: context.search,
            TRIAL_ID: trial_id,
            PARENT: context.parent_run_id,
            results.GIT_COMMIT: context.git_commit,
            results.MLFLOW_GIT_COMMIT: context.git_commit,
            **({results.TUNE_TRIAL_ID: tune_trial_id} if tune_trial_id else {}),
            **tags,
        }
        self.uri = context.uri
        with logging_step(self.uri, "the trial's run"):
            run = self.client.create_run(context.experiment_id, tags=all_tags, run_name=run_name)
        self.run_id = run.info.run_id
        with logging_step(self.uri, "the trial's params and config.yaml"):
            self.client.log_batch(
                self.run_id, params=[Param(k, param_value(v)) for k, v in params.items()]
            )
            # config.yaml goes up first, so a trial stopped early still shows what it trained.
            with tempfile.TemporaryDirectory() as folder:
                Path(folder, "config.yaml").write_text(config_yaml)
                self.client.log_artifact(self.run_id, str(Path(folder, "config.yaml")))
        self._last: dict[str, float] = {}
        self._step = 0

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        Metric, _, RunTag = entities()
        now = now_ms()
        self._step = int(metrics.get("epoch", self._step + 1))
        values = {k: float(v) for k, v in metrics.items() if k != "epoch" and _is_number(v)}
        with logging_step(self.uri, f"epoch {self._step}'s metrics"):
            # The epochs-done tag moves with the metrics: `search status` reads a running
            # trial's epoch from it (the latest metrics carry no step).
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, now, self._step) for k, v in values.items()],
                tags=[RunTag(EPOCHS_DONE, str(self._step))],
            )
        self._last = values

    def finish(self, result: Any) -> None:
        """Final metrics, ``scores.npz`` and ``attention.json``, status ``finished``. The PNG plots
        are drawn from these two files off the trial's critical path (``search.plot_actor``)."""
        Metric, _, RunTag = entities()
        now = now_ms()
        final = {
            k: float(v)
            for k, v in (result.metrics or {}).items()
            if k not in ("epoch", "epochs") and _is_number(v) and self._last.get(k) != float(v)
        }
        with tempfile.TemporaryDirectory() as folder, logging_step(self.uri, "the trial's results"):
            result.save_scores(Path(folder, SCORES_FILE))
            Path(folder, ATTENTION_FILE).write_text(json.dumps(result.attention, default=_plain))
            self.client.log_artifacts(self.run_id, folder)
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, now, self._step) for k, v in final.items()],
                tags=[RunTag(STATUS, FINISHED), RunTag(EPOCHS_DONE, str(self._step))],
            )
            self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: BaseException) -> None:
        """Status ``failed`` with the error as a tag and its traceback as ``error.txt``. When the
        server cannot take even that, the error goes on to Tune and the driver marks the run
        FAILED with it once the server answers again (``trial_runs.mark_failed_if_running``)."""
        _, _, RunTag = entities()
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        summary = f"{type(error).__name__}: {error}"[:MAX_TAG]
        try:
            self.client.log_text(self.run_id, text, "error.txt")
            self.client.log_batch(
                self.run_id,
                tags=[RunTag(STATUS, FAILED), RunTag(results.ERROR, summary)],
            )
            self.client.set_terminated(self.run_id, "FAILED")
        except Exception:  # noqa: BLE001 - the trial's own error is what must surface
            traceback.print_exc()


def _plain(value: Any) -> Any:
    """numpy arrays and scalars as JSON lists and numbers."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
