"""The class set and the protocol as properties of the data: a manifest's MANIFEST.yaml (or
--classes), a store's fold view (stratified, seeded, independent of row order), pairing refusal
of different class sets, scores.npz with its classes, and no AFEW assumption outside the default
profile (a grep)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import feature_store
from avcore import results
from avcore.datasets import ProtocolSpec
from avcore.errors import UserError
from feature_store.errors import PairError, StoreError
from feature_store.manifest import ManifestError, read_manifest
from feature_store.manifest_spec import ManifestSpec, write_spec
from feature_store.store.protocol import fold_view, protocol_of, protocol_split

ROOT = Path(__file__).resolve().parent.parent
MAFW = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt",
    "anxiety", "helplessness", "disappointment",
)  # fmt: skip
FOLDS = ProtocolSpec("folds", 5)


def write_manifest(tmp_path: Path, rows: list[str], spec: ManifestSpec | None) -> Path:
    path = tmp_path / "manifest.csv"
    path.write_text("clip_id,path,split,label,fold,speaker\n" + "\n".join(rows) + "\n")
    if spec is not None:
        write_spec(path, spec)
    return path


def test_a_manifest_reads_its_classes_and_folds_from_its_yaml(tmp_path):
    path = write_manifest(
        tmp_path,
        [
            "a,a.mp4,train,Helplessness,1,s1",
            "b,b.mp4,train,anger,5,s2",
            "c,c.mp4,train,contempt,3,",
        ],
        ManifestSpec("mafw", MAFW, FOLDS, {"multi-label": 2}),
    )
    clips = read_manifest(path)
    assert clips["label"].tolist() == [9, 0, 7]
    assert clips["fold"].tolist() == [1, 5, 3]
    assert clips["speaker"].tolist() == ["s1", "s2", ""]
    spec = clips.attrs["spec"]
    assert spec.classes == MAFW and spec.protocol == FOLDS and spec.excluded == {"multi-label": 2}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,a.mp4,train,anger,0,", r"manifest.csv:2: clip 'a' has fold 0; the folds protocol has folds 1..5"),
        ("a,a.mp4,train,anger,6,", r":2: clip 'a' has fold 6"),
        ("a,a.mp4,train,anger,x,", r":2: clip 'a' has fold 'x'; expected a whole number"),
        ("a,a.mp4,train,Angry,1,", r":2: clip 'a' has unknown label 'Angry'; expected one of anger, disgust"),
    ],
)  # fmt: skip
def test_bad_fold_rows_name_file_and_line(tmp_path, row, message):
    path = write_manifest(tmp_path, [row], ManifestSpec("mafw", MAFW, FOLDS))
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(path)
    assert "\n" not in str(info.value)


def test_a_manifest_without_yaml_is_afew_unless_classes_are_given(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("clip_id,path,split,label\na,a.mp4,train,calm\nb,b.mp4,val,Happy\n")
    with pytest.raises(ManifestError, match=r"unknown label 'calm'.*\(other classes: --classes"):
        read_manifest(path)
    clips = read_manifest(path, classes=["neutral", "calm", "happy"])
    assert clips["label"].tolist() == [1, 2]
    assert clips.attrs["spec"].classes == ("neutral", "calm", "happy")
    with pytest.raises(ManifestError, match="at least two distinct"):
        read_manifest(path, classes=["calm", "Calm"])
    write_spec(path, ManifestSpec("ravdess", ("neutral", "calm", "happy")))
    with pytest.raises(ManifestError, match="differ from m.yaml's"):
        read_manifest(path, classes=["calm", "neutral", "happy"])


def test_a_bad_yaml_is_one_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("clip_id,path,split,label\na,a.mp4,train,x\n")
    path.with_suffix(".yaml").write_text("classes: [a]\n")
    with pytest.raises(feature_store.StoreError, match=r"m.yaml: classes must be a list of at"):
        read_manifest(path)
    path.with_suffix(".yaml").write_text("classes: [a, b]\nprotocol: {kind: folds, folds: 1}\n")
    with pytest.raises(feature_store.StoreError, match="at least 2 folds"):
        read_manifest(path)
    with pytest.raises(UserError, match="protocol kind 'k'"):
        ProtocolSpec("k")


def fold_store(make_store, name: str, *, order=None, classes=MAFW, folds=5, seed=0):
    """A store of 11 classes x 5 folds x 6 clips (330 clips), rows in ``order``."""
    rng = np.random.default_rng(seed)
    ids = [f"c{i:04d}" for i in range(len(classes) * folds * 6)]
    labels = np.arange(len(ids)) % len(classes)
    fold = (np.arange(len(ids)) // len(classes)) % folds + 1
    order = np.arange(len(ids)) if order is None else order
    clips = pd.DataFrame(
        {
            "clip_id": [ids[i] for i in order],
            "split": "train",
            "label": labels[order],
            "length": rng.integers(1, 4, len(ids)),
            "fold": fold[order],
        }
    )
    return make_store(
        name,
        clip_ids=list(clips["clip_id"]),
        lengths=list(clips["length"]),
        splits=list(clips["split"]),
        labels=list(clips["label"]),
        classes=classes,
        extra={"dataset": "mafw", "protocol": ProtocolSpec("folds", folds).as_dict()},
        columns={"fold": list(clips["fold"])},
    )


@pytest.fixture
def make_fold_store(make_store):
    return lambda *a, **k: fold_store(make_store, *a, **k)


def test_a_fold_view_tests_on_its_fold_and_carves_a_stratified_seeded_val(make_fold_store):
    store = make_fold_store("v")
    assert protocol_of(store) == ProtocolSpec("folds", 5)
    view = fold_view(store, 2, val_fraction=0.25, seed=7)
    clips = view.clips
    assert set(clips.loc[clips["fold"] == 2, "split"]) == {"test"}
    assert set(clips.loc[clips["fold"] != 2, "split"]) == {"train", "val"}
    val = clips[clips["split"] == "val"]
    # 24 clips per class outside fold 2: a quarter, 6, of each class in val, the rest in train.
    assert val["label"].value_counts().tolist() == [6] * 11
    assert view.meta["view"]["clips"] == {"train": 198, "val": 66, "test": 66}
    again = fold_view(store, 2, val_fraction=0.25, seed=7)
    assert again.clip_ids("val") == view.clip_ids("val")
    other_seed = fold_view(store, 2, val_fraction=0.25, seed=8)
    assert other_seed.clip_ids("val") != view.clip_ids("val")
    assert other_seed.meta["view"]["val_ids_sha256"] != view.meta["view"]["val_ids_sha256"]
    assert store.clips["split"].eq("train").all()  # the store itself is untouched


def test_a_fold_view_is_the_same_whatever_the_row_order(make_fold_store):
    visual = make_fold_store("visual")
    order = np.random.default_rng(3).permutation(len(visual))
    audio = make_fold_store("audio", order=order, seed=1)
    a, b = fold_view(visual, 4, seed=1), fold_view(audio, 4, seed=1)
    assert sorted(a.clip_ids("val")) == sorted(b.clip_ids("val"))
    assert a.meta["view"]["val_ids_sha256"] == b.meta["view"]["val_ids_sha256"]


def test_fold_views_refuse_what_they_cannot_be(make_fold_store, make_store):
    store = make_fold_store("v")
    with pytest.raises(StoreError, match=r"fold 6 is outside the folds protocol's folds 1..5"):
        fold_view(store, 6)
    afew = make_store("afew")
    with pytest.raises(StoreError, match="its protocol is fixed"):
        fold_view(afew, 1)


def test_a_fold_store_needs_a_fold_and_a_fixed_one_refuses_one(make_fold_store, make_store):
    store = make_fold_store("v")
    with pytest.raises(StoreError, match=r"a folds protocol with 5 folds: .* with --fold \(1..5\)"):
        protocol_split(store, None, val_fraction=0.1, seed=0, option="--fold")
    view = protocol_split(store, 5, val_fraction=0.1, seed=0, option="--fold")
    assert view.meta["view"]["fold"] == 5
    afew = make_store("afew")
    assert protocol_split(afew, None, val_fraction=0.1, seed=0, option="--fold") is afew
    with pytest.raises(StoreError, match="fixed .* drop --fold"):
        protocol_split(afew, 1, val_fraction=0.1, seed=0, option="--fold")


def test_trainables_fit_runs_on_a_fold_and_reports_its_test(make_fold_store, capsys):
    from trainables.__main__ import main

    store = make_fold_store("v")
    assert main(["fit", "--visual", str(store.path), "--set", "epochs=1", "--fold", "2"]) == 0
    assert "test (measured, not selected on) WAR" in capsys.readouterr().out


def test_stores_of_different_class_sets_do_not_pair(make_store):
    visual = make_store("v", classes=MAFW[:3], labels=(0, 1, -1))
    audio = make_store("a", modality="audio", classes=("neutral", "calm", "happy"))
    with pytest.raises(
        PairError, match=r"different classes: \['anger', 'disgust', 'fear'\] vs \['neutral'"
    ):
        feature_store.pair(visual, audio)


def test_scores_record_their_classes_and_test_labels(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(11), size=5).astype(np.float32)
    scores = {
        "clip_ids_val": np.array(list("abcde")),
        "val": probs,
        "labels_val": np.arange(5),
        "clip_ids_test": np.array(list("vwxyz")),
        "test": probs,
        "labels_test": np.array([10, 0, 1, 2, 3]),
        "classes": np.array(MAFW),
        "train_counts": np.arange(1, 12),
    }
    read = results.read_scores(results.write_scores(tmp_path / "s.npz", scores), "run")
    assert tuple(read["classes"]) == MAFW and read["labels_test"].tolist() == [10, 0, 1, 2, 3]
    assert read["train_counts"].tolist() == list(range(1, 12))
    bad = {**scores, "labels_test": np.array([11, 0, 1, 2, 3])}
    with pytest.raises(UserError, match=r"clip 'v' has label 11, expected -1..10"):
        results.read_scores(results.write_scores(tmp_path / "b.npz", bad), "run")
    narrow = {**scores, "classes": np.array(MAFW[:7])}
    with pytest.raises(UserError, match=r"key 'val' must be \[5, 7\]"):
        results.read_scores(results.write_scores(tmp_path / "n.npz", narrow), "run")


def test_no_afew_assumption_outside_the_default_profile():
    """AFEW's classes and counts enter only through avcore/afew.py, read by avcore/datasets.py
    (the default profile); every other module takes its classes from the data."""
    allowed = {Path("avcore/afew.py"), Path("avcore/datasets.py")}
    pattern = re.compile(r"avcore\.afew|from avcore import afew|TRAIN_COUNTS|\(133, 74, 81")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("avcore", "feature_store", "trainables", "search", "ensembling")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.relative_to(ROOT) not in allowed
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_speaker_folds_shuffled_by_seed_or_in_contiguous_blocks():
    from feature_store.datasets.common import speaker_folds

    actors = [f"{a:02d}" for a in range(1, 25)]
    blocks = speaker_folds(actors, 6, 0, "blocks")
    assert blocks == {f"{a:02d}": (a - 1) // 4 + 1 for a in range(1, 25)}  # 1-4, 5-8, ...
    sizes = sorted(list(speaker_folds(map(str, range(1001, 1092)), 5, 0, "blocks").values()))
    assert [sizes.count(k) for k in range(1, 6)] == [19, 18, 18, 18, 18]
    shuffled = speaker_folds(actors, 6, 0)
    assert shuffled == speaker_folds(reversed(actors), 6, 0) != speaker_folds(actors, 6, 1)
    assert sorted(list(shuffled.values()).count(k) for k in range(1, 7)) == [4] * 6
