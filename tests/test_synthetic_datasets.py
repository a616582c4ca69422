"""The planted benchmark in every registered dataset's shape (``avcore.datasets``): MAFW's 11
classes in 5 stratified folds with per-fold oracle figures, the speaker folds of CREMA-D and
RAVDESS, MELD's labelled test split, and the ``synth`` and ``inspect`` commands on them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import feature_store
from avcore.datasets import PROFILES, profile
from feature_store import synthetic as S
from feature_store.__main__ import main as cli_main
from feature_store.store.protocol import fold_view
from feature_store.synthetic.shape import MIN_PER_FOLD

SMALL = dict(rank=4, block_dim=16, audio_dim=8, max_frames=6, audio_grid=(1, 2), max_segments=2)


@pytest.fixture(scope="module")
def mafw(tmp_path_factory):
    root = tmp_path_factory.mktemp("mafw")
    S.generate(root, S.Generator(dataset="mafw", scale=0.02, **SMALL), progress=False)
    return root


def _figures(table):
    yield from table["alone"].items()
    yield from table["pairs"].items()


def test_mafw_folds_are_stratified_with_per_fold_oracle(mafw):
    mafw_profile = profile("mafw")
    k = len(mafw_profile.classes)
    assert k == 11
    visual = feature_store.open_store(mafw / "visual" / "basic")
    audio = feature_store.open_store(mafw / "audio" / "logmel")
    feature_store.pair(visual, audio)
    assert tuple(visual.classes) == mafw_profile.classes
    assert visual.meta["dataset"] == "mafw"
    assert visual.meta["protocol"] == {"kind": "folds", "folds": 5}
    clips = visual.clips
    assert set(clips["split"]) == {"train"} and (clips["label"] >= 0).all()
    by_fold = pd.crosstab(clips["fold"], clips["label"])
    assert list(by_fold.index) == [1, 2, 3, 4, 5] and by_fold.shape[1] == k
    assert (by_fold.to_numpy() >= MIN_PER_FOLD).all()  # every class in every fold
    # Stratified: each fold holds a fifth of every class (to a clip).
    assert (by_fold.max() - by_fold.min()).max() <= 1
    assert "speaker" not in clips.columns
    table = S.load_planted(mafw)
    for name, figures in _figures(table):
        assert sorted(figures["folds"]) == ["1", "2", "3", "4", "5"], name
        for fold in figures["folds"].values():
            assert 1 / k < fold["test"] <= 1 and 1 / k < fold["rest"] <= 1, name
        tests = [fold["test"] for fold in figures["folds"].values()]
        assert figures["mean"]["test"] == pytest.approx(np.mean(tests))
    paired = visual.meta["planted"]["oracle"]["paired"]["logmel"]
    assert paired == table["pairs"]["visual/basic+audio/logmel"]
    view = fold_view(visual, 2)  # the store is a fold store the search can split
    assert set(view.clip_ids("test")) == set(clips.loc[clips["fold"] == 2, "clip_id"])
    assert S.hidden_test_labels(mafw).empty


def test_mafw_oracle_matches_the_posterior_per_fold(mafw):
    generator = S.generator_from_dict(S.load_planted(mafw)["generator"])
    latents = S.draw_latents(generator)
    observations = {view.name: S.observe(generator, latents, view) for view in generator.views}
    ll = S.clip_log_likelihoods(generator, latents, "visual/f-mean", observations)
    assert ll.shape == (len(latents.labels), 11, 2)
    correct = S.posterior(generator, ll).argmax(1) == latents.labels
    recorded = S.load_planted(mafw)["alone"]["visual/f-mean"]["folds"]["3"]
    assert recorded["test"] == pytest.approx(correct[latents.folds == 3].mean())
    assert recorded["rest"] == pytest.approx(correct[latents.folds != 3].mean())


@pytest.mark.parametrize("name", sorted(set(PROFILES) - {"afew"}))
def test_every_dataset_is_planted_in_its_shape(tmp_path, name):
    dataset = profile(name)
    S.generate(tmp_path, S.Generator(dataset=name, scale=0.005, **SMALL), progress=False)
    store = feature_store.open_store(tmp_path / "visual" / "basic")
    assert tuple(store.classes) == dataset.classes and store.meta["dataset"] == name
    assert store.meta["protocol"]["kind"] == dataset.protocol.kind
    assert store.meta["protocol"]["folds"] == dataset.protocol.folds
    clips = store.clips
    if dataset.protocol.has_folds:
        by_fold = pd.crosstab(clips["fold"], clips["label"])
        assert by_fold.shape == (dataset.protocol.folds, len(dataset.classes))
        assert (by_fold.to_numpy() >= MIN_PER_FOLD).all()
    else:
        assert set(clips["split"]) == {"train", "val", "test"}
    alone = S.load_planted(tmp_path)["alone"]["visual/basic"]
    assert len(alone.get("folds", {})) == dataset.protocol.folds


@pytest.mark.parametrize(
    ("name", "scale", "speakers"), [("crema-d", 0.05, 91), ("ravdess", 0.1, 24)]
)
def test_speakers_sit_in_one_fold(tmp_path, name, scale, speakers):
    generator = S.Generator(dataset=name, scale=scale, seed=5, **SMALL)
    S.generate(tmp_path, generator, progress=False)
    store = feature_store.open_store(tmp_path / "audio" / "spectrogram")
    assert tuple(store.classes) == profile(name).classes
    folds = profile(name).protocol.folds
    assert store.meta["protocol"] == {"kind": "speakers", "folds": folds, "seed": 5}
    clips = store.clips
    assert clips.groupby("speaker")["fold"].nunique().max() == 1
    assert clips["speaker"].nunique() == speakers
    assert (pd.crosstab(clips["fold"], clips["label"]).to_numpy() > 0).all()
    other = feature_store.open_store(tmp_path / "visual" / "f-mean").clips
    assert other[["clip_id", "fold", "speaker"]].equals(clips[["clip_id", "fold", "speaker"]])


def test_meld_is_fixed_with_a_labelled_test_split(tmp_path):
    generator = S.Generator(dataset="meld", scale=0.01, **SMALL)
    S.generate(tmp_path, generator, progress=False)
    store = feature_store.open_store(tmp_path / "visual" / "f-meanstd")
    assert store.meta["protocol"] == {"kind": "fixed", "folds": 0}
    assert tuple(store.classes) == profile("meld").classes
    clips = store.clips
    assert set(clips["split"]) == {"train", "val", "test"} and "fold" not in clips.columns
    assert (clips.loc[clips["split"] == "test", "label"] >= 0).all()
    assert set(S.load_planted(tmp_path)["alone"]["visual/f-meanstd"]) == {"val", "test"}


def test_synth_and_inspect_cli_on_folds(tmp_path, capsys):
    out = tmp_path / "mafw"
    argv = ["synth", "--dataset", "MAFW", "--out", str(out), "--scale", "0.01", "--max-frames", "4"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("oracle accuracy on the test fold, mafw (mean ± std over 5 folds)")
    assert " ± " in printed.splitlines()[2]
    assert cli_main(["inspect", str(out / "visual" / "basic")]) == 0
    summary = capsys.readouterr().out
    assert "oracle accuracy alone: test fold" in summary and "folds 1..5:" in summary
    assert cli_main(["inspect", str(out), "--oracle"]) == 0
    assert capsys.readouterr().out.strip() == printed.strip()
    meta = json.loads((out / "audio" / "logmel" / "store.json").read_text())
    assert meta["dataset"] == "mafw" and meta["planted"]["generator"]["dataset"] == "mafw"
    assert cli_main(["synth", "--dataset", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nope'" in err and "mafw" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):
        cli_main(["synth", "--help"])
    assert "crema-d" in capsys.readouterr().out


def test_stores_written_before_datasets_are_still_skipped(tmp_path):
    """A planted store whose recorded generator predates ``dataset`` is AFEW's and is reused."""
    tiny = S.Generator(scale=0.01, **SMALL)
    S.generate(tmp_path, tiny, progress=False)
    path = tmp_path / "visual" / "basic" / "store.json"
    meta = json.loads(path.read_text())
    del meta["planted"]["generator"]["dataset"]
    path.write_text(json.dumps(meta))
    assert S.generate(tmp_path, tiny, progress=False, skip_existing=True) == S.load_planted(
        tmp_path
    )
