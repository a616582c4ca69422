"""Single-modality baselines inside a search (issue 18): ``space.modality`` runs visual-only and
audio-only trials beside the fused ones, start points run first, and ``search report`` puts the
baselines in Table 3 beside the planted oracle of each store alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_search_support import run_cli, search_args


@pytest.mark.slow
def test_a_search_with_single_modality_trials_reports_their_baselines(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    made = run_cli("feature_store", ["synth", "--out", "stores", "--scale", "0.1"], tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    result = run_cli(
        "search",
        [
            *search_args(tmp_path / "stores", tmp_path),
            "--num-cpus",
            "2",
            "--set",
            "space.modality=[both, visual, audio]",
            "--set",
            "budget.num_trials=5",
            "--set",
            "budget.grace_period=2",  # = epochs: no trial is stopped early
            # the first two trials: one of each baseline (trial numbers 0 and 1)
            "--set",
            "start_from=[{modality: audio}, {modality: visual, visual_attention: mean}]",
        ],  # fmt: skip
        tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "visual-only" in result.stdout and "audio-only" in result.stdout

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("demo")
    runs = {
        r.data.tags["avfusion.trial_id"]: r
        for r in client.search_runs(
            [experiment.experiment_id], "tags.`avfusion.kind` = 'trial'", max_results=100
        )
    }
    audio, visual = runs["0"].data, runs["1"].data
    assert audio.params["modality"] == "audio" and visual.params["modality"] == "visual"
    assert visual.params["visual_attention"] == "mean"
    for data, other in ((audio, "visual"), (visual, "audio")):
        # nothing of the modality it does not read: no variant, attention, fusion or FBP setting
        assert not {f"{other}_feature", f"{other}_attention", "fusion", "fbp_out"} & set(
            data.params
        ), data.params
        assert not [t for t in data.tags if t.startswith(f"avfusion.{other}")], data.tags

    report = run_cli("search", ["report", "demo", "--tracking-uri", uri, "--out", "rep"], tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Downloading artifacts" not in report.stderr
    text = (tmp_path / "rep" / "report.md").read_text()
    baselines = text.split("## Table 3 — single-modality baselines")[1]
    for modality, variant in (("visual", "basic"), ("audio", "spectrogram")):
        row = re.search(
            rf"\| {modality} alone \| {variant} \| ([0-9.]+).*\(n=(\d+)\)(.*)\|", baselines
        )
        assert row, baselines
        assert "oracle" in row.group(3)  # planted stores: the store's own oracle beside it
        n = sum(1 for r in runs.values() if r.data.params["modality"] == modality)
        assert int(row.group(2)) == n
    # Table 2 counts the audio-visual trials only
    table2 = text.split("## Table 3")[0]
    fused = sum(1 for r in runs.values() if r.data.params["modality"] == "both")
    assert sum(int(n) for n in re.findall(r"\(n=(\d+)\)", table2)) == fused
