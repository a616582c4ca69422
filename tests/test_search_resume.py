"""search resume: a smoke search whose driver is killed (SIGKILL of its whole process group, Ray
included) once some trials finished, then ``python -m search resume`` finishes it in the same
MLflow parent run with exactly one terminal run per trial, and ``status`` prints the leaderboard.

The search records through ``MLFLOW_TRACKING_URI`` (a SQLite file under tmp_path) while ``resume``
runs without it: the tracking URI the search started with must come back from its saved state.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_search_support import cli_env, run_cli, search_args, write_tiny_stores

NUM_TRIALS = 6
TERMINAL = {"finished", "stopped_early", "failed"}


def read_only(db: Path, sql: str) -> list[tuple]:
    """The rows of ``sql`` on the SQLite file ``db``, opened read-only so polling never opens
    MLflow's or Optuna's schema machinery beside the writing driver; none while the file or its
    tables do not exist yet, or it is locked for a moment."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def finished_trial_runs(db: Path) -> dict[str, str]:
    """run id -> trial id of the trial runs tagged finished, read straight from MLflow's file."""
    return dict(
        read_only(
            db,
            "SELECT s.run_uuid, t.value FROM tags s JOIN tags t ON t.run_uuid = s.run_uuid"
            " JOIN tags k ON k.run_uuid = s.run_uuid"
            " WHERE s.key = 'avfusion.status' AND s.value = 'finished'"
            " AND t.key = 'avfusion.trial_id' AND k.key = 'avfusion.kind' AND k.value = 'trial'",
        )
    )


def study_trial_count(db: Path) -> int:
    """How many trials optuna.db holds (0 before it has any)."""
    return next(iter(read_only(db, "SELECT COUNT(*) FROM trials")), (0,))[0]


