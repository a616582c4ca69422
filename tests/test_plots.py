"""Plots a researcher reads: attention with padding masked and clips labelled, titles naming the
configuration and split, one confusion-matrix style for trials and ensembles, the ensemble
trajectory with its cross-validated line, every PNG at slide resolution (160 dpi, read back)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import slide_png
from matplotlib.image import imread
from test_ensembling_cli import score_dirs
from test_trainables_train import FAST, stores  # noqa: F401 - the fixture

from ensembling import charts, report
from ensembling.cli import main as ensembling_main
from trainables import TrialConfig, train_trial
from trainables.config import trial_label
from trainables.plots import plot_attention, plot_confusion

CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]


def test_attention_sample_names_its_clips_classes_and_kinds(stores):  # noqa: F811
    config = {**FAST, "visual_attention": "relation", "audio_attention": "self"}
    result = train_trial(config, stores)
    attention, scores = result.attention, result.scores
    count = len(attention["clip_ids"])
    assert attention["clip_ids"] == list(scores["clip_ids_val"][:count])
    assert attention["labels"] == scores["labels_val"][:count].tolist()
    assert attention["predicted"] == scores["val"][:count].argmax(axis=1).tolist()
    assert attention["kinds"] == {"visual": "relation", "audio": "self"}


def test_attention_padding_is_not_a_colour_of_the_scale(tmp_path):
    # Row 0: 6 frames of uniform weight; row 1: 2 frames, then 4 of padding.
    attention = {
        "clip_ids": ["a", "b"],
        "labels": [0, 1],
        "predicted": [1, 1],
        "kinds": {"visual": "self"},
        "visual": [np.full(6, 1 / 6), np.full(2, 1 / 2)],
    }
    path = plot_attention(attention, tmp_path / "attention.png", CLASSES, title="val — x")
    image = imread(path)[..., :3]
    # Sample the two cells in the last column of the panel: uniform (row 0) and padding (row 1).
    panel = image[:, : image.shape[1] * 3 // 4]
    dark = np.nonzero(panel.sum(axis=2) < 0.5)  # the axes frame is black
    top, bottom = dark[0].min(), dark[0].max()
    left, right = dark[1].min(), dark[1].max()
    x = right - (right - left) // 12
    uniform = image[top + (bottom - top) // 4, x]
    padding = image[top + 3 * (bottom - top) // 4, x]
    assert np.abs(uniform - padding).max() > 0.15, (uniform, padding)


def test_trial_label_reads_configs_and_run_params():
    config = TrialConfig(
        visual_attention="relation", audio_attention="transformer", fusion="concat"
    )
    assert config.label("f-mean", "logmel") == "f-mean+logmel relation/transformer concat"
    params = {
        "visual_feature": "f-mean",
        "audio_feature": "logmel",
        "visual_attention": "relation",
        "audio_attention": "transformer",
        "fusion": "concat",
        "lr": "0.001",
    }
    assert trial_label(params) == "f-mean+logmel relation/transformer concat"


def test_one_confusion_style_for_trials_and_ensembles(tmp_path, drawn):
    rng = np.random.default_rng(0)
    labels = np.arange(35) % 7
    probs = rng.dirichlet(np.ones(7), 35)
    probs[np.arange(35), labels] += 0.5
    config = "f-mean+logmel relation/transformer concat"
    trial = plot_confusion(labels, probs, CLASSES, tmp_path / "trial.png", title=f"val — {config}")
    out = tmp_path / "ensemble"
    dirs = score_dirs(tmp_path)
    assert ensembling_main(["build", "--scores", *dirs, "--rounds", "5", "--out", str(out)]) == 0
    ensemble = drawn["confusion_val.png"]
    slide_png(trial, drawn["trial.png"])
    slide_png(out / "confusion_val.png", ensemble)
    styles = []
    for fig in (drawn["trial.png"], ensemble):
        matrix, bar = fig.axes
        styles.append(
            (
                tuple(fig.get_size_inches()),
                matrix.get_xlabel(),
                matrix.get_ylabel(),
                [t.get_text() for t in matrix.get_xticklabels()],
                matrix.images[0].get_cmap().name,
                bar.get_ylabel(),
                len(matrix.texts),
            )
        )
    assert styles[0] == styles[1]
    assert styles[0][5] == "share of the true class" and styles[0][6] == 49
    trial_title = drawn["trial.png"].axes[0].get_title()
    accuracy = np.mean(probs.argmax(axis=1) == labels)
    assert trial_title.startswith(f"val — {config}\naccuracy {accuracy:.3f} · UAR ")
    in_sample = report.read(out)["in_sample"]["acc"]
    title = (
        f"val (in-sample) — ensemble of trial0, trial1, trial2, trial3\naccuracy {in_sample:.3f}"
    )
    assert ensemble.axes[0].get_title().startswith(title)


def test_titles_draw_user_names_as_written(tmp_path, drawn):
    # A '$' pair would start mathtext; a malformed formula would fail the save.
    title = r"val — run $\frac{x$ #3"
    plot_confusion(np.arange(7), np.eye(7), CLASSES, tmp_path / "c.png", title=title)
    attention = {"clip_ids": ["$a$_1"], "visual": [np.full(3, 1 / 3)]}
    plot_attention(attention, tmp_path / "a.png", title=title)
    fig = drawn["c.png"]
    assert fig.axes[0].title.get_text().startswith(r"val — run \$\frac{x\$ #3")
    # A long name is wrapped, not cut off at the figure's edge.
    plot_confusion(
        np.arange(7), np.eye(7), CLASSES, tmp_path / "long.png", title="val — " + "x" * 100
    )
    lines = drawn["long.png"].axes[0].get_title().splitlines()
    assert [len(line) for line in lines[:-1]] == [72, 34] and lines[-1].startswith("accuracy")


@pytest.mark.parametrize("objective", ["acc", "uar"])
def test_trajectory_has_a_title_and_the_cross_validated_line(tmp_path, drawn, objective):
    out = tmp_path / "ensemble"
    dirs = score_dirs(tmp_path)
    argv = ["build", "--scores", *dirs, "--rounds", "6", "--objective", objective]
    assert ensembling_main([*argv, "--out", str(out)]) == 0
    info = report.read(out)
    fig = drawn["trajectory.png"]
    slide_png(out / "trajectory.png", fig)
    ax = fig.axes[0]
    name = {"acc": "accuracy", "uar": "UAR"}[objective]
    assert (
        ax.get_title()
        == f"ensemble of trial0, trial1, trial2, trial3 — val\ngreedy selection by {name}"
    )
    assert ax.get_ylabel() == f"val {name}"
    lines = {line.get_label(): line for line in ax.get_lines()}
    cross_validated = lines[f"ensemble, {info['recipe']['folds']}-fold cross-validated"]
    assert cross_validated.get_ydata()[0] == pytest.approx(info["cross_validated"][objective])
    best = lines["best single trial (selected on val)"]
    assert best.get_ydata()[0] == pytest.approx(info["best_single"][objective])
    steps = lines["after each step (in-sample)"].get_ydata()
    assert list(steps) == pytest.approx([step["objective"] for step in info["trajectory"]])


def test_attention_plot_is_slide_sized_and_names_kinds(tmp_path, drawn):
    attention = {
        "clip_ids": ["a", "b"],
        "labels": [0, 1],
        "predicted": [1, 1],
        "kinds": {"visual": "relation", "audio": "self"},
        "visual": [np.full(6, 1 / 6), np.full(2, 1 / 2)],
        "audio": [np.full(4, 1 / 4), np.full(4, 1 / 4)],
    }
    path = plot_attention(attention, tmp_path / "attention.png", CLASSES, title="val — x")
    fig = drawn["attention.png"]
    slide_png(path, fig)
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles == ["visual: relation attention (× uniform)", "audio: self attention (× uniform)"]
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows == ["a\ntrue Angry · pred Disgust", "b\ntrue Disgust · pred Disgust"]
    assert fig.texts[0].get_text() == "val — x"


def test_an_ensemble_title_names_many_score_folders_briefly():
    assert charts.source_label({"experiment": "my-search", "dirs": []}) == "my-search"
    folders = [f"/runs/search/trial{i:02d}" for i in range(12)]
    assert charts.source_label({"dirs": folders}) == "12 score folders (trial00, …)"
