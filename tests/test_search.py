"""search: every shipped config loads, bad input gets one line, the sampler honours its
conditionals, Optuna hears about pruned trials, and the smoke search runs end to end on a local
Ray (2 CPUs) with every trial in MLflow, a failing trial recorded as failed, and status/resume."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_tool
from test_search_support import DEMO_CONFIG, REPO, run_cli, search_args, write_tiny_stores

from search.config import load_search_config
from search.errors import SearchConfigError

CONFIGS = sorted((REPO / "conf" / "search").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_shipped_config_loads_and_samples_with_its_conditionals(path: Path):
    import optuna

    from search.space import SpaceSampler
    from search.trial_fields import trial_defaults
    from trainables import TrialConfig

    config = load_search_config(path, check_stores=False)
    sampler = SpaceSampler(config, trial_defaults())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        sampler(trial)
        params = dict(trial.params)
        fbp = params.get("fusion", config.trial.get("fusion")) == "fbp"
        assert fbp == any(k in params for k in ("fbp_factor", "fbp_out", "fbp_dropout")), params
        transformer = "transformer" in (
            params.get("visual_attention"),
            params.get("audio_attention"),
        )
        assert transformer == ("transformer_hidden" in params), params
        assert ("momentum" in params) <= (params.get("optimizer") == "sgd")
        assert params["visual_feature"] in config.stores.visual_feature
        features = {k: params.pop(k) for k in ("visual_feature", "audio_feature")}
        assert features
        TrialConfig.model_validate({**config.trial, **params, "epochs": 1})
        study.tell(trial, 0.5)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("budget.bogus=1", "budget.bogus: unknown key"),
        ("space.lr={low: 0, high: 1, log: true}", "space.lr: a log range needs low > 0"),
        ("space.fusion=[fbp, nope]", "unknown fusion 'nope'"),
        (
            "space.fbp_out={low: 0, high: 8}",
            "space.fbp_out: trial field: fbp_out: Input should be greater than or equal to 1 (got 0)",
        ),
        ("space.epochs=[1, 2]", "space.epochs: set by the search (budget.epochs)"),
        ("space.class_balanced=[true]", "space.class_balanced: now called 'balanced_loss'"),
        ("budget.grace_period=99", "grace_period (99) exceeds epochs"),
        ("resources.gpu=1.5", "gpu above 1 must be a whole number"),
        ("stores.visual_feature=[nowhere]", "no visual store 'nowhere'"),
        ("start_from=[{epochs: 3}]", "start_from[0].epochs: not sampled by this search"),
        ("start_grid=[lr]", "start_grid: 'lr' is not a list of choices the search samples"),
        (
            "budget.num_trials=20",
            "start_grid: 32 combinations and 1 start_from points exceed budget.num_trials (20)",
        ),
        ("space.modality=[both, neither]", "space.modality: trial field: modality: Input should"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, override: str, expected: str):
    root = write_tiny_stores(tmp_path / "stores")
    with pytest.raises(SearchConfigError) as error:
        load_search_config(
            DEMO_CONFIG,
            [
                f"stores.root={root}",
                "stores.visual_feature=[basic]",
                "stores.audio_feature=[spectrogram]",
                override,
            ],
        )
    message = str(error.value)
    assert expected in message and "\n" not in message and str(DEMO_CONFIG) in message


def test_cli_bad_input_is_one_line_before_any_trial(tmp_path: Path):
    """Stores that do not pair, and a tracking server that does not answer: exit 2, one line."""
    root = write_tiny_stores(tmp_path / "stores")
    write_tiny_stores(tmp_path / "other", visual=(), audio=("logmel",), clips=60)
    (root / "audio" / "logmel").symlink_to(tmp_path / "other" / "audio" / "logmel")
    result = run_cli(
        "search", [*search_args(root, tmp_path), "--set", "stores.audio_feature=[logmel]"], tmp_path
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "clip 'c060'" in lines[0], lines

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli(
        "search",
        search_args(root, tmp_path),
        tmp_path,
        env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        line for line in result.stderr.strip().splitlines() if "does not answer" in line
    ], result.stderr
    # No Tune state was written (the storage folder holds only the search's lock file).
    assert not (tmp_path / "ray_results" / "demo").exists()
    assert [p.name for p in (tmp_path / "ray_results").iterdir()] == [".demo.lock"]


def test_single_modality_trials_sample_only_what_they_read():
    """``space.modality``: a visual-only trial draws no audio variant, audio attention, fusion or
    FBP setting (and the other way round); the transformer's size only for an attention it
    reads."""
    import optuna

    from search.space import SpaceSampler
    from search.trial_fields import trial_defaults

    config = load_search_config(
        DEMO_CONFIG, ["space.modality=[both, visual, audio]"], check_stores=False
    )
    sampler = SpaceSampler(config, trial_defaults())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        sampler(trial)
        params = trial.params
        modality = params["modality"]
        seen.add(modality)
        for side in ("visual", "audio"):
            reads = modality in ("both", side)
            assert (f"{side}_feature" in params) is reads, params
            assert (f"{side}_attention" in params) is reads, params
        assert ("fusion" in params) is (modality == "both"), params
        if modality != "both":
            assert not any(k.startswith("fbp_") for k in params), params
            read = params[f"{modality}_attention"]
            assert ("transformer_hidden" in params) is (read == "transformer"), params
        study.tell(trial, 0.5)
    assert seen == {"both", "visual", "audio"}


def test_start_points_are_the_first_trials_and_the_rest_is_sampled():
    import optuna

    from search.adapter import make_searcher
    from search.start_points import left_out, start_points

    config = load_search_config(
        DEMO_CONFIG, ["budget.num_trials=3", "start_grid=[]"], check_stores=False
    )
    point = dict(config.start_from[0])
    assert point["fusion"] == "fbp" and point["lr"] == 3.0e-4  # the demo starts at paper-best
    partial = {"modality": "audio", "audio_feature": "spectrogram"}
    config = load_search_config(
        DEMO_CONFIG,
        [
            "budget.num_trials=3",
            "start_grid=[]",
            "space.modality=[both, audio]",
            f"start_from=[{point}, {partial}]",
        ],
        check_stores=False,
    )
    searcher = make_searcher(config, storage=optuna.storages.InMemoryStorage()).searcher
    first, second, third = (searcher.suggest(trial_id) for trial_id in "abc")
    assert {k: first[k] for k in point} == point and first["trial_number"] == 0
    assert {k: second[k] for k in partial} == partial and "audio_attention" in second
    assert "visual_feature" not in second and "fusion" not in second
    assert third["trial_number"] == 2
    # a point the space cannot take is left out, and says why
    narrowed = load_search_config(
        DEMO_CONFIG,
        [
            "stores.visual_feature=[basic]",
            "start_grid=[]",
            f"start_from=[{point}, {{lr: 0.5}}, {{fusion: concat}}]",
        ],
        check_stores=False,
    )
    assert left_out(narrowed) == {
        0: "start_from[0].visual_feature: 'f-mean' is outside the space (choices ['basic'])",
        1: "start_from[1].lr: 0.5 is outside the space (0.0003..0.03, log)",
    }
    assert start_points(narrowed) == [{"fusion": "concat"}]
    # no grid: only the start points count against the budget
    single = load_search_config(
        DEMO_CONFIG, ["start_grid=[]", "budget.num_trials=1"], check_stores=False
    )
    assert len(start_points(single)) == 1
    # start_grid: every combination once, after start_from, the rest sampled
    gridded = load_search_config(
        DEMO_CONFIG,
        ["budget.num_trials=12", "start_grid=[fusion, visual_attention]"],
        check_stores=False,
    )
    searcher = make_searcher(gridded, storage=optuna.storages.InMemoryStorage()).searcher
    first, *grid = (searcher.suggest(f"t{i}") for i in range(9))
    assert {k: first[k] for k in point} == point
    cells = {(c["fusion"], c["visual_attention"]) for c in grid}
    assert cells == {
        (f, a) for f in ("fbp", "concat") for a in ("mean", "self", "relation", "transformer")
    }


@pytest.mark.parametrize(
    ("uri", "nodes", "refused"),
    [
        ("http://127.0.0.1:5000", ["10.0.0.1", "10.0.0.2"], "loopback (127.0.0.1)"),
        ("http://localhost:5000", ["10.0.0.1", "10.0.0.7", "10.0.0.8"], "2 other machines"),
        ("sqlite:////data/mlflow.db", ["10.0.0.1", "10.0.0.2"], "a file on this machine"),
        ("/data/mlruns", ["10.0.0.1", "10.0.0.2"], "a file on this machine"),
        ("http://10.0.0.1:5000", ["10.0.0.1", "10.0.0.2"], None),
        ("postgresql://mlflow@10.0.0.1/mlflow", ["10.0.0.1", "10.0.0.2"], None),
        ("http://127.0.0.1:5000", ["10.0.0.1"], None),  # one machine
        (
            "sqlite:////data/mlflow.db",
            ["10.0.0.1", "127.0.0.2", "127.0.0.3"],
            None,
        ),  # loopback nodes
    ],
)
def test_a_tracking_uri_other_machines_cannot_reach_is_refused(uri, nodes, refused):
    """The decision only: a cluster of several machines cannot run here (every Ray node of the
    tests is on this host), so node addresses are given; ``check_tracking_reach`` feeds it
    ``ray.nodes()`` before any trial (``run``, ``resume``, ``confirm``, ``refit``)."""
    from search.cluster import local_only_reason

    reason = local_only_reason(uri, "10.0.0.1", nodes)
    if refused is None:
        assert reason is None
    else:
        assert refused in reason and "tracking.uri=http://HEAD_IP:5000" in reason
        assert "\n" not in reason


def test_pruned_trials_reach_optuna_as_pruned():
    import optuna

    from search.adapter import make_searcher

    config = load_search_config(
        DEMO_CONFIG, ["budget.num_trials=3", "start_grid=[]"], check_stores=False
    )
    storage = optuna.storages.InMemoryStorage()
    searcher = make_searcher(config, storage=storage).searcher
    for number, (trial_id, finished) in enumerate((("a", 1), ("b", 0))):
        # each config carries its Optuna trial number: the trial's id in names and tables
        assert searcher.suggest(trial_id)["trial_number"] == number
        result = {"val_acc": 0.4, "training_iteration": 1, "finished": finished}
        searcher.on_trial_result(trial_id, result)
        searcher.on_trial_complete(trial_id, result)
    study = optuna.load_study(study_name=config.name, storage=storage)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]


def test_the_study_lives_beside_the_tracking_database_and_never_names_a_password(
    tmp_path: Path, monkeypatch
):
    """optuna.db beside a SQLite tracking database (never inside it: Optuna refuses MLflow's
    file, whose alembic_version holds MLflow's revision), mlruns/optuna.db under a tracking
    server, a configured URL as given; a URL with a password is refused (it would be logged)."""
    import optuna

    from search.errors import SearchError
    from search.study import open_storage, storage_url, with_storage

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def url(*overrides: str) -> str:
        return storage_url(load_search_config(DEMO_CONFIG, list(overrides), check_stores=False))

    assert url("tracking.uri=sqlite:///db/mlflow.db") == f"sqlite:///{tmp_path}/db/optuna.db"
    assert url("tracking.uri=http://127.0.0.1:5000") == f"sqlite:///{tmp_path}/mlruns/optuna.db"
    pg = "postgresql+psycopg://optuna@127.0.0.1:5433/optuna"
    assert url(f"tracking.optuna_storage={pg}") == pg
    config = with_storage(load_search_config(DEMO_CONFIG, check_stores=False))
    assert config.tracking.optuna_storage == f"sqlite:///{tmp_path}/mlruns/optuna.db"
    with pytest.raises(SearchConfigError, match="PGPASSWORD"):
        url("tracking.optuna_storage=postgresql://optuna:secret@127.0.0.1/optuna")

    import mlflow

    mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").search_experiments()
    with pytest.raises(SearchError, match="Optuna storage"):
        open_storage(f"sqlite:///{tmp_path}/mlflow.db")
    assert optuna.get_all_study_summaries(open_storage(f"sqlite:///{tmp_path}/o.db")) == []


def test_a_restored_searcher_ends_the_trials_its_snapshot_never_knew(tmp_path: Path):
    """Resume with a persistent study (mode async): Tune's snapshot brings the searcher back, the
    study's trials asked for after the snapshot end FAIL (a reproducible search proposes them
    again: tests/test_search_repro.py); a restarted trial's repeated epochs are not reported to
    Optuna twice (no "reported value is ignored" warning); every Optuna trial names its Tune
    trial."""
    import warnings

    import optuna

    from search.adapter import TUNE_TRIAL_ID, make_searcher
    from search.study import open_storage

    config = load_search_config(
        DEMO_CONFIG,
        ["budget.num_trials=3", "start_grid=[]", "start_from=[]", "mode=async"],
        check_stores=False,
    )
    url = f"sqlite:///{tmp_path}/optuna.db"
    searcher = make_searcher(config, storage=open_storage(url)).searcher
    searcher.suggest("a")
    searcher.save(str(tmp_path / "snapshot.pkl"))
    searcher.suggest("b")  # the driver dies before its next snapshot
    restored = make_searcher(config, storage=open_storage(url)).searcher
    restored.restore(str(tmp_path / "snapshot.pkl"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in (1, 2, 1, 2, 3):  # "a" restarted after step 2
            restored.on_trial_result("a", {"val_acc": 0.1 * step, "training_iteration": step})
    assert not [w for w in caught if "is ignored" in str(w.message)]
    restored.on_trial_complete("a", {"val_acc": 0.5, "training_iteration": 3, "finished": 1})
    study = optuna.load_study(study_name=config.name, storage=url)
    states = {t.user_attrs[TUNE_TRIAL_ID]: t.state for t in study.trials}
    assert states == {"a": optuna.trial.TrialState.COMPLETE, "b": optuna.trial.TrialState.FAIL}
    assert study.trials[0].intermediate_values == pytest.approx({1: 0.1, 2: 0.2, 3: 0.3})


def test_a_trial_that_ended_after_the_snapshot_is_not_told_twice(tmp_path: Path):
    """The driver dies after a trial ended in the study but before Tune's next snapshot: Tune
    restarts that trial on resume (its run hands its result back), and the searcher must not
    report to or tell the finished Optuna trial again (Optuna raises UpdateFinishedTrialError,
    which used to end the resume). The study keeps the value the trial ended with."""
    import optuna

    from search.adapter import make_searcher
    from search.study import open_storage

    config = load_search_config(
        DEMO_CONFIG, ["budget.num_trials=3", "start_grid=[]", "start_from=[]"], check_stores=False
    )
    url = f"sqlite:///{tmp_path}/optuna.db"
    searcher = make_searcher(config, storage=open_storage(url)).searcher
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.on_trial_result("a", {"val_acc": 0.3, "training_iteration": 1})
    searcher.save(str(tmp_path / "snapshot.pkl"))  # "a" and "b" running
    last = {"val_acc": 0.5, "training_iteration": 2, "finished": 1}
    searcher.on_trial_complete("a", last)  # then the driver is killed
    restored = make_searcher(config, storage=open_storage(url)).searcher
    restored.restore(str(tmp_path / "snapshot.pkl"))
    restored.on_trial_result("a", last)  # the handed-back result of the restarted trial
    restored.on_trial_complete("a", last)
    restored.on_trial_result("b", {"val_acc": 0.2, "training_iteration": 1})
    restored.on_trial_complete("b", {"val_acc": 0.4, "training_iteration": 2, "finished": 1})
    study = optuna.load_study(study_name=config.name, storage=url)
    assert [(t.state, t.value) for t in study.trials] == [
        (optuna.trial.TrialState.COMPLETE, 0.5),
        (optuna.trial.TrialState.COMPLETE, 0.4),
    ]
    assert study.trials[0].intermediate_values == pytest.approx({1: 0.3, 2: 0.5})


def test_stopped_trials_end_finished_in_mlflow_interrupted_ones_killed(tmp_path: Path):
    """ASHA's cut and the time limit are the search working: FINISHED with
    ``avfusion.status=stopped_early`` (never ranked as finished); Ctrl+C leaves KILLED runs
    tagged interrupted, which ``resume`` replaces."""
    from mlflow.tracking import MlflowClient

    from avcore import results
    from search import trial_runs
    from search.leaderboard import leaderboard

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("s", artifact_location=(tmp_path / "a").as_uri())
    parent = client.create_run(experiment, tags={results.KIND: results.SEARCH_RUN}).info.run_id

    def trial(acc: float) -> str:
        tags = {results.KIND: results.TRIAL, results.PARENT: parent, results.STATUS: "running"}
        run_id = client.create_run(experiment, tags=tags).info.run_id
        client.log_metric(run_id, "val_acc", acc, step=1)
        return run_id

    cut, late, done = trial(0.9), trial(0.8), trial(0.5)
    client.set_tag(done, results.STATUS, results.FINISHED)
    client.set_terminated(done)
    trial_runs.mark_stopped(uri, cut, 1)
    trial_runs.end_stopped_trial_runs(uri, experiment, parent, results.STOPPED_EARLY, "limit")
    for run_id in (cut, late):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags[results.STATUS] == results.STOPPED_EARLY
    assert client.get_run(late).data.tags[results.STOP_REASON] == "limit"
    table = leaderboard(uri, experiment, parent)
    assert table["run_id"].iloc[0] == done  # a truncated 0.9 never ranks above a finished 0.5
    interrupted = trial(0.7)
    trial_runs.end_stopped_trial_runs(uri, experiment, parent, results.INTERRUPTED, "Ctrl+C")
    assert client.get_run(interrupted).info.status == "KILLED"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke search on 2 local CPUs; ``device`` joins the space so some trials raise. Its
    first three trials are start points: one per fusion on the CPU (each first in its ASHA
    group, so both finish: confirm and refit need two) and one on CUDA (which fails here)."""
    work = tmp_path_factory.mktemp("smoke")
    root = write_tiny_stores(work / "stores")
    result = run_cli(
        "search",
        [
            *search_args(root, work),
            "--num-cpus",
            "2",
            "--set",
            "seed=1",
            "--set",
            "space.device=[cpu, cuda]",
            "--set",
            "start_from=[{device: cpu, fusion: fbp}, {device: cpu, fusion: concat}, {device: cuda}]",
        ],
        work,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return work, result


@pytest.mark.slow
def test_smoke_search_records_every_trial_in_mlflow(smoke):
    import yaml
    from mlflow.tracking import MlflowClient

    from trainables.config import trial_label, used_settings

    work, result = smoke
    assert "leaderboard" in result.stdout and "trial " in result.stdout
    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("avfusion.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
    assert len(parents) == 1 and len(trials) >= 4
    parent = parents[0]
    by_status = {}
    for run in trials:
        tags, params = run.data.tags, run.data.params
        by_status.setdefault(tags["avfusion.status"], []).append(run)
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["avfusion.node_id"] and tags["avfusion.git_commit"]
        assert params["visual_feature"] == "basic"
        # One id for a trial: its number in the search, in its run name, its tag, the progress
        # line and the leaderboard; Tune's own id is kept for resume.
        number = tags["avfusion.trial_id"]
        assert number.isdigit() and tags["avfusion.tune_trial_id"] != number
        assert run.info.run_name == f"{trial_label(params)} #{number}"
        assert re.search(rf"^trial #{number} +{tags['avfusion.status']} ", result.stdout, re.M)
        assert re.search(rf"^ *\d+ #{number} +{tags['avfusion.status']} ", result.stdout, re.M)
        # Checksums are tags, never params; a param is logged only where the config uses it.
        assert not [k for k in params if "checksum" in k]
        assert len(tags["avfusion.visual_checksum"]) >= 16 and tags["avfusion.audio_checksum"]
        config = yaml.safe_load(
            Path(client.download_artifacts(run.info.run_id, "config.yaml", str(work))).read_text()
        )
        assert set(params) == set(used_settings(config)) | {"visual_feature", "audio_feature"}
        assert ("fbp_out" in params) == (config["fusion"] == "fbp")
        assert ("momentum" in params) == (config["optimizer"] == "sgd")
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "config.yaml" in artifacts
        if tags["avfusion.status"] == "finished":
            assert run.info.status == "FINISHED"
            assert {"scores.npz", "confusion_val.png", "attention_val.png"} <= artifacts
            history = client.get_metric_history(run.info.run_id, "val_acc")
            assert [m.step for m in history] == [1, 2]
            scores = np.load(
                client.download_artifacts(run.info.run_id, "scores.npz", str(work)),
                allow_pickle=False,
            )
            assert scores["val"].shape == (20, 7) and scores["test"].shape[0] == 10
        elif tags["avfusion.status"] == "failed":
            assert run.info.status == "FAILED" and "cuda" in tags["avfusion.error"]
            assert "error.txt" in artifacts
        else:
            # ASHA's cut is the search working, not a crash: FINISHED in MLflow.
            assert tags["avfusion.status"] == "stopped_early" and run.info.status == "FINISHED"
            assert int(tags["avfusion.epochs_done"]) < 2
    assert by_status.get("finished") and by_status.get("failed"), {
        k: len(v) for k, v in by_status.items()
    }
    numbers = [r.data.tags["avfusion.trial_id"] for r in trials]
    assert len(set(numbers)) == len(numbers)
    # The runs table opens sorted by val_acc with the search's columns (a shared view), charts
    # put val_acc first.
    tags = experiment.tags
    assert tags["mlflow.experiment.primaryMetric.name"] == "val_acc"
    view = json.loads(tags[f"mlflow.sharedViewState.avfusion-{parent.info.run_id}"])
    assert view["orderByKey"] == "metrics.`val_acc`" and view["orderByAsc"] is False
    assert {"metrics.`val_acc`", "params.`fusion`", "params.`lr`"} <= set(view["selectedColumns"])
    shown = client.search_runs([experiment.experiment_id], view["searchFilter"])
    assert {r.info.run_id for r in trials} <= {r.info.run_id for r in shown}
    url = f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs?"
    url += f"workflowType=machine_learning&viewStateShareKey=avfusion-{parent.info.run_id}"
    assert url in result.stdout
    parent_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"search.yaml", "leaderboard.csv", "best_trial.json"} <= parent_artifacts
    assert parent.data.tags["avfusion.best_run_id"] in {
        r.info.run_id for r in by_status["finished"]
    }
    # The study in optuna.db beside MLflow's file: one Optuna trial per Tune trial; its plots on
    # the parent run, with the number of trials behind them.
    import optuna

    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{work}/mlruns/optuna.db")
    tune_ids = {t.user_attrs["tune_trial_id"] for t in study.trials}
    assert tune_ids == {r.data.tags["avfusion.tune_trial_id"] for r in trials}
    # The one id a person reads: Optuna's trial number is the run's avfusion.trial_id.
    assert {str(t.number) for t in study.trials} == {
        r.data.tags["avfusion.trial_id"] for r in trials
    }
    assert "search_plots.html" in parent_artifacts
    page = Path(client.download_artifacts(parent.info.run_id, "search_plots.html", str(work)))
    assert f"search demo: {len(study.trials)} trials" in page.read_text()
    # Without a terminal: no carriage-return redraws, no cursor moves, no third-party noise.
    log = result.stdout + result.stderr
    assert "\r" not in log and "\x1b[" not in log
    for noise in ("Token authentication is enabled", "Creating initial MLflow", "is ignored"):
        assert noise not in log, log[-3000:]


@pytest.mark.slow
def test_status_prints_the_leaderboard_and_run_refuses_an_existing_name(smoke):
    work, _ = smoke
    status = run_cli(
        "search", ["status", "demo", "--tracking-uri", f"sqlite:///{work}/mlruns/mlflow.db"], work
    )
    assert status.returncode == 0, status.stderr
    assert "finished" in status.stdout and "failed" in status.stdout
    assert re.search(
        r"^MLflow UI .*/runs\?workflowType=machine_learning&viewStateShareKey=", status.stdout, re.M
    )
    again = run_cli("search", search_args(work / "stores", work), work)
    assert again.returncode == 2 and "search resume demo" in again.stderr


@pytest.mark.slow
def test_report_tables_count_every_finished_trial_and_are_logged(smoke):
    from mlflow.tracking import MlflowClient

    work, _ = smoke
    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    result = run_cli("search", ["report", "demo", "--tracking-uri", uri, "--out", "report"], work)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (work / "report" / "report.md").read_text()
    assert "## Table 2 — fbp" in text and "## Table 2 — concat" in text
    assert "## Table 3 — per visual feature" in text and "selected on val" in text
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    trials = finished_trials(client, experiment)
    table2 = text.split("## Table 3")[0]
    counted = sum(int(n) for n in re.findall(r"\(n=(\d+)\)", table2))
    assert counted == len(trials) > 0
    assert f"| basic | {max(r.data.metrics['val_acc'] for r in trials):.3f}" in text
    parent = client.search_runs([experiment.experiment_id], "tags.`avfusion.kind` = 'search'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/table2.png"} <= logged


@pytest.mark.slow
def test_confirm_retrains_the_best_with_fresh_seeds_and_the_report_ranks_by_the_mean(smoke):
    from mlflow.tracking import MlflowClient

    work, _ = smoke
    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    args = ["confirm", "demo", "--top", "2", "--seeds", "2", "--num-cpus", "2"]
    result = run_cli("search", [*args, "--tracking-uri", uri], work, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    finished = finished_trials(client, experiment)
    confirms = client.search_runs([experiment.experiment_id], "tags.`avfusion.kind` = 'confirm'")
    assert len(confirms) == 4
    assert {r.data.tags["avfusion.status"] for r in confirms} == {"finished"}
    targets = {r.data.tags["avfusion.confirms"] for r in confirms}
    assert len(targets) == 2 and targets <= {r.info.run_id for r in finished}
    assert {r.data.params["seed"] for r in confirms} == {"1001", "1002"}
    for run in confirms:  # browsable like a trial: its plots are there too
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"scores.npz", "confusion_val.png", "attention_val.png"} <= artifacts
    assert "mean" in result.stdout and len(result.stdout.strip().splitlines()) == 4
    report = run_cli("search", ["report", "demo", "--tracking-uri", uri], work)
    assert report.returncode == 0, report.stderr[-3000:]
    section = report.stdout.split("## Confirmed")[1]
    assert section.count("| 3 |") == 2  # the search's seed and two confirm seeds, per row
    # confirm runs are not trials: the leaderboard still counts the search's own trials only
    status = run_cli("search", ["status", "demo", "--tracking-uri", uri], work)
    assert f"{len(finished)} finished" in status.stdout
    # ... and ranks the confirmed ones by their mean over seeds, with the spread
    ranking = status.stdout.split("ranked by the mean")[1]
    assert len(re.findall(r"± [0-9.]+ over 3 seeds", ranking)) == 2
    # ... but an ensemble may take them as candidates, ranked by the mean over seeds
    out = work / "ens-confirms"
    build = run_cli(
        "ensembling",
        ["build", "--experiment", "demo", "--top", "50", "--with-confirms", "--rank-by-seed-mean",
         "--rounds", "3", "--tracking-uri", uri, "--out", str(out), "--no-log"],
        work,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    info = json.loads((out / "ensemble.json").read_text())
    assert info["candidates"] == len(finished) + len(confirms)


@pytest.mark.slow
def test_refit_on_train_and_val_feeds_the_ensemble_test_scores(smoke):
    from mlflow.tracking import MlflowClient

    work, _ = smoke
    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    args = ["refit", "demo", "--top", "2", "--num-cpus", "2", "--tracking-uri", uri]
    result = run_cli("search", args, work, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    refits = client.search_runs([experiment.experiment_id], "tags.`avfusion.kind` = 'refit'")
    assert len(refits) == 2 and {r.data.tags["avfusion.status"] for r in refits} == {"finished"}
    for refit in refits:
        trial = refit.data.tags["avfusion.refits"]
        history = client.get_metric_history(trial, "val_acc")
        best_epoch = max(history, key=lambda m: (m.value, -m.step)).step
        assert refit.data.params["epochs"] == str(best_epoch)
        assert refit.data.params["seed"] == client.get_run(trial).data.params["seed"]
    out = work / "ens-refit"
    build = run_cli(
        "ensembling",
        ["build", "--experiment", "demo", "--top", "2", "--refit", "--rounds", "3",
         "--tracking-uri", uri, "--out", str(out), "--no-log"],
        work,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-3000:]
    info = json.loads((out / "ensemble.json").read_text())
    members = info["members"]
    refit_of = info["source"]["refits"]
    assert set(refit_of) == {m["run_id"] for m in members}
    assert set(refit_of.values()) <= {r.info.run_id for r in refits}
    assert "refit on train + val" in (out / "report.md").read_text()


def test_paired_bootstrap_needs_a_real_difference():
    from search.report import paired_bootstrap_supports

    rng = np.random.default_rng(0)
    hits = rng.random(400) < 0.5
    noisy = hits.copy()
    noisy[rng.choice(400, 8, replace=False)] ^= True  # 8 of 400 clips flipped: no real gap
    assert not paired_bootstrap_supports(hits, noisy)
    better = hits | (rng.random(400) < 0.3)  # about 15 points more right
    assert paired_bootstrap_supports(better, hits)


@pytest.mark.slow
def test_mlflow_ui_shows_experiment_metric_chart_and_artifacts_in_chromium(smoke, tmp_path: Path):
    """As a person would: headless Chromium, driven over plain WebDriver HTTP calls, opens the
    experiment page, a finished trial's metric chart and its artifacts."""
    from mlflow.tracking import MlflowClient

    work, _ = smoke
    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("demo")
    finished = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`avfusion.status` = 'finished'"
    )[0]
    with mlflow_in_chromium(tmp_path, "ui", f"sqlite:///{work}/mlruns/mlflow.db") as (ui, browser):
        base = f"{ui}/#/experiments/{experiment.experiment_id}"
        run = finished.info.run_id
        pages = {
            # Trial runs are nested under the search's parent run in the runs table.
            "experiment": (f"{base}/runs", ["search-demo", "matching runs"]),
            "metric chart": (
                f"{base}/runs/{run}/model-metrics",
                ["val_acc", "train_loss", "Step"],
            ),
            "artifacts": (f"{base}/runs/{run}/artifacts", ["scores.npz", "confusion_val.png"]),
        }
        for name, (url, expected) in pages.items():
            text = browser.open_until(url, expected, timeout=90)
            assert all(word in text for word in expected), f"{name} page: {text[:2000]}"
            browser.screenshot(tmp_path / f"{name.replace(' ', '_')}.png")
            if name == "metric chart":
                assert browser.has_canvas_or_svg(), "the metric chart page drew no chart"


@pytest.mark.slow
def test_url_search_run_printed_opens_the_runs_best_first_in_chromium(smoke, tmp_path: Path):
    """Issue 14: the address `search run` printed, opened in headless Chromium against a real
    `mlflow server` on the search's SQLite database, shows the Model-training runs table with the
    best trial's name (whole, not cut off) and val_acc on the first screen, no clicks."""
    import math

    from mlflow.tracking import MlflowClient

    work, result = smoke
    printed = re.search(r"(http://127\.0\.0\.1:5000)(/#/experiments/\S+)", result.stdout)
    assert printed, result.stdout[-3000:]
    uri = f"sqlite:///{work}/mlruns/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    best = finished_trials(client, experiment)[0]
    value = best.data.metrics["val_acc"]
    # How the UI writes a metric (Utils.formatMetric: three decimals, JS number text).
    shown = repr(math.floor(value * 1000 + 0.5) / 1000).removesuffix(".0")
    with mlflow_in_chromium(tmp_path, "server", uri) as (ui, browser):
        url = f"{ui}{printed[2]}"
        text = browser.open_until(url, [best.info.run_name, shown], timeout=90)
        browser.screenshot(tmp_path / "runs_by_val_acc.png")
        assert best.info.run_name in text and shown in text, text[:3000]
        assert "search-demo" not in text  # the search's own runs, not its parent row
        on_screen = browser.script(
            "const want = arguments[0]; const out = [];"
            "for (const el of document.querySelectorAll('body *')) {"
            "  if (el.children.length || !want.includes(el.textContent.trim())) continue;"
            "  const r = el.getBoundingClientRect();"
            "  const cut = [el, el.parentElement].some(e => e.scrollWidth > e.clientWidth + 1);"
            "  if (r.width && !cut && r.top >= 0 && r.bottom <= innerHeight"
            "      && r.right <= innerWidth)"
            "    out.push([el.textContent.trim(), r.top]); }"
            "return out;",
            [best.info.run_name, shown],
        )
        tops = {}
        for text_found, top in on_screen:
            tops.setdefault(text_found, []).append(top)
        assert set(tops) == {best.info.run_name, shown}, (on_screen, text[:2000])
        # ... in the same row: the best trial's name beside its val_acc
        assert any(abs(a - b) < 12 for a in tops[shown] for b in tops[best.info.run_name])


def finished_trials(client, experiment) -> list:
    """The search's finished trial runs, best val_acc first."""
    return client.search_runs(
        [experiment.experiment_id],
        "tags.`avfusion.kind` = 'trial' and tags.`avfusion.status` = 'finished'",
        order_by=["metrics.val_acc DESC"],
    )


@contextlib.contextmanager
def mlflow_in_chromium(tmp_path: Path, command: str, backend: str):
    """A real MLflow UI (``mlflow ui`` or ``mlflow server``, ``command``) on ``backend`` at a free
    loopback port, and headless Chromium driven through chromedriver; yields the UI's base address
    and the ``WebDriver``, and stops both at the end."""
    from test_search_cluster import Processes, free_port, wait_http

    require_tool("chromium")
    chromedriver = require_tool("chromedriver")
    procs = Processes(tmp_path, dict(os.environ))
    try:
        ui_port, driver_port = free_port(), free_port()
        ui, ui_log = procs.start(
            f"mlflow-{command}",
            [str(Path(sys.executable).parent / "mlflow"), command, "--host", "127.0.0.1",
             "--port", str(ui_port), "--backend-store-uri", backend, "--workers", "1"],
        )  # fmt: skip
        driver, driver_log = procs.start("chromedriver", [chromedriver, f"--port={driver_port}"])
        wait_http(f"http://127.0.0.1:{ui_port}/health", 120, ui, ui_log)
        wait_http(f"http://127.0.0.1:{driver_port}/status", 60, driver, driver_log)
        browser = WebDriver(f"http://127.0.0.1:{driver_port}", tmp_path / "profile")
        try:
            yield f"http://127.0.0.1:{ui_port}", browser
        finally:
            browser.quit()
    finally:
        procs.stop()


class WebDriver:
    """The few W3C WebDriver calls the UI test needs, over plain HTTP (no Selenium)."""

    def __init__(self, url: str, profile: Path) -> None:
        self.url = url
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--window-size=1400,1000",
        ]  # fmt: skip
        capabilities = {"alwaysMatch": {"goog:chromeOptions": {"args": args}}}
        self.session = self._call("POST", "/session", {"capabilities": capabilities})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        import json
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}{path}", method=method, data=json.dumps(body or {}).encode() if method == "POST" else None,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["value"]

    def script(self, source: str, *args):
        return self._call(
            "POST", f"/session/{self.session}/execute/sync", {"script": source, "args": list(args)}
        )

    def open_until(self, url: str, words: list[str], timeout: float) -> str:
        """Navigate, then poll the rendered text until every word shows (the UI is a JS app)."""
        self._call("POST", f"/session/{self.session}/url", {"url": url})
        deadline, text = time.time() + timeout, ""
        while time.time() < deadline:
            text = self.script("return document.body ? document.body.innerText : ''") or ""
            if all(word in text for word in words):
                return text
            time.sleep(1)
        return text

    def has_canvas_or_svg(self, timeout: float = 30) -> bool:
        """Whether a chart (Plotly's SVG or a canvas) is drawn, waiting for it a little."""
        deadline = time.time() + timeout
        while time.time() < deadline and not self._charts():
            time.sleep(1)
        return self._charts()

    def _charts(self) -> bool:
        return bool(
            self.script(
                "return document.querySelectorAll('canvas, svg.main-svg, .js-plotly-plot').length"
            )
        )

    def screenshot(self, path: Path) -> None:
        import base64

        path.write_bytes(base64.b64decode(self._call("GET", f"/session/{self.session}/screenshot")))

    def quit(self) -> None:
        self._call("DELETE", f"/session/{self.session}")


