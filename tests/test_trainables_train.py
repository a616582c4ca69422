"""The trial function, trial configs and the fit CLI on tiny planted stores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import feature_store
from trainables import (
    ATTENTIONS,
    FUSIONS,
    ConfigError,
    TrialConfig,
    TrialDataError,
    load_trial_config,
    train_trial,
)
from trainables.__main__ import main
from trainables.tensors import sample_segments

ROOT = Path(__file__).resolve().parent.parent
TRIAL_CONFIGS = sorted((ROOT / "conf" / "trial").glob("*.yaml"))
FAST = {"epochs": 2, "batch_size": 8, "fbp_out": 8, "transformer_hidden": 4, "device": "cpu"}
REPORT_KEYS = {"epoch", "train_loss", "val_loss", "val_acc", "val_uar"}


def planted_store(
    path: Path, modality: str, *, dim: int, per_class: int = 3, seed: int = 0, empty_every: int = 0
) -> feature_store.Store:
    """A tiny store whose class is written into every frame; val repeats train exactly, so
    val accuracy 1.0 means the model fits its training set."""
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((7, dim)).astype(np.float32) * 3
    labels = np.repeat(np.arange(7), per_class)
    lengths = rng.integers(1, 6, size=len(labels))
    if empty_every:
        lengths[::empty_every] = 0
    frames = [
        prototypes[label] + 0.3 * rng.standard_normal((length, dim)).astype(np.float32)
        for label, length in zip(labels, lengths)
    ]
    test_frames = [rng.standard_normal((2, dim)).astype(np.float32) for _ in range(3)]
    n = len(labels)
    clips = pd.DataFrame(
        {
            "clip_id": [f"tr{i:02d}" for i in range(n)]
            + [f"va{i:02d}" for i in range(n)]
            + ["te0", "te1", "te2"],
            "split": ["train"] * n + ["val"] * n + ["test"] * 3,
            "label": list(labels) * 2 + [-1] * 3,
            "length": list(lengths) * 2 + [2, 2, 2],
        }
    )
    features = np.concatenate(frames + frames + test_frames)
    return feature_store.write_store(path, clips, features, name=path.name, modality=modality)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run 10x slower with two OpenMP threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def stores(tmp_path):
    visual = planted_store(tmp_path / "visual", "visual", dim=6, seed=1, empty_every=5)
    audio = planted_store(tmp_path / "audio", "audio", dim=4, seed=2)
    return feature_store.pair(visual, audio)


@pytest.mark.parametrize("fusion", list(FUSIONS))
@pytest.mark.parametrize("attention", list(ATTENTIONS))
def test_every_registry_entry_trains(stores, attention, fusion):
    reports = []
    config = {**FAST, "visual_attention": attention, "audio_attention": attention, "fusion": fusion}
    result = train_trial(config, stores, report=reports.append)
    assert [r["epoch"] for r in reports] == [1, 2]
    assert all(set(r) == REPORT_KEYS for r in reports)
    assert result.history == reports
    assert all(np.isfinite(r[key]) for r in reports for key in REPORT_KEYS)
    scores = result.scores
    assert scores["val"].shape == (21, 7) and scores["val"].dtype == np.float32
    assert scores["test"].shape == (3, 7)
    np.testing.assert_allclose(scores["val"].sum(axis=1), 1.0, rtol=1e-5)
    assert list(scores["clip_ids_val"]) == stores.clip_ids("val")
    np.testing.assert_array_equal(scores["labels_val"], stores.labels("val"))
    assert set(result.metrics) == REPORT_KEYS - {"epoch"} | {"epochs"}
    attention_weights = result.attention
    assert len(attention_weights["clip_ids"]) == len(attention_weights["visual"]) == 4
    lengths = stores.visual.lengths(attention_weights["clip_ids"])
    assert [len(w) for w in attention_weights["visual"]] == list(lengths)


@pytest.mark.parametrize(
    "overrides",
    [
        {"frame_sampling": "all"},
        {"frame_sampling": "segments", "frame_segments": 3, "optimizer": "sgd", "lr": 0.1},
    ],
)
def test_fits_a_tiny_store_to_full_train_accuracy(stores, overrides):
    config = {**FAST, "epochs": 40, "lr": 0.02, "dropout": 0.0, "fbp_dropout": 0.0, **overrides}
    result = train_trial(config, stores)
    assert result.metrics["val_acc"] == 1.0  # val repeats train


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_single_modality_models(stores, modality):
    store = getattr(stores, modality)
    result = train_trial({**FAST, "epochs": 40, "lr": 0.02, "dropout": 0.0}, store)
    real = store.lengths(store.clip_ids("val")) > 0  # a clip with no frames cannot be told apart
    predicted = result.scores["val"].argmax(axis=1)
    assert (predicted == result.scores["labels_val"])[real].all()
    other = "audio" if modality == "visual" else "visual"
    assert result.attention[other] == [] and len(result.attention[modality]) == 4


@pytest.mark.parametrize("modality", ["visual", "audio"])
def test_a_pair_read_by_one_modality_trains_as_that_store_alone(stores, modality):
    """``modality`` (a search's single-modality baselines): a pair trained with
    ``modality=audio`` is exactly the audio store trained alone, and a store of the other
    modality is refused with a line naming it."""
    from trainables.errors import TrialDataError

    config = {**FAST, "modality": modality}
    paired, alone = train_trial(config, stores), train_trial(config, getattr(stores, modality))
    assert paired.history == alone.history
    assert np.array_equal(paired.scores["val"], alone.scores["val"])
    assert TrialConfig(**config).label("basic", "logmel") == (
        f"{'basic' if modality == 'visual' else 'logmel'} transformer {modality}-only"
    )
    other = stores.audio if modality == "visual" else stores.visual
    with pytest.raises(TrialDataError, match=f"config reads modality={modality}"):
        train_trial(config, other)


def test_same_seed_same_figures_and_other_seed_differs(stores):
    config = {
        **FAST,
        "frame_sampling": "segments",
        "frame_segments": 2,
        "balanced_loss": True,
        "label_smoothing": 0.1,
        "lr_schedule": "step",
    }
    first, second = train_trial(config, stores), train_trial(config, stores)
    assert first.history == second.history
    for key in ("val", "test"):
        np.testing.assert_array_equal(first.scores[key], second.scores[key])
    other = train_trial({**config, "seed": 1}, stores)
    assert other.history != first.history


def test_empty_clips_train_without_nan(tmp_path):
    visual = planted_store(tmp_path / "v", "visual", dim=3, empty_every=2)
    result = train_trial({**FAST, "frame_sampling": "segments"}, visual)
    assert np.isfinite(result.scores["val"]).all()
    assert all(np.isfinite(list(h.values())).all() for h in result.history)


def test_segment_sampling_takes_one_frame_per_segment():
    lengths = torch.tensor([8, 3, 0, 1])
    x = torch.arange(4 * 8, dtype=torch.float32).view(4, 8, 1)  # frame t of clip b holds 8b + t
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        frames, mask = sample_segments(x, lengths, 4, generator)
        picked = frames[..., 0] - 8 * torch.arange(4)[:, None]  # frame indices, (4, 4)
        assert mask.tolist() == [[True] * 4, [True] * 4, [False] * 4, [True] * 4]
        for k in range(4):
            assert 2 * k <= picked[0, k] < 2 * k + 2  # clip of 8 frames: segments of 2
        assert picked[1].tolist() == sorted(picked[1].tolist()) and picked[1].max() < 3
        assert (picked[3] == 0).all()


def test_a_set_without_test_clips_trains_and_scores_no_test(make_store):
    """A user's manifest may list no test clip at all: nothing to predict, nothing refused."""
    labels, splits = [0, 1, 0, 1, 0, 1], ["train"] * 4 + ["val"] * 2
    pair = feature_store.pair(
        *(
            make_store(modality, modality, lengths=[2] * 6, splits=splits, labels=labels, seed=k)
            for k, modality in enumerate(("visual", "audio"))
        )
    )
    result = train_trial({**FAST, "epochs": 1}, pair)
    assert result.scores["test"].shape == (0, 7) and result.scores["clip_ids_test"].size == 0
    assert "test_acc" not in result.metrics


def test_scores_and_config_files(stores, tmp_path):
    result = train_trial({**FAST, "epochs": 1}, stores)
    path = result.save_scores(tmp_path / "out" / "scores.npz")
    with np.load(path, allow_pickle=False) as scores:
        assert set(scores.files) == {
            *("clip_ids_val", "val", "labels_val", "clip_ids_test", "test"),
            *("classes", "labels_test", "train_counts"),
        }
        assert scores["clip_ids_val"].dtype.kind == "U"
        assert scores["labels_val"].dtype == np.int64
    config_path = result.save_config(tmp_path / "out" / "config.yaml")
    assert load_trial_config(config_path) == result.config


def test_validating_a_config_and_help_import_no_torch():
    # Search validates trial configs on the driver; a YAML typo must not wait for torch.
    script = f"""
import runpy, sys
from trainables.config import load_trial_config
from trainables.errors import ConfigError
load_trial_config({str(ROOT / "conf" / "trial" / "paper-best.yaml")!r})
try:
    load_trial_config(None, ["fusion=sum"])
except ConfigError as exc:
    print(exc)
sys.argv = ["trainables", "--help"]
try:
    runpy.run_module("trainables", run_name="__main__")
except SystemExit:
    pass
print("heavy:", sorted({{"torch", "pandas", "matplotlib"}} & set(sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "unknown fusion 'sum'; known: fbp, concat" in done.stdout
    assert "heavy: []" in done.stdout


@pytest.mark.parametrize("path", TRIAL_CONFIGS, ids=[p.name for p in TRIAL_CONFIGS])
def test_every_trial_yaml_loads(path):
    assert isinstance(load_trial_config(path), TrialConfig)


def test_paper_best_is_transformer_by_transformer_with_fbp():
    config = load_trial_config(ROOT / "conf" / "trial" / "paper-best.yaml")
    assert (config.visual_attention, config.audio_attention, config.fusion) == (
        "transformer",
        "transformer",
        "fbp",
    )


def test_config_errors_name_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: 0.1\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'learning_rate'"):
        load_trial_config(path)
    path.write_text("dropout: 1.5\n")
    with pytest.raises(
        ConfigError, match=rf"{path}: dropout: Input should be less than 1 \(got 1.5\)"
    ):
        load_trial_config(path)
    with pytest.raises(
        ConfigError, match=r"--set visual_attention=lstm: visual_attention: unknown attention"
    ):
        load_trial_config(None, ["visual_attention=lstm"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_trial_config(None, ["lr"])
    path.write_text("class_balanced: true\n")  # the loss-weight switch's old name
    with pytest.raises(
        ConfigError, match=rf"{path}: key 'class_balanced' is now called 'balanced_loss'"
    ):
        load_trial_config(path)
    with pytest.raises(ConfigError, match="no such trial config"):
        load_trial_config(tmp_path / "missing.yaml")
    assert load_trial_config(None, ["lr=3e-4", "fbp_sqrt=no"]).model_dump()["fbp_sqrt"] is False


def test_mapping_configs_are_validated(stores):
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        train_trial({"epoch": 3}, stores)
    config = load_trial_config(None, ["epochs=1"])
    assert config == load_trial_config(None, []).model_copy(update={"epochs": 1})
    assert (
        train_trial({**FAST, "epochs": np.int64(1), "lr": np.float64(0.01)}, stores).metrics[
            "epochs"
        ]
        == 1
    )


def test_a_store_without_val_clips_is_a_clear_error(make_store):
    store = make_store(lengths=(2, 2), splits=("train", "test"), labels=(0, -1))
    with pytest.raises(TrialDataError, match="no val clips"):
        train_trial(FAST, store)


def test_fit_cli_writes_scores_config_and_plots(stores, tmp_path, capsys):
    out = tmp_path / "fit"
    args = ["fit", "--visual", str(stores.visual.path), "--audio", str(stores.audio.path)]
    sets = [f"--set={key}={value}" for key, value in FAST.items()]
    assert main([*args, *sets, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "val_acc" in printed and "final:" in printed
    for name in (
        "scores.npz",
        "config.yaml",
        "metrics.json",
        "confusion_val.png",
        "attention_val.png",
    ):
        assert (out / name).stat().st_size > 0
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 2
    assert main(["fit", "--audio", str(stores.audio.path), *sets]) == 0


def test_fit_cli_user_errors_exit_2(stores, capsys):
    assert main(["fit", "--visual", str(stores.visual.path), "--set", "lr=-1"]) == 2
    assert "--set lr=-1: lr: Input should be greater than 0 (got -1)" in capsys.readouterr().err
    assert main(["fit"]) == 2
    assert main(["fit", "--visual", str(stores.audio.path)]) == 2
    assert "needs a visual store" in capsys.readouterr().err


CONCAT, FBP = {"fusion": "concat"}, {"fusion": "fbp"}
# Per conditional setting: a config where it has no effect, one where it has, and two values.
CONDITIONAL = {
    "fbp_factor": (CONCAT, FBP, 2, 3),
    "fbp_out": (CONCAT, FBP, 8, 12),
    "fbp_dropout": (CONCAT, FBP, 0.0, 0.5),
    "fbp_sqrt": (CONCAT, FBP, True, False),
    "visual_attention": ({"modality": "audio"}, {"modality": "both"}, "mean", "self"),
    "audio_attention": ({"modality": "visual"}, {"modality": "both"}, "mean", "self"),
    "fusion": ({"modality": "audio"}, {"modality": "both"}, "concat", "fbp"),
    "transformer_hidden": (
        # a transformer on the modality the model does not read leaves the hidden size unused
        {"modality": "audio", "visual_attention": "transformer", "audio_attention": "self"},
        {"visual_attention": "transformer", "audio_attention": "mean"},
        4,
        6,
    ),
    "momentum": ({"optimizer": "adamw"}, {"optimizer": "sgd", "lr": 0.05}, 0.0, 0.9),
    "frame_segments": ({"frame_sampling": "all"}, {"frame_sampling": "segments"}, 1, 3),
}


@pytest.mark.parametrize("key", sorted(CONDITIONAL))
def test_a_setting_is_used_exactly_where_it_changes_training(stores, key):
    """``TrialConfig.used()`` (what a trial run logs as params) drops a setting exactly where
    training does not read it: there, two values train identically; elsewhere they differ."""
    from trainables.config import CONDITIONS

    assert set(CONDITIONAL) == set(CONDITIONS)
    off, on, first, second = CONDITIONAL[key]
    for choice, used in ((off, False), (on, True)):
        runs = [
            train_trial(TrialConfig(**{**FAST, "epochs": 1, **choice, key: value}), stores)
            for value in (first, second)
        ]
        assert (key in runs[0].config.used()) is used
        same = runs[0].history == runs[1].history and np.array_equal(
            runs[0].scores["val"], runs[1].scores["val"]
        )
        assert same is not used, (key, choice)
