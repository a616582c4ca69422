"""``python -m ensembling`` from scores.npz directories: it runs with torch, ray and our other
packages unimportable, writes its outputs all at once or not at all, and reports bad input in one
line with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ensembling import charts, report
from ensembling.cli import main

K = 7
REPO = Path(__file__).resolve().parents[1]


def score_dirs(root: Path, n: int = 4, n_val: int = 35, n_test: int = 5) -> list[str]:
    rng = np.random.default_rng(0)
    labels = np.arange(n_val) % K
    dirs = []
    for i in range(n):
        val = rng.dirichlet(np.ones(K), n_val)
        val[np.arange(n_val), labels] += rng.uniform(0, 0.6, n_val)
        directory = root / f"trial{i}"
        directory.mkdir(parents=True)
        np.savez(
            directory / "scores.npz",
            clip_ids_val=np.array([f"v{j}" for j in range(n_val)]),
            val=(val / val.sum(axis=1, keepdims=True)).astype(np.float32),
            labels_val=labels,
            clip_ids_test=np.array([f"t{j}" for j in range(n_test)]),
            test=rng.dirichlet(np.ones(K), n_test).astype(np.float32),
        )
        dirs.append(str(directory))
    return dirs


def test_runs_without_torch_ray_or_our_other_packages(tmp_path):
    dirs = score_dirs(tmp_path)
    script = f"""
import sys
for name in ("torch", "ray", "feature_store", "trainables", "search"):
    sys.modules[name] = None  # any import of these now raises ImportError
from ensembling.cli import main
for argv in (["--help"], ["build", "--help"], ["show", "--help"]):
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code == 0, argv
assert main(["build", "--scores", *{dirs!r}, "--rounds", "5", "--no-log", "--out", {str(tmp_path / "out")!r}]) == 0
assert main(["show", {str(tmp_path / "out")!r}]) == 0
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "build an ensemble" in done.stdout and "--class-weights" in done.stdout
    assert (tmp_path / "out" / "submission.zip").is_file()


@pytest.mark.parametrize(
    "options",
    [
        ["--class-weights", "fitted"],
        ["--bags", "4", "--class-weights", "emotiw2019"],
        ["--objective", "uar", "--init-top", "2"],
    ],
)
def test_build_variants_from_score_dirs(tmp_path, capsys, options):
    out = tmp_path / "out"
    assert (
        main(
            [
                "build",
                "--scores",
                *score_dirs(tmp_path),
                "--rounds",
                "8",
                "--out",
                str(out),
                *options,
            ]
        )
        == 0
    )
    info = report.read(out)
    assert info["source"]["kind"] == "scores" and len(info["source"]["dirs"]) == 4
    assert info["mlflow_run_id"] is None
    if "fitted" in options:
        assert len(info["class_weights"]["vector"]) == K
        assert "same without class weights" in capsys.readouterr().out
    if "--bags" in options:
        assert len(info["bag_trajectory"]) == 4 and info["trajectory"] == []
    if "--init-top" in options:
        assert info["kept_steps"] >= 2 and info["recipe"]["objective"] == "uar"


def test_output_is_all_or_nothing(tmp_path, monkeypatch, capsys):
    dirs = score_dirs(tmp_path)
    out = tmp_path / "out"
    assert main(["build", "--scores", *dirs, "--rounds", "3", "--out", str(out)]) == 0
    first = (out / "ensemble.json").read_text()

    # An existing directory is refused, untouched.
    assert main(["build", "--scores", *dirs, "--rounds", "3", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert (out / "ensemble.json").read_text() == first

    # A failure while writing leaves the old directory as it was and no temporary sibling.
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(charts, "plot_trajectory", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["build", "--scores", *dirs, "--rounds", "4", "--out", str(out), "--force"])
    assert (out / "ensemble.json").read_text() == first
    with pytest.raises(RuntimeError):
        main(["build", "--scores", *dirs, "--out", str(tmp_path / "fresh")])
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", *(Path(d).name for d in dirs)]

    monkeypatch.undo()
    assert main(["build", "--scores", *dirs, "--rounds", "4", "--out", str(out), "--force"]) == 0
    assert json.loads((out / "ensemble.json").read_text())["recipe"]["rounds"] == 4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build"], "give --experiment"),
        (["build", "--scores", "A", "--experiment", "e"], "give --experiment"),
        (
            ["build", "--scores", "A", "--folds", "1"],
            "folds: Input should be greater than or equal to 2",
        ),
        (
            ["build", "--scores", "A", "--class-weights", "nope"],
            "unknown class-weight preset 'nope'; known: none",
        ),
        (["build", "--scores", "A", "--train-counts", "1,x"], "--train-counts '1,x'"),
        (["build", "--scores", "A", "--rounds", "0"], "nothing to select"),
        (["build", "--scores", "nowhere"], "nowhere: no scores.npz at nowhere/scores.npz"),
        (["build", "--scores", "A", "--folds", "50"], "35 validation clips cannot make 50 folds"),
        (["show", "nowhere"], "nowhere: no ensemble.json"),
    ],
)
def test_user_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    score_dirs(tmp_path, n=1)
    os.rename(tmp_path / "trial0", tmp_path / "A")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_debug_shows_the_traceback(capsys):
    assert main(["--debug", "show", "nowhere"]) == 2
    assert "Traceback" in capsys.readouterr().err
