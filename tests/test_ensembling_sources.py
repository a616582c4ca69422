"""Score sources on disk: scores.npz directories, alignment on clip ids, every bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensembling import sources
from ensembling.errors import ScoresError

K = 7


def write_scores(
    directory: Path, rng: np.random.Generator, *, n_val=12, n_test=5, **override
) -> dict:
    """A scores.npz whose clips are listed in a random order (``override`` replaces arrays before
    the shuffle, ``None`` drops a key); returns the arrays in clip-id order."""
    arrays = {
        "clip_ids_val": np.array([f"val{i:03d}" for i in range(n_val)]),
        "val": rng.dirichlet(np.ones(K), n_val).astype(np.float32),
        "labels_val": (np.arange(n_val) % K).astype(np.int64),
        "clip_ids_test": np.array([f"test{i:03d}" for i in range(n_test)]),
        "test": rng.dirichlet(np.ones(K), n_test).astype(np.float32),
    }
    arrays.update(override)
    present = {key: value for key, value in arrays.items() if value is not None}
    val_order = rng.permutation(len(present["clip_ids_val"]))
    test_order = rng.permutation(n_test)
    shuffled = {
        key: value[test_order if "test" in key else val_order] for key, value in present.items()
    }
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "scores.npz", **shuffled)
    return arrays


def test_alignment_follows_clip_ids_whatever_the_order(tmp_path):
    rng = np.random.default_rng(0)
    written = [write_scores(tmp_path / f"t{i}", rng) for i in range(3)]
    scores = sources.from_dirs([tmp_path / f"t{i}" for i in range(3)])
    order = np.argsort(scores.clip_ids_val)
    for i, arrays in enumerate(written):
        np.testing.assert_array_equal(scores.val[i][order], arrays["val"])
        test_order = np.argsort(scores.clip_ids_test)
        np.testing.assert_array_equal(scores.test[i][test_order], arrays["test"])
    np.testing.assert_array_equal(scores.labels_val[order], written[0]["labels_val"])
    assert [c.name for c in scores.candidates] == [str(tmp_path / f"t{i}") for i in range(3)]


def corrupt(name: str, rng: np.random.Generator) -> dict:
    n = 12
    ids = np.array([f"val{i:03d}" for i in range(n)])
    val = rng.dirichlet(np.ones(K), n).astype(np.float32)
    if name == "nan":
        val[4, 2] = np.nan
        return {"clip_ids_val": ids, "val": val}
    if name == "missing key":
        return {"test": None}
    if name == "wrong width":
        return {"val": val[:, :5]}
    if name == "bad label":
        return {"clip_ids_val": ids, "labels_val": np.full(n, 9)}
    if name == "duplicate clip":
        ids[3] = ids[2]
        return {"clip_ids_val": ids}
    if name == "other clips":
        ids[5] = "elsewhere"
        return {"clip_ids_val": ids}
    if name == "fewer clips":
        return {"clip_ids_val": ids[:-1], "val": val[:-1], "labels_val": np.arange(n - 1) % K}
    if name == "other labels":
        return {"clip_ids_val": ids, "labels_val": (np.arange(n) + 1) % K}
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", "NaN, Inf or negative scores for clip 'val004'"),
        ("missing key", "lacks key 'test'"),
        ("wrong width", "key 'val' must be"),
        ("bad label", "has label 9, expected 0..6"),
        ("duplicate clip", "lists clip 'val002' twice"),
        ("other clips", "validation clips differ from .*lacks clip 'val005'"),
        ("fewer clips", "validation clips differ from .*lacks clip 'val011'"),
        ("other labels", r"clip 'val\d+' has label \d, .* says \d"),
    ],
)
def test_bad_score_files_are_named_in_one_line(tmp_path, case, message):
    rng = np.random.default_rng(1)
    write_scores(tmp_path / "good", rng)
    write_scores(tmp_path / "bad", rng, **corrupt(case, rng))
    with pytest.raises(ScoresError, match=message) as caught:
        sources.from_dirs([tmp_path / "good", tmp_path / "bad"])
    assert "bad" in str(caught.value) and "\n" not in str(caught.value)


def test_extra_clips_and_unreadable_files(tmp_path):
    rng = np.random.default_rng(2)
    write_scores(tmp_path / "a", rng)
    write_scores(tmp_path / "b", rng, n_test=6)
    with pytest.raises(ScoresError, match="test clips differ .* extra clip 'test005'"):
        sources.from_dirs([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "scores.npz").write_text("not a zip")
    with pytest.raises(ScoresError, match="cannot read"):
        sources.from_dirs([tmp_path / "a", tmp_path / "c"])
    with pytest.raises(ScoresError, match="no scores.npz at"):
        sources.from_dirs([tmp_path / "a", tmp_path / "nowhere"])
    write_scores(tmp_path / "c", rng, clip_ids_val=np.array([{"x": i} for i in range(12)]))
    with pytest.raises(ScoresError, match="cannot read .*allow_pickle"):
        sources.from_dirs([tmp_path / "c"])
