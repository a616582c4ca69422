"""A 6-class CREMA-D tree end to end, as its authors distribute it: ``VideoFlash/*.flv`` clips
(a face and a voice-like tone each, real FLV files) named ``ActorID_Sentence_EMOTION_Level`` ->
``feature_store manifest crema-d`` (speaker folds: no actor in two) -> a visual store (dlib faces
and descriptors) and an audio store -> a search on fold 1 -> ``confirm --folds all`` -> ``report``
(WAR/UAR per fold, mean ± std) -> ``ensembling build`` (6 class columns)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml
from test_dataset_protocols import fold_search_args
from test_search_support import run_cli
from test_visual_pipeline import face_frames

import feature_store
from avcore.datasets import profile
from feature_store.__main__ import main as feature_store_main

pytestmark = pytest.mark.slow
CREMAD = profile("crema-d")
CODES = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
ACTORS = tuple(range(1001, 1007))  # 6 actors, 3 speaker folds of 2
RATE = 16000


def write_flv(path: Path, frames: list[np.ndarray], samples: np.ndarray) -> Path:
    """An FLV (Sorenson video, AAC audio) as CREMA-D's VideoFlash holds, 10 fps."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format="flv") as out:
        video = out.add_stream("flv", rate=10)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), "fltp", "mono")
        frame.sample_rate = RATE
        for packet in [*audio.encode(frame), *audio.encode()]:
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def crema_tree(tmp_path_factory) -> Path:
    """ROOT/VideoFlash/<actor>_DFA_<EMO>_XX.flv for 6 actors x 6 emotions; each emotion its own
    face brightness and voice pitch, each actor a little noise of its own."""
    root = tmp_path_factory.mktemp("CREMA-D")
    (root / "VideoFlash").mkdir()
    (root / "AudioWAV").mkdir()
    rng = np.random.default_rng(0)
    time = np.arange(int(0.8 * RATE)) / RATE
    for emotion, code in enumerate(CODES):
        base = face_frames(4, absent=())
        for actor in ACTORS:
            shift = 12 * emotion - 30 + int(rng.integers(-4, 5))
            frames = [np.clip(f.astype(int) + shift, 0, 255).astype(np.uint8) for f in base]
            pitch = 140 + 40 * emotion + 5 * (actor - 1001)
            voice = 0.3 * np.sin(2 * np.pi * pitch * time) * (1 + np.sin(2 * np.pi * 3 * time))
            voice += 0.01 * rng.standard_normal(len(time))
            write_flv(root / "VideoFlash" / f"{actor}_DFA_{code}_XX.flv", frames, voice)
    return root


def test_a_cremad_tree_goes_manifest_stores_search_folds_report_ensemble(crema_tree, tmp_path):
    manifest = tmp_path / "cremad.csv"
    argv = ["manifest", "crema-d", str(crema_tree), "--out", str(manifest), "--folds", "3"]
    assert feature_store_main(argv) == 0
    spec = yaml.safe_load(manifest.with_suffix(".yaml").read_text())
    assert spec["dataset"] == "crema-d" and tuple(spec["classes"]) == CREMAD.classes
    assert spec["protocol"] == {"kind": "speakers", "folds": 3, "seed": 0, "assignment": "shuffled"}
    rows = pd.read_csv(manifest, dtype={"speaker": str})
    assert len(rows) == len(CODES) * len(ACTORS)
    assert rows.groupby("speaker")["fold"].nunique().max() == 1  # no actor in two folds
    assert sorted(rows["fold"].unique()) == [1, 2, 3]

    stores = tmp_path / "stores"
    visual = tmp_path / "visual.yaml"
    visual.write_text(
        yaml.safe_dump(
            {
                "modality": "visual",
                "backbones": [{"name": "dlib-resnet"}],
                "enhancement": "basic",
                "sampling": {"max_frames": 4},
            }
        )
    )
    audio = tmp_path / "audio.yaml"
    audio.write_text(
        yaml.safe_dump(
            {
                "modality": "audio",
                "spectrogram": "speech",
                "fc_dim": 32,
                "allow_random_weights": True,
            }
        )
    )
    for recipe, out in ((visual, "visual/basic"), (audio, "audio/spectrogram")):
        argv = ["build", "--manifest", str(manifest), "--recipe", str(recipe)]
        assert feature_store_main([*argv, "--out", str(stores / out), "--workers", "2"]) == 0
    store = feature_store.open_store(stores / "visual" / "basic")
    assert store.classes == list(CREMAD.classes) and store.meta["dataset"] == "crema-d"
    assert store.meta["protocol"]["kind"] == "speakers"
    assert store.meta["num_without_face"] == 0  # dlib found the face in every clip
    assert set(store.clips["fold"]) == {1, 2, 3}

    name = "cremad-fold1"
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    search = run_cli(
        "search", fold_search_args(stores, tmp_path, name, "--set", "stores.fold=1"), tmp_path
    )
    assert search.returncode == 0, search.stderr[-3000:]
    confirm = run_cli(
        "search",
        ["confirm", name, "--top", "1", "--seeds", "1", "--folds", "all", "--tracking-uri", uri,
         "--num-cpus", "2"],
        tmp_path,
    )  # fmt: skip
    assert confirm.returncode == 0, confirm.stderr[-3000:]
    assert "fold 3 WAR / UAR" in confirm.stdout and "fold 4" not in confirm.stdout
    report = run_cli("search", ["report", name, "--tracking-uri", uri], tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "WAR mean ± std" in report.stdout

    out = tmp_path / "ensemble"
    ensemble = run_cli(
        "ensembling",
        ["build", "--experiment", name, "--tracking-uri", uri, "--class-weights", "sqrt-prior",
         "--folds", "2", "--rounds", "5", "--out", str(out)],
        tmp_path,
    )  # fmt: skip
    assert ensemble.returncode == 0, ensemble.stderr[-3000:]
    predictions = pd.read_csv(out / "predictions_test.csv", dtype={"clip_id": str})
    columns = ["clip_id", "label", "emotion", *(f"p_{c}" for c in CREMAD.classes)]
    assert list(predictions.columns) == columns
    fold_of = dict(zip(rows["clip_id"].astype(str), rows["fold"]))
    assert {fold_of[c] for c in predictions["clip_id"]} == {1}
    info = json.loads((out / "ensemble.json").read_text())
    # sqrt-prior from the train counts the runs fitted on (fold 1's training part), not AFEW's.
    counts = np.asarray(info["recipe"]["train_counts"], float)
    assert len(counts) == 6
    np.testing.assert_allclose(
        info["class_weights"]["vector"], np.sqrt(counts) / np.sqrt(counts).sum()
    )
    unrefused = run_cli(
        "ensembling",
        ["build", "--experiment", name, "--tracking-uri", uri, "--class-weights", "emotiw2019",
         "--folds", "2", "--out", str(tmp_path / "e2"), "--no-log"],
        tmp_path,
    )  # fmt: skip
    assert unrefused.returncode == 2
    assert "emotiw2019 is the paper's vector for AFEW" in unrefused.stderr
    assert len(unrefused.stderr.strip().splitlines()) == 1
