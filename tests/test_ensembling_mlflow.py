"""Ensembles from MLflow: top K finished trials by val_acc, filters, explicit ids, missing
artifacts, a tracking server that does not answer, and ``python -m ensembling build`` end to end
(outputs, the ensemble run, ``show``). One tiny search experiment in a SQLite file is shared by the
module because creating an MLflow database costs seconds."""

from __future__ import annotations

import json
import socket
import time
import zipfile

import numpy as np
import pandas as pd
import pytest

from avcore import tracking as where
from avcore.afew import CLASSES
from ensembling import tracking, trial_runs
from ensembling.cli import main
from ensembling.errors import ScoresError, TrackingError

K = 7
N_VAL, N_TEST = 40, 6
TRIALS = [  # (avfusion.status, visual_feature, how much the true class is boosted)
    ("finished", "f-mean", 3.0),
    ("finished", "f-meanstd", 2.0),
    ("finished", "f-meanstd", 1.0),
    ("stopped_early", "f-meanstd", 4.0),
    ("failed", "f-mean", 5.0),
    ("finished", "f-mean", 0.5),  # its scores.npz was never logged
]


@pytest.fixture(scope="module")
def search(tmp_path_factory) -> dict:
    """A search experiment: a parent run and the trials above, run ids in TRIALS order."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment(
        "tiny-search", artifact_location=(root / "artifacts").as_uri()
    )
    parent = client.create_run(experiment, tags={"avfusion.kind": "search"}).info.run_id
    rng = np.random.default_rng(3)
    labels = np.arange(N_VAL) % K
    val_ids = np.array([f"val{j:03d}" for j in range(N_VAL)])
    run_ids = []
    for i, (status, feature, boost) in enumerate(TRIALS):
        val = rng.dirichlet(np.ones(K), N_VAL)
        val[np.arange(N_VAL), labels] += boost * rng.uniform(0, 0.3, N_VAL)
        val /= val.sum(axis=1, keepdims=True)
        order = rng.permutation(N_VAL)  # every trial lists its clips in its own order
        directory = root / f"trial{i}"
        directory.mkdir()
        np.savez(
            directory / "scores.npz",
            clip_ids_val=val_ids[order],
            val=val[order].astype(np.float32),
            labels_val=labels[order],
            clip_ids_test=np.array([f"test{j}" for j in range(N_TEST)]),
            test=rng.dirichlet(np.ones(K), N_TEST).astype(np.float32),
        )
        run = client.create_run(
            experiment,
            run_name=f"trial-{i}",
            tags={
                "avfusion.kind": "trial",
                "avfusion.status": status,
                "mlflow.parentRunId": parent,
            },
        )
        run_id = run.info.run_id
        client.log_param(run_id, "visual_feature", feature)
        client.log_metric(run_id, "val_acc", float(np.mean(val.argmax(axis=1) == labels)))
        if i != 5:
            client.log_artifact(run_id, str(directory / "scores.npz"))
        client.set_terminated(run_id)
        run_ids.append(run_id)
    empty = client.create_experiment("empty-search", artifact_location=(root / "empty").as_uri())
    client.create_run(empty, tags={"avfusion.kind": "search"})
    return {"uri": uri, "run_ids": run_ids, "client": client, "root": root, "parent": parent}


def test_top_finished_trials_by_val_acc(search):
    scores = trial_runs.from_mlflow(search["client"], "tiny-search", top=2)
    assert [c.run_id for c in scores.candidates] == search["run_ids"][:2]
    assert scores.skipped == {"failed": 1, "stopped_early": 1}
    assert scores.experiment_name == "tiny-search"
    assert scores.val.shape == (2, N_VAL, K) and scores.test.shape == (2, N_TEST, K)


def test_stopped_trials_only_on_request(search):
    scores = trial_runs.from_mlflow(search["client"], "tiny-search", top=1, include_stopped=True)
    assert scores.candidates[0].run_id == search["run_ids"][3]
    assert scores.skipped == {"failed": 1}


def test_filter_selects_a_feature_variant(search):
    scores = trial_runs.from_mlflow(
        search["client"], "tiny-search", top=10, filter_string="params.visual_feature = 'f-meanstd'"
    )
    assert [c.run_id for c in scores.candidates] == search["run_ids"][1:3]
    assert {c.params["visual_feature"] for c in scores.candidates} == {"f-meanstd"}


def test_explicit_run_ids_in_given_order(search):
    ids = [search["run_ids"][2], search["run_ids"][3]]
    scores = trial_runs.from_mlflow(search["client"], None, run_ids=ids)
    assert [c.run_id for c in scores.candidates] == ids
    with pytest.raises(TrackingError, match="run nosuchrun: not found"):
        trial_runs.from_mlflow(search["client"], None, run_ids=["nosuchrun"])
    with pytest.raises(TrackingError, match="belongs to experiment 'tiny-search'"):
        trial_runs.from_mlflow(search["client"], "empty-search", run_ids=ids)


def test_mlflow_errors_are_one_line(search):
    client = search["client"]
    with pytest.raises(TrackingError, match="no experiment named 'nope'; known: .*tiny-search"):
        trial_runs.from_mlflow(client, "nope")
    with pytest.raises(TrackingError, match="'empty-search' has no finished trial runs"):
        trial_runs.from_mlflow(client, "empty-search")
    with pytest.raises(TrackingError, match=r"no finished trial runs matching .*\(1 failed\)"):
        trial_runs.from_mlflow(
            client, "tiny-search", filter_string="tags.`avfusion.status` = 'failed'"
        )
    with pytest.raises(TrackingError, match="filter 'params.x ==== 1'"):
        trial_runs.from_mlflow(client, "tiny-search", filter_string="params.x ==== 1")
    with pytest.raises(
        ScoresError, match=rf"run {search['run_ids'][5]} \(finished\): no scores.npz artifact"
    ):
        trial_runs.from_mlflow(client, "tiny-search", top=10)


def test_missing_database_and_silent_server_fail_fast(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrackingError, match=f"no MLflow database at {tmp_path}/mlruns/mlflow.db"):
        tracking.connect(None)
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(
        TrackingError, match=f"tracking server http://127.0.0.1:{port} does not answer"
    ):
        tracking.connect(f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 10


def test_uri_precedence(monkeypatch, tmp_path):
    """--tracking-uri, else MLFLOW_TRACKING_URI, else the default; local paths made absolute."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert where.resolve_uri("sqlite:///given.db") == f"sqlite:///{tmp_path}/given.db"
    assert where.resolve_uri(None) == f"sqlite:///{tmp_path}/elsewhere.db"
    assert where.resolve_uri("http://h:5000") == "http://h:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert where.DEFAULT_URI == "sqlite:///mlruns/mlflow.db"
    assert where.resolve_uri(None) == f"sqlite:///{tmp_path}/mlruns/mlflow.db"


