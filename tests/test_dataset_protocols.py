"""Another dataset end to end: a MAFW-shaped planted set (11 classes, 5 official-style folds) goes
synth -> search on fold 1 -> ``confirm --folds all`` -> ``report`` (WAR/UAR per fold, mean ± std,
the published figure) -> ``ensembling build`` (11 class columns, the test fold's figures), with
every run's scores recording the data's classes and the fold's labelled test clips."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_search_support import run_cli, search_args

import feature_store
from avcore.datasets import profile
from feature_store.__main__ import main as feature_store_main

pytestmark = pytest.mark.slow
MAFW = profile("mafw").classes


def fold_search_args(root: Path, work: Path, name: str, *extra: str) -> list[str]:
    """The smoke search of the other search tests, under its own name."""
    return search_args(root, work, "--set", f"name={name}", *extra)


@pytest.fixture(scope="module")
def mafw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mafw") / "stores"
    assert (
        feature_store_main(["synth", "--dataset", "mafw", "--scale", "0.05", "--out", str(root)])
        == 0
    )
    return root


def test_an_11_class_fold_search_confirms_over_folds_reports_and_ensembles(mafw, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    name = "mafw-fold1"
    refused = run_cli("search", fold_search_args(mafw, tmp_path, name), tmp_path)
    assert refused.returncode == 2
    assert "stores.fold (1..5)" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1

    published = ["--set", "published={war: 61.2, uar: 48.5, source: 'CLAIP-Emo 2025'}"]
    result = run_cli(
        "search",
        fold_search_args(mafw, tmp_path, name, "--set", "stores.fold=1", *published),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    parent = client.search_runs(
        [experiment.experiment_id], "tags.`avfusion.kind` = 'search'", max_results=5
    )[0]
    data = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "data.json", str(tmp_path))).read_text()
    )
    assert data["dataset"] == "mafw" and tuple(data["classes"]) == MAFW
    assert data["protocol"] == {"kind": "folds", "folds": 5} and data["view"]["fold"] == 1

    store = feature_store.open_store(mafw / "visual" / "basic")
    fold_of = dict(zip(store.clips["clip_id"], store.clips["fold"]))
    label_of = dict(zip(store.clips["clip_id"], store.clips["label"]))
    trials = client.search_runs(
        [experiment.experiment_id],
        "tags.`avfusion.kind` = 'trial' and tags.`avfusion.status` = 'finished'",
    )
    assert trials
    scores_path = client.download_artifacts(trials[0].info.run_id, "scores.npz", str(tmp_path))
    with np.load(scores_path, allow_pickle=False) as scores:
        assert tuple(scores["classes"]) == MAFW and scores["val"].shape[1] == 11
        assert {fold_of[c] for c in scores["clip_ids_test"]} == {1}
        assert {fold_of[c] for c in scores["clip_ids_val"]} <= {2, 3, 4, 5}
        assert scores["labels_test"].tolist() == [label_of[c] for c in scores["clip_ids_test"]]
        assert scores["train_counts"].sum() == data["view"]["clips"]["train"]
    assert {"test_acc", "test_uar"} <= set(trials[0].data.metrics)

    confirm = run_cli(
        "search",
        ["confirm", name, "--top", "1", "--seeds", "1", "--folds", "all", "--tracking-uri", uri,
         "--num-cpus", "2"],
        tmp_path,
    )  # fmt: skip
    assert confirm.returncode == 0, confirm.stderr[-3000:]
    assert "WAR mean ± std" in confirm.stdout and "fold 5 WAR / UAR" in confirm.stdout
    fold_runs = client.search_runs(
        [experiment.experiment_id], "tags.`avfusion.kind` = 'confirm'", max_results=100
    )
    assert sorted(int(r.data.tags["avfusion.fold"]) for r in fold_runs) == [1, 2, 3, 4, 5]
    for run in fold_runs:
        fold = int(run.data.tags["avfusion.fold"])
        path = client.download_artifacts(run.info.run_id, "scores.npz", str(tmp_path / str(fold)))
        with np.load(path, allow_pickle=False) as scores:
            assert {fold_of[c] for c in scores["clip_ids_test"]} == {fold}
            assert fold not in {fold_of[c] for c in scores["clip_ids_val"]}

    report = run_cli(
        "search", ["report", name, "--tracking-uri", uri, "--out", str(tmp_path / "r")], tmp_path
    )
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "r" / "report.md").read_text()
    assert "## Over folds: test WAR / UAR" in text
    row = next(line for line in text.splitlines() if line.startswith("| best published"))
    assert "CLAIP-Emo 2025" in row and "61.20" in row and "48.50" in row

    out = tmp_path / "ensemble"
    ensemble = run_cli(
        "ensembling",
        ["build", "--experiment", name, "--tracking-uri", uri, "--class-weights", "auto",
         "--folds", "3", "--out", str(out)],
        tmp_path,
    )  # fmt: skip
    assert ensemble.returncode == 0, ensemble.stderr[-3000:]
    predictions = pd.read_csv(out / "predictions_test.csv")
    assert list(predictions.columns) == ["clip_id", "label", "emotion", *(f"p_{c}" for c in MAFW)]
    assert set(predictions["emotion"]) <= set(MAFW) and set(predictions["label"]) <= set(MAFW)
    assert {fold_of[c] for c in predictions["clip_id"]} == {1}
    info = json.loads((out / "ensemble.json").read_text())
    assert tuple(info["classes"]) == MAFW and info["test"]["clips"] == len(predictions)
    assert "emotiw2019" not in info["class_weights"]["cv_by_preset"]  # AFEW's vector: not here
    assert "test (" in (out / "report.md").read_text()
    with zipfile.ZipFile(out / "submission.zip") as archive:
        assert len(archive.namelist()) == len(predictions)
