"""The store format: round trips, zero-copy reads, atomic writes, pairing, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import feature_store
from feature_store import CorruptStoreError, NotAStoreError, PairError, StoreError, StoreExistsError
from feature_store.__main__ import main as cli_main
from feature_store.store import sha256_file


def test_round_trip_and_zero_copy(make_store):
    features = np.arange(24, dtype=np.float32).reshape(6, 4)
    store = make_store(lengths=(3, 0, 3), features=features)
    reopened = feature_store.open_store(store.path)
    assert reopened.clip_ids() == ["clip000", "clip001", "clip002"]
    assert reopened.clip_ids("val") == ["clip001"]
    np.testing.assert_array_equal(reopened.labels("train"), [0])
    np.testing.assert_array_equal(reopened.features("clip002"), features[3:6])
    view = reopened.features("clip000")
    assert isinstance(reopened.array, np.memmap)
    assert np.shares_memory(view, reopened.array)
    assert reopened.features("clip001").shape == (0, 4)
    meta = json.loads((store.path / "store.json").read_text())
    assert meta["format"] == "avfusion-store" and meta["version"] == 1
    assert set(meta["files"]) == {"features.npy", "clips.parquet"}
    assert np.load(store.path / "features.npy").shape == (6, 4)


def test_padded_gathers_in_order_with_masks(make_store):
    features = np.arange(24, dtype=np.float32).reshape(6, 4)
    store = make_store(lengths=(3, 0, 3), features=features)
    padded = store.padded(["clip002", "clip001", "clip000"], max_len=2)
    assert padded.x.shape == (3, 2, 4)
    np.testing.assert_array_equal(padded.mask, [[True, True], [False, False], [True, True]])
    np.testing.assert_array_equal(padded.x[0], features[3:5])
    np.testing.assert_array_equal(padded.x[1], 0)
    np.testing.assert_array_equal(padded.x[2], features[0:2])


def test_loaded_store_pickles_with_its_array(make_store):
    import pickle

    store = make_store()
    loaded = pickle.loads(pickle.dumps(store.load()))
    assert not isinstance(loaded.array, np.memmap)
    np.testing.assert_array_equal(loaded.features("clip000"), store.features("clip000"))


def test_writer_is_atomic_and_refuses_to_overwrite(make_store, tmp_path):
    store = make_store(name="s")
    before = (store.path / "features.npy").read_bytes()
    with pytest.raises(StoreExistsError, match="already holds a store"):
        make_store(name="s", seed=1)
    assert (store.path / "features.npy").read_bytes() == before
    with (
        pytest.raises(RuntimeError),
        feature_store.StoreWriter(tmp_path / "new", name="n", modality="visual", dim=4) as writer,
    ):
        writer.add("a", "train", 0, np.zeros((2, 4), np.float32))
        raise RuntimeError("interrupted")
    assert not (tmp_path / "new").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new")]
    replaced = make_store(name="s", seed=1, force=True)
    assert (replaced.path / "features.npy").read_bytes() != before


def test_writer_rejects_bad_clips(tmp_path):
    with feature_store.StoreWriter(tmp_path / "w", name="w", modality="visual", dim=4) as writer:
        writer.add("a", "train", 0, np.zeros((1, 4)))
        with pytest.raises(StoreError, match="duplicate clip id 'a'"):
            writer.add("a", "val", 1, np.zeros((1, 4)))
        with pytest.raises(StoreError, match="label 9 is outside"):
            writer.add("b", "train", 9, np.zeros((1, 4)))
        with pytest.raises(StoreError, match="needs a label"):
            writer.add("c", "val", -1, np.zeros((1, 4)))
        with pytest.raises(StoreError, match=r"must be \[n, 4\]"):
            writer.add("d", "train", 0, np.zeros((1, 3)))


def _rewrite_clips(store, change):
    """A clip table that is inconsistent though its recorded sha256 matches (a faulty writer):
    the structural checks behind the hash check must still catch it."""
    clips = pd.read_parquet(store.path / "clips.parquet")
    change(clips)
    clips.to_parquet(store.path / "clips.parquet", index=False)
    meta = json.loads((store.path / "store.json").read_text())
    meta["files"]["clips.parquet"] = sha256_file(store.path / "clips.parquet")
    (store.path / "store.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.__setitem__("clip_id", ["x", "x", "y"]), "duplicate clip id 'x'"),
        (lambda c: c.__setitem__("offset", np.array([0, 0, 1])), "overlap"),
        (lambda c: c.__setitem__("offset", np.array([0, 3, 5])), "out of range"),
        (lambda c: c.__setitem__("label", np.array([0, 7, -1], dtype=np.int8)), "outside"),
        (lambda c: c.pop("length"), "missing column"),
    ],
)
def test_open_rejects_inconsistent_clips(make_store, change, message):
    store = make_store(lengths=(3, 1, 2))
    _rewrite_clips(store, change)
    with pytest.raises(CorruptStoreError, match=message):
        feature_store.open_store(store.path)


def test_open_rejects_not_a_store_and_newer_versions(make_store, tmp_path):
    with pytest.raises(NotAStoreError, match="no store.json"):
        feature_store.open_store(tmp_path)
    store = make_store()
    meta = json.loads((store.path / "store.json").read_text())
    meta["version"] = 99
    (store.path / "store.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="format version 99 is newer"):
        feature_store.open_store(store.path)


def test_truncated_and_altered_features(make_store):
    store = make_store(lengths=(3, 1, 2))
    path = store.path / "features.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(CorruptStoreError, match="truncated or altered"):
        feature_store.open_store(store.path)
    altered = bytearray(data)
    altered[-1] ^= 0xFF
    path.write_bytes(bytes(altered))
    reopened = feature_store.open_store(store.path)  # a cheap open cannot see a flipped bit ...
    with pytest.raises(CorruptStoreError, match="sha256"):  # ... the deep check does
        reopened.validate_deep()


def test_deep_validation_names_the_clip_with_nan(make_store):
    features = np.zeros((6, 4), np.float32)
    features[4, 2] = np.inf
    store = make_store(lengths=(3, 1, 2), features=features)
    with pytest.raises(CorruptStoreError, match="clip002"):
        store.validate_deep()


def test_pair_accepts_matching_stores_and_names_the_first_difference(make_store):
    visual = make_store(name="v", modality="visual")
    audio = make_store(name="a", modality="audio", lengths=(0, 5, 2), dim=3)
    pair = feature_store.pair(visual.path, audio.path)
    assert pair.clip_ids("train") == ["clip000"]
    other_label = make_store(name="a2", modality="audio", labels=(0, 2, -1))
    with pytest.raises(PairError, match="clip 'clip001'"):
        feature_store.pair(visual, other_label)
    missing = make_store(
        name="a3", modality="audio", lengths=(1, 1), splits=("train", "val"), labels=(0, 1)
    )
    with pytest.raises(PairError, match="clip 'clip002' is in .* but not in"):
        feature_store.pair(visual, missing)
    with pytest.raises(PairError, match="expected an audio store"):
        feature_store.pair(visual, visual)


def test_cli_reports_one_line_and_exit_2(make_store, tmp_path, capsys):
    store = make_store()
    assert cli_main(["validate", str(store.path), "--deep"]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli_main(["validate", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err
    assert cli_main(["inspect", str(store.path)]) == 0
    assert "clip" not in capsys.readouterr().err


def test_module_help_runs():
    result = subprocess.run(
        [sys.executable, "-m", "feature_store", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("synth", "inspect", "validate"):
        assert command in result.stdout