def test_build_from_an_experiment_end_to_end(search, tmp_path, capsys):
    out = tmp_path / "ensemble"
    args = ["build", "--experiment", "tiny-search", "--tracking-uri", search["uri"], "--top", "3"]
    args += ["--class-weights", "sqrt-prior", "--rounds", "10", "--folds", "4", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "1 failed, 1 stopped_early" in printed.err
    assert "cross-validated" in printed.out and f"wrote {out}" in printed.out

    info = json.loads((out / "ensemble.json").read_text())
    assert info["format"] == "avfusion-ensemble" and info["candidates"] == 3
    assert {m["run_id"] for m in info["members"]} <= set(search["run_ids"][:3])
    assert sum(m["weight"] for m in info["members"]) == pytest.approx(1.0)
    assert len(info["trajectory"]) == 10 and 1 <= info["kept_steps"] <= 10
    assert info["source"]["skipped"] == {"failed": 1, "stopped_early": 1}
    for key in ("acc", "uar"):
        assert 0 <= info["cross_validated"][key] <= 1 and 0 <= info["in_sample"][key] <= 1

    predictions = pd.read_csv(out / "predictions_test.csv")
    assert list(predictions.columns) == ["clip_id", "emotion", *(f"p_{c}" for c in CLASSES)]
    assert len(predictions) == N_TEST and set(predictions["emotion"]) <= set(CLASSES)
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"{c}.txt" for c in predictions["clip_id"])
        for clip_id, emotion in zip(predictions["clip_id"], predictions["emotion"]):
            assert archive.read(f"{clip_id}.txt").decode() == emotion
    for png in ("confusion_val.png", "trajectory.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"

    run = search["client"].get_run(info["mlflow_run_id"])
    assert run.data.tags["avfusion.kind"] == "ensemble" and run.info.status == "FINISHED"
    # Figures named by how they were measured; no plain val_acc to sort it above the trials.
    assert run.data.metrics["val_acc_cv"] == pytest.approx(info["cross_validated"]["acc"])
    assert run.data.metrics["val_acc_in_sample"] == pytest.approx(info["in_sample"]["acc"])
    assert "val_acc" not in run.data.metrics
    # Nested under the search its members come from, tagged with them heaviest first.
    assert run.data.tags["mlflow.parentRunId"] == search["parent"]
    members = info["members"]
    assert run.data.tags["avfusion.members"] == ",".join(m["run_id"] for m in members)
    assert run.data.tags["avfusion.member_names"] == ", ".join(m["name"] for m in members)
    logged = {a.path for a in search["client"].list_artifacts(run.info.run_id)}
    assert {"ensemble.json", "predictions_test.csv", "submission.zip", "report.md"} <= logged

    assert main(["show", str(out)]) == 0
    assert "best single trial" in capsys.readouterr().out


def test_build_errors_exit_2_with_one_line(search, tmp_path, capsys):
    base = ["build", "--tracking-uri", search["uri"], "--out", str(tmp_path / "x")]
    assert main([*base, "--experiment", "empty-search"]) == 2
    assert main([*base, "--experiment", "tiny-search", "--class-weights", "1,2"]) == 2
    assert main([*base, "--experiment", "tiny-search", "--rounds", "-3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(
        line.startswith("python -m ensembling build: error:") for line in err
    )
    assert not (tmp_path / "x").exists()


def test_score_dirs_logged_to_a_new_experiment(search, tmp_path):
    out = tmp_path / "out"
    dirs = [str(search["root"] / f"trial{i}") for i in range(3)]
    args = ["build", "--scores", *dirs, "--rounds", "3", "--out", str(out)]
    assert (
        main([*args, "--tracking-uri", search["uri"], "--log-experiment", "scores-ensembles"]) == 0
    )
    run_id = json.loads((out / "ensemble.json").read_text())["mlflow_run_id"]
    run = search["client"].get_run(run_id)
    experiment = search["client"].get_experiment(run.info.experiment_id)
    assert experiment.name == "scores-ensembles" and run.data.tags["avfusion.kind"] == "ensemble"
