"""Plots a researcher reads: attention with padding masked and clips labelled, titles naming the
configuration and split, the ensemble trajectory with its cross-validated line."""

from __future__ import annotations

import numpy as np
from matplotlib.image import imread
from test_trainables_train import FAST, stores  # noqa: F401 - the fixture

from trainables import TrialConfig, train_trial
from trainables.config import trial_label
from trainables.plots import plot_attention

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