def study_trials(work: Path) -> list[str]:
    """The states of the search's Optuna trials, read by ``optuna.load_study`` in another
    process (as optuna-dashboard reads them), from optuna.db beside MLflow's file."""
    script = (
        "import sys, optuna; optuna.logging.set_verbosity(optuna.logging.WARNING); "
        "print(len(optuna.get_all_study_summaries(sys.argv[1])), *(t.state.name for t in "
        "optuna.load_study(study_name='demo', storage=sys.argv[1]).trials))"
    )
    storage = f"sqlite:///{work}/mlruns/optuna.db"
    out = subprocess.run(
        [sys.executable, "-c", script, storage], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    studies, *states = out.stdout.split()
    assert studies == "1", out.stdout
    return states


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the driver's process group (the driver, its local Ray, the trial workers) and wait
    until none of it is left."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)


def resume(work: Path):
    """``python -m search resume demo`` on the search under ``work``; it must succeed."""
    resumed = run_cli(
        "search",
        ["resume", "demo", "--storage", str(work / "ray_results"), "--num-cpus", "2"],
        work,
        timeout=300,
    )
    (work / "resume.log").write_text(resumed.stdout + resumed.stderr)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    return resumed


@pytest.mark.slow
def test_resume_after_the_driver_is_killed_finishes_without_duplicate_runs(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    root = write_tiny_stores(tmp_path / "stores")
    db = tmp_path / "tracking" / "mlflow.db"
    uri = f"sqlite:///{db}"
    args = search_args(
        root,
        tmp_path,
        "--num-cpus", "2",
        "--set", f"budget.num_trials={NUM_TRIALS}",
        "--set", "budget.epochs=4",
        "--set", "seed=3",
    )  # fmt: skip
    started = time.time()
    log = (tmp_path / "run.log").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=tmp_path,
        env=cli_env({"MLFLOW_TRACKING_URI": uri}),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, Ray's processes included
    )
    try:
        deadline = time.time() + 180
        before: dict[str, str] = {}
        while time.time() < deadline and driver.poll() is None and not before:
            time.sleep(0.2)
            before = finished_trial_runs(db)
        kill_group(driver)
    finally:
        kill_group(driver)
        log.close()
    print(f"{time.time() - started:.1f} s: killed after {len(before)} finished")
    output = (tmp_path / "run.log").read_text()
    assert before, f"no trial finished within 180 s (exit {driver.returncode}):\n{output[-4000:]}"
    before = finished_trial_runs(db)
    assert len(before) < NUM_TRIALS, "the search ended before it could be interrupted"

    resumed = resume(tmp_path)
    print(f"{time.time() - started:.1f} s: resumed")
    assert "leaderboard" in resumed.stdout and uri in resumed.stdout

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("avfusion.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
    state = yaml.safe_load((tmp_path / "ray_results" / "demo" / "avfusion_search.yaml").read_text())
    # The parent run the search started with is the one resumed and closed.
    assert [p.info.run_id for p in parents] == [state["parent_run_id"]]
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["avfusion.status"] == "finished"
    trial_ids = [r.data.tags["avfusion.trial_id"] for r in trials]
    # Exactly the configured number of trials, each with one run, each run ended.
    assert len(set(trial_ids)) == NUM_TRIALS and len(trial_ids) == NUM_TRIALS, sorted(trial_ids)
    statuses = {r.info.run_id: r.data.tags["avfusion.status"] for r in trials}
    assert set(statuses.values()) <= TERMINAL, statuses
    assert all(r.info.status in ("FINISHED", "KILLED", "FAILED") for r in trials)
    assert all(r.data.tags["mlflow.parentRunId"] == state["parent_run_id"] for r in trials)
    # A trial that had finished before the kill kept its run: it was not trained a second time.
    final = {r.data.tags["avfusion.trial_id"]: r.info.run_id for r in trials}
    for run_id, trial_id in before.items():
        assert final.get(trial_id, run_id) == run_id, (trial_id, run_id, final.get(trial_id))
    finished = [r for r in trials if r.data.tags["avfusion.status"] == "finished"]
    assert finished
    for run in finished:
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"scores.npz", "confusion_val.png", "attention_val.png"} <= artifacts, artifacts
    assert parents[0].data.tags["avfusion.best_run_id"] in {r.info.run_id for r in finished}

    status = run_cli("search", ["status", "demo", "--tracking-uri", uri], tmp_path)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.strip().splitlines()
    assert lines[0].startswith("trials: ") and lines[0].endswith(" 0 running"), lines[0]
    counts = {s: sum(v == s for v in statuses.values()) for s in TERMINAL}
    assert f"{counts['finished']} finished" in lines[0], lines[0]
    rows = [line for line in lines[2:] if line.split()[0].isdigit()]
    assert len(rows) == NUM_TRIALS, status.stdout


@pytest.mark.slow
def test_ctrl_c_saves_the_search_exits_130_and_resume_finishes_it(tmp_path: Path):
    """Ctrl+C in a terminal: SIGINT to the whole foreground process group (driver and its local
    Ray). The search stops cleanly with exit status 130, says how to resume, leaves the parent run
    KILLED and tagged interrupted and no trial run ``running``; ``resume`` then finishes it."""
    from mlflow.tracking import MlflowClient

    trials = 6
    root = write_tiny_stores(tmp_path / "stores")
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    args = search_args(
        root,
        tmp_path,
        "--num-cpus", "2",
        "--set", f"budget.num_trials={trials}",
        "--set", "budget.epochs=12",
        "--set", "budget.grace_period=12",  # no trial stopped by ASHA: each takes a while
        "--set", "seed=3",
    )  # fmt: skip
    log = (tmp_path / "run.log").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # What optuna-dashboard does: another process opens the study while the search runs.
        # Done as soon as the study holds a trial, before the interrupt: reading it takes a new
        # Python with optuna imported (seconds on a loaded machine), and done between the first
        # finished trial and Ctrl+C it let every trial start first (a CI failure).
        deadline = time.time() + 180
        while time.time() < deadline and driver.poll() is None:
            if study_trial_count(tmp_path / "mlruns" / "optuna.db"):
                break
            time.sleep(0.2)
        live = study_trials(tmp_path) if driver.poll() is None else None
        while time.time() < deadline and driver.poll() is None:
            if finished_trial_runs(tmp_path / "mlruns" / "mlflow.db"):
                break
            time.sleep(0.2)
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGINT)
        code = driver.wait(timeout=120)
    finally:
        kill_group(driver)
        log.close()
    output = (tmp_path / "run.log").read_text()
    assert code == 130, f"exit {code}:\n{output[-4000:]}"
    assert f"python -m search resume demo --storage {tmp_path}/ray_results" in output, output[
        -2000:
    ]
    assert "leaderboard so far" in output

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if r.data.tags.get("avfusion.kind") == "search")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["avfusion.status"] == "interrupted"
    statuses = [r.data.tags["avfusion.status"] for r in runs if r is not parent]
    assert "running" not in statuses and "finished" in statuses, statuses
    # Ctrl+C came while there was work left: trials not started yet, or started and interrupted
    # (under load every trial may have started before the interrupt reached the driver).
    ended = [s for s in statuses if s in TERMINAL]
    assert len(ended) < trials, f"the search ended before Ctrl+C reached it: {statuses}"
    assert live, "no trial in the study while the search ran"
    interrupted = study_trials(tmp_path)
    done = {"COMPLETE", "PRUNED", "FAIL"}
    assert sum(s in done for s in interrupted) < trials, interrupted

    resume(tmp_path)
    # The same study went on: every trial of the budget ended in it, none added beyond the budget,
    # one study in the file.
    resumed = study_trials(tmp_path)
    assert len(resumed) == trials and set(resumed) <= done, (interrupted, resumed)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["avfusion.status"] == "finished"
    trial_runs = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
    trial_ids = [r.data.tags["avfusion.trial_id"] for r in trial_runs]
    assert len(trial_ids) == len(set(trial_ids)) == trials, sorted(trial_ids)
    assert {r.data.tags["avfusion.status"] for r in trial_runs} <= TERMINAL