def test_grouped_asha_judges_fbp_against_fbp_only():
    from types import SimpleNamespace

    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from search.schedulers import GroupedASHA

    options = dict(time_attr="training_iteration", max_t=10, grace_period=1, reduction_factor=2)
    trials = [  # concatenation learns fast, FBP starts slow
        (SimpleNamespace(trial_id="a", config={"fusion": "concat"}), 0.60),
        (SimpleNamespace(trial_id="b", config={"fusion": "concat"}), 0.55),
        (SimpleNamespace(trial_id="c", config={"fusion": "fbp"}), 0.20),
        (SimpleNamespace(trial_id="d", config={"fusion": "fbp"}), 0.25),
    ]
    decisions = {}
    for name, scheduler in (
        ("one", ASHAScheduler(**options)),
        ("grouped", GroupedASHA("fusion", **options)),
    ):
        scheduler.set_search_properties("val_acc", "max")
        for trial, _ in trials:
            scheduler.on_trial_add(None, trial)
        decisions[name] = [
            scheduler.on_trial_result(None, trial, {"training_iteration": 1, "val_acc": value})
            for trial, value in trials
        ]
    stop, go = TrialScheduler.STOP, TrialScheduler.CONTINUE
    assert decisions["one"][2:] == [stop, stop]  # one ASHA cuts both FBP trials at the first rung
    assert decisions["grouped"] == [go, stop, go, go]


