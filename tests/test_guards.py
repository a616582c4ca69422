"""Issue 12, outputs and inputs: names never become paths, ``--force`` replaces only what we wrote,
``--out`` is checked before the work, and bad files give one line naming file, line and column."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import feature_store
from avcore import guards
from ensembling.cli import main as ensembling_main
from feature_store.__main__ import main as feature_store_main
from feature_store.manifest import ManifestError, read_manifest
from search.__main__ import main as search_main
from trainables.__main__ import main as trainables_main

# Not writable even for root: /proc takes no new entries.
READ_ONLY = Path("/proc/avfusion-out")
BAD_IDS = ["../../../../tmp/x", "/abs/path", "a/b", "a\\b", ".hidden", "..", "x\x00y", "tab\there"]


@pytest.mark.parametrize("name", BAD_IDS + [""])
def test_unsafe_names_are_refused_and_folder_names_are_safe(name):
    with pytest.raises(guards.GuardError, match="names must not be paths"):
        guards.check_name(name, "clip id")
    folder = guards.folder_name(name)
    assert "/" not in folder and "\\" not in folder and ".." not in folder
    assert not folder.startswith(".") and guards.unsafe_reason(folder) is None
    assert guards.check_name("Happy clip-01 (take 2)", "clip id") == "Happy clip-01 (take 2)"


@pytest.mark.parametrize("clip_id", ["../../x", "/abs/x", ".env"])
def test_manifest_refuses_path_like_clip_ids_naming_the_line(tmp_path, clip_id):
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"clip_id,path,split,label\nok,a.mp4,train,Happy\n{clip_id},b.mp4,val,Sad\n"
    )
    with pytest.raises(ManifestError, match=rf"m.csv:3: clip id '{clip_id}' .*not paths"):
        read_manifest(manifest)


def test_store_writer_refuses_path_like_clip_ids(make_store):
    with pytest.raises(feature_store.StoreError, match="clip ids are names, not paths"):
        make_store(clip_ids=["a", "../b", "c"])


def score_dirs(root: Path, test_ids: list[str]) -> list[str]:
    rng = np.random.default_rng(0)
    dirs = []
    for i in range(3):
        directory = root / f"trial{i}"
        directory.mkdir(parents=True)
        np.savez(
            directory / "scores.npz",
            clip_ids_val=np.array([f"v{j}" for j in range(14)]),
            val=rng.dirichlet(np.ones(7), 14).astype(np.float32),
            labels_val=np.arange(14) % 7,
            clip_ids_test=np.array(test_ids),
            test=rng.dirichlet(np.ones(7), len(test_ids)).astype(np.float32),
        )
        dirs.append(str(directory))
    return dirs


def build(dirs: list[str], out: Path, *extra: str) -> int:
    return ensembling_main(["build", "--scores", *dirs, "--rounds", "3", "--out", str(out), *extra])


def test_submission_writer_refuses_an_entry_that_escapes(tmp_path, capsys):
    out = tmp_path / "ens"
    assert build(score_dirs(tmp_path, ["ok", "../../../../tmp/zipslip"]), out) == 2
    err = capsys.readouterr().err.strip()
    assert "test clip id '../../../../tmp/zipslip'" in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".ens.tmp-*"))


def test_submission_entries_are_plain_names(tmp_path):
    out = tmp_path / "ens"
    assert build(score_dirs(tmp_path, ["t0", "t1"]), out) == 0
    assert sorted(zipfile.ZipFile(out / "submission.zip").namelist()) == ["t0.txt", "t1.txt"]


def test_ensembling_force_replaces_only_an_ensemble(tmp_path, capsys):
    dirs = score_dirs(tmp_path, ["t0"])
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "chapter1.tex").write_text("years of work")
    assert build(dirs, user, "--force") == 2
    assert "no ensemble.json, so avfusion did not write it" in capsys.readouterr().err
    assert (user / "chapter1.tex").read_text() == "years of work"
    ours = tmp_path / "ens"
    assert build(dirs, ours) == 0
    assert build(dirs, ours, "--force") == 0 and (ours / "ensemble.json").is_file()


def test_stale_staging_folders_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    stale, live = tmp_path / f".ens.tmp-{dead}", tmp_path / f".other.tmp-{os.getpid()}"
    stale.mkdir()
    live.mkdir()
    (stale / "ensemble.json").write_text("{}")
    assert build(score_dirs(tmp_path / "scores", ["t0"]), tmp_path / "ens") == 0
    assert not stale.exists() and live.exists()  # a live PID's staging is another run's


def test_ensembling_out_in_a_read_only_place_fails_before_work(tmp_path, capsys):
    assert build(score_dirs(tmp_path, ["t0"]), READ_ONLY / "ens") == 2
    err = capsys.readouterr().err
    assert "cannot write in /proc" in err and len(err.strip().splitlines()) == 1


def test_show_of_a_cut_down_ensemble_json_is_one_line(tmp_path, capsys):
    (tmp_path / "ensemble.json").write_text('{"format": "avfusion-ensemble", "version": 1}')
    assert ensembling_main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "incomplete, lacks key" in err and len(err.splitlines()) == 1


def test_store_force_replaces_only_a_store(make_store, tmp_path):
    store = make_store("s")
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(feature_store.StoreExistsError, match="no store.json"):
        feature_store.write_store(
            user, store.clips, store.array, name="x", modality="visual", force=True
        )
    assert (user / "notes.txt").read_text() == "mine"
    again = feature_store.write_store(
        store.path,
        store.clips[["clip_id", "split", "label", "length"]],
        np.asarray(store.array) + 1,
        name="s",
        modality="visual",
        force=True,
    )
    assert np.allclose(again.array, np.asarray(store.array) + 1)


def test_feature_store_build_force_refuses_a_user_folder_before_work(tmp_path, capsys):
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip_id,path,split,label\na,/nonexistent.mp4,train,Happy\n")
    recipe = Path(__file__).resolve().parents[1] / "conf/store/dlib-resnet-basic.yaml"
    argv = ["build", "--manifest", str(manifest), "--recipe", str(recipe), "--out", str(user)]
    assert feature_store_main([*argv, "--force"]) == 2
    assert "avfusion did not write it" in capsys.readouterr().err
    assert (user / "notes.txt").read_text() == "mine"


def write_pair(root: Path, nan: bool = False) -> list[str]:
    rng = np.random.default_rng(0)
    clips = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(16)],
            "split": ["train"] * 10 + ["val"] * 4 + ["test"] * 2,
            "label": [i % 7 for i in range(14)] + [-1, -1],
            "length": [2] * 16,
        }
    )
    for modality, dim in (("visual", 6), ("audio", 5)):
        features = rng.standard_normal((32, dim)).astype(np.float32)
        if nan and modality == "audio":
            features[23, 1] = np.inf  # clip c11's second vector
        feature_store.write_store(
            root / modality, clips, features, name=modality, modality=modality
        )
    return [
        "fit",
        "--visual",
        str(root / "visual"),
        "--audio",
        str(root / "audio"),
        "--set",
        "epochs=1",
        "--set",
        "device=cpu",
    ]


def test_fit_out_is_checked_before_training_and_needs_force(tmp_path, capsys):
    fit = write_pair(tmp_path)
    out = tmp_path / "run"
    assert trainables_main([*fit, "--out", str(out)]) == 0
    before = (out / "metrics.json").read_text()
    capsys.readouterr()
    assert trainables_main([*fit, "--out", str(out), "--set", "lr=0.5"]) == 2
    captured = capsys.readouterr()
    assert "exists; pass --force" in captured.err and "epoch" not in captured.out
    assert (out / "metrics.json").read_text() == before
    assert trainables_main([*fit, "--out", str(out), "--set", "lr=0.5", "--force"]) == 0
    assert (out / "metrics.json").read_text() != before
    capsys.readouterr()
    assert trainables_main([*fit, "--out", str(READ_ONLY)]) == 2
    captured = capsys.readouterr()
    assert "cannot write in /proc" in captured.err and "final:" not in captured.out


def test_nan_or_inf_features_are_refused_before_training(tmp_path, capsys):
    assert trainables_main(write_pair(tmp_path, nan=True)) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the epoch bar's clearing
    assert err.startswith("trainables fit: error: ") and "clip 'c11' has NaN or Inf features" in err


def test_a_clip_table_edited_after_writing_is_refused_on_open(tmp_path):
    write_pair(tmp_path)
    store = feature_store.open_store(tmp_path / "visual")
    assert not store.deep_validated
    store.validate_deep()
    assert store.deep_validated and store.load().deep_validated
    path = tmp_path / "visual" / "clips.parquet"
    table = pd.read_parquet(path)
    table.loc[0, "label"] = 3
    table.to_parquet(path, index=False)
    with pytest.raises(feature_store.CorruptStoreError, match="clips.parquet: sha256 .* differs"):
        feature_store.open_store(tmp_path / "visual")


BAD_YAML = {
    "syntax": ("name: a\nbudget: {num_trials: [1,\n", r":3:1: not valid YAML: expected"),
    "python tag": (
        "name: !!python/object:os.system {}\n",
        r":1:7: not valid YAML: .*python/object",
    ),
    "not UTF-8": (b"name: \xff\xfe\n", r"not a UTF-8 text .* \(byte 0xff at offset 6\)"),
}


@pytest.mark.parametrize("case", list(BAD_YAML) + ["folder"])
def test_bad_config_files_are_one_line_naming_file_line_column(tmp_path, capsys, case):
    path = tmp_path / "bad.yaml"
    if case == "folder":
        path.mkdir()
        expected = "is a folder, expected a"
    else:
        content, expected = BAD_YAML[case]
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    pair = write_pair(tmp_path / "stores")
    manifest = tmp_path / "m.csv"
    manifest.write_text("clip_id,path,split,label\na,/n.mp4,train,Happy\n")
    for run in (
        lambda: search_main(["run", str(path)]),
        lambda: trainables_main([*pair, "--config", str(path)]),
        lambda: feature_store_main(
            [
                "build",
                "--manifest",
                str(manifest),
                "--recipe",
                str(path),
                "--out",
                str(tmp_path / "s"),
            ]
        ),
    ):
        assert run() == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert str(path) in err
        assert re.search(expected, err), err
