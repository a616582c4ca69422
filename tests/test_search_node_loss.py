"""Issue 12: a worker node dies mid-search. A real two-node Ray cluster on loopback (a head and a
worker, one CPU each, started with ``ray start``); once a trial trains on each node the worker's
raylet is SIGKILLed. The search must finish on the head: the lost trial retried, its first run
FAILED and replaced (never RUNNING, never counted twice), the plots drawn, the leaderboard
printed, exit 0."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_search_cluster import Processes, node_env, start_two_nodes
from test_search_support import search_args, write_tiny_stores

from search import watchdog

NUM_TRIALS = 4


def _raylet_of(node: subprocess.Popen) -> int:
    for pid in watchdog.descendants(node.pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if command.endswith(b"/raylet"):
            return pid
    raise AssertionError("the worker node has no raylet process")


def _trial_runs(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("demo")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]


@pytest.mark.slow
def test_a_search_survives_losing_a_worker_node(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    root = write_tiny_stores(tmp_path / "stores")
    temp_dir = Path("/tmp") / f"rayl{os.getpid()}"  # Ray's socket paths must stay short
    env = node_env()
    procs = Processes(tmp_path, env)
    db = tmp_path / "mlruns" / "mlflow.db"
    try:
        gcs_port, _, worker, _ = start_two_nodes(procs, temp_dir)
        args = search_args(root, tmp_path)
        args += ["--set", f"budget.num_trials={NUM_TRIALS}", "--set", "budget.epochs=300"]
        args += ["--set", "budget.grace_period=300", "--set", "budget.max_failures=2"]
        args += ["--set", "resources.cpus=1", "--set", "budget.time_limit_s=900"]
        procs.env = {**env, "RAY_ADDRESS": f"127.0.0.1:{gcs_port}"}  # the driver joins
        driver, driver_log = procs.start("driver", [sys.executable, "-m", "search", *args])

        # Until one trial trains on each node: then one of them is on the worker.
        deadline = time.monotonic() + 300
        while True:
            assert driver.poll() is None, driver_log.read_text()[-4000:]
            assert time.monotonic() < deadline, "no two trials trained at once within 300 s"
            started = "parent run" in driver_log.read_text()  # the database is made
            running = [r for r in _trial_runs(db) if r.info.status == "RUNNING"] if started else []
            nodes = {r.data.tags.get("avfusion.node_id") for r in running}
            if len(nodes) >= 2 and all(len(r.data.metrics) for r in running):
                break
            time.sleep(2)
        os.kill(_raylet_of(worker), signal.SIGKILL)  # the node is lost, its trial with it

        driver.wait(timeout=900)
        output = driver_log.read_text()
        assert driver.returncode == 0, output[-5000:]
        assert "leaderboard" in output and "Traceback" not in output, output[-5000:]

        client = MlflowClient(f"sqlite:///{db}")
        experiment = client.get_experiment_by_name("demo")
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parent = [r for r in runs if r.data.tags.get("avfusion.kind") == "search"]
        trials = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
        assert [p.info.status for p in parent] == ["FINISHED"]
        trial_ids = [r.data.tags["avfusion.trial_id"] for r in trials]
        # Every trial once: the lost attempt's run was replaced by its retry's.
        assert len(trial_ids) == len(set(trial_ids)) == NUM_TRIALS, sorted(trial_ids)
        assert not [r for r in trials if r.info.status == "RUNNING"]
        finished = [r for r in trials if r.data.tags["avfusion.status"] == "finished"]
        assert len(finished) == NUM_TRIALS, [r.data.tags["avfusion.status"] for r in trials]
        for run in finished:
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"scores.npz", "confusion_val.png", "attention_val.png"} <= artifacts, artifacts
        deleted = client.search_runs(
            [experiment.experiment_id], run_view_type=2, max_results=1000
        )  # the replaced attempts: ended FAILED, then deleted
        assert [r.info.status for r in deleted] and {r.info.status for r in deleted} == {"FAILED"}
    finally:
        procs.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