@pytest.mark.slow
def test_ensembling_builds_from_the_smoke_search_on_the_embedded_default(smoke, tmp_path: Path):
    """Issue 13: the MLflow experiment a real search left in the embedded default store (SQLite
    under ./mlruns, no URI given anywhere) handed to `python -m ensembling build`: every member of
    the ensemble is a finished trial run of that search, and the submission holds every test clip.
    The tags are read through the results contract (avcore.results) alone."""
    import zipfile

    from mlflow.tracking import MlflowClient

    from avcore import results

    work, _ = smoke
    out = tmp_path / "ensemble"
    args = ["build", "--experiment", "demo", "--rounds", "5", "--out", str(out)]
    build = run_cli("ensembling", args, work, timeout=240)  # cwd: the search's ./mlruns
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("demo")
    parents = client.search_runs(
        [experiment.experiment_id], f"tags.`{results.KIND}` = '{results.SEARCH_RUN}'"
    )
    assert len(parents) == 1
    finished = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{results.PARENT}` = '{parents[0].info.run_id}' and tags.`{results.KIND}` = "
        f"'{results.TRIAL}' and tags.`{results.STATUS}` = '{results.FINISHED}'",
    )
    members = {m["run_id"] for m in json.loads((out / "ensemble.json").read_text())["members"]}
    assert members and members <= {r.info.run_id for r in finished}
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert len(archive.namelist()) == 10  # the tiny stores' test clips, one .txt each
    ensembles = client.search_runs(
        [experiment.experiment_id], f"tags.`{results.KIND}` = '{results.ENSEMBLE}'"
    )
    assert len(ensembles) == 1  # and it is recorded beside the search it came from
    ensemble = ensembles[0]
    # ... nested under it, naming its members, its figures named by how they were measured
    assert ensemble.data.tags[results.PARENT] == parents[0].info.run_id
    info = json.loads((out / "ensemble.json").read_text())
    assert ensemble.data.tags[results.MEMBERS].split(",") == [m["run_id"] for m in info["members"]]
    names = {r.info.run_id: r.info.run_name for r in finished}
    expected = ", ".join(names[m["run_id"]] for m in info["members"])
    assert ensemble.data.tags[results.MEMBER_NAMES] == expected
    metrics = ensemble.data.metrics
    assert {"val_acc_in_sample", "val_acc_cv"} <= set(metrics) and "val_acc" not in metrics
    # so sorting the search's runs by val_acc puts the best trial first, never the ensemble
    best = client.search_runs(
        [experiment.experiment_id],
        f"tags.`{results.PARENT}` = '{parents[0].info.run_id}'",
        order_by=["metrics.val_acc DESC"],
        max_results=1,
    )[0]
    assert best.data.tags[results.KIND] != results.ENSEMBLE
