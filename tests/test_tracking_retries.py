"""Issue 17: a trial rides out its tracking server restarting (a real ``mlflow-server.sh`` process
stopped and started again mid-trial), and when the server stays away past the retry bounds the
trial's logging fails with one line naming what it could not log, and its run ends FAILED with
that reason once the server is back (as the driver marks it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from mlflow_server import serve

from avcore import results
from search import tracking
from search.parent_run import ensure_experiment
from search.recorder import TrialRecorder
from search.tracking import LoggingFailed, TrackingContext
from search.trial_runs import mark_failed_if_running
from trainables.result import TrialResult


def _result() -> TrialResult:
    scores = {
        "clip_ids_val": np.array(["v0", "v1"]),
        "val": np.full((2, 7), 1 / 7, np.float32),
        "labels_val": np.array([0, 1]),
        "clip_ids_test": np.array(["t0"]),
        "test": np.full((1, 7), 1 / 7, np.float32),
    }
    return TrialResult(None, [], {"epochs": 3}, scores, {"clip_ids": []})


def _recorder(uri: str, trial_id: str) -> TrialRecorder:
    experiment_id = ensure_experiment(uri, "retries")
    parent = tracking.client(uri).create_run(experiment_id).info.run_id
    context = TrackingContext(uri, experiment_id, parent, "retries", "test")
    return TrialRecorder(
        context, trial_id=trial_id, run_name=trial_id, params={"lr": 0.1}, tags={}, config_yaml=""
    )


def _epoch(recorder: TrialRecorder, epoch: int) -> None:
    recorder.log_epoch({"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.1 * epoch})


@pytest.mark.slow
def test_a_trial_survives_a_server_restart_and_fails_with_the_reason_past_the_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with serve(tmp_path / "server") as server:
        for name, value in server.credentials.items():
            monkeypatch.setenv(name, value)
        # More room than the shipped minute (tracking.HTTP_RETRIES): on a loaded 2-core CI
        # machine the server alone may take longer than that to come back.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "8")
        recorder = _recorder(server.uri, "survivor")
        _epoch(recorder, 1)
        server.stop()
        server.start(wait=False)  # still starting when the next epoch logs: the client retries
        _epoch(recorder, 2)
        _epoch(recorder, 3)
        recorder.finish(_result())
        run = tracking.client(server.uri).get_run(recorder.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags[results.STATUS] == results.FINISHED
        history = tracking.client(server.uri).get_metric_history(recorder.run_id, "val_acc")
        assert sorted(m.step for m in history) == [1, 2, 3]  # none lost, none twice

        # Past the bounds: one retry, the server gone.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        doomed = _recorder(server.uri, "doomed")
        server.stop()
        with pytest.raises(LoggingFailed) as failed:
            _epoch(doomed, 1)
        reason = str(failed.value)
        assert reason.startswith(f"MLflow at {server.uri}: could not log epoch 1's metrics")
        assert "\n" not in reason
        doomed.fail(failed.value)  # cannot reach the server either: printed, never raised
        server.start()
        mark_failed_if_running(server.uri, doomed.run_id, reason)  # the driver
        run = tracking.client(server.uri).get_run(doomed.run_id)
        assert run.info.status == "FAILED"
        assert run.data.tags[results.STATUS] == results.FAILED
        assert run.data.tags["avfusion.error"] == reason
    assert os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR") == "1"  # the shipped bound
