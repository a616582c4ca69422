"""Class-weight presets (every registry entry), explicit vectors, bad vectors, fitting."""

from __future__ import annotations

import numpy as np
import pytest

from avcore.afew import TRAIN_COUNTS
from avcore.datasets import AFEW
from avcore.metrics import score
from ensembling.class_weights import (
    EMOTIW2019,
    PRESETS,
    WeightContext,
    check_vector,
    fit,
    resolve,
)
from ensembling.errors import ClassWeightError

K = 7


def near_tied(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Probabilities whose argmax is class 0 on every clip, the true class a close second."""
    probs = rng.uniform(0.0, 0.05, size=(len(labels), K))
    probs[:, 0] = 0.40
    probs[np.arange(len(labels)), labels] = np.where(labels == 0, 0.40, 0.35)
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_gives_a_valid_vector(name):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 50)
    context = WeightContext(val_probs=near_tied(labels, rng), labels=labels)
    spec = resolve(name)
    vector = spec.vector(context)
    if vector is not None:
        check_vector(vector)
        assert vector.sum() == pytest.approx(1.0, abs=0.01)


def test_presets_hold_the_papers_numbers():
    np.testing.assert_allclose(resolve("emotiw2019").vector(), EMOTIW2019)
    roots = np.sqrt(TRAIN_COUNTS)
    np.testing.assert_allclose(resolve("sqrt-prior").vector(), roots / roots.sum())
    custom = resolve("sqrt-prior").vector(WeightContext(train_counts=(1, 4, 9, 16, 25, 36, 49)))
    np.testing.assert_allclose(custom, np.arange(1, 8) / 28)
    assert resolve("none").vector() is None


def test_explicit_vector():
    spec = resolve("1, 2, 3, 4, 5, 6, 7")
    assert spec.name == "explicit" and not spec.fitted
    np.testing.assert_array_equal(spec.vector(), np.arange(1, 8))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3,4,5,6,-7", ">= 0"),
        ("0,0,0,0,0,0,0", "not all zero"),
        ("1,2,3,4,5,6,nan", ">= 0"),
        ("1,2,x,4,5,6,7", "not a list of numbers"),
        ("sqrt", "known: none, emotiw2019, sqrt-prior, fitted"),
    ],
)
def test_bad_class_weights_are_one_clear_error(text, message):
    with pytest.raises(ClassWeightError, match=message):
        resolve(text)


def test_a_vector_needs_one_value_per_class_of_the_scores():
    with pytest.raises(ClassWeightError, match="expected 7 values"):
        resolve("1,2,3").vector()
    mafw = tuple(f"c{k}" for k in range(11))
    spec = resolve(",".join(["1"] * 11))
    assert spec.vector(WeightContext(classes=mafw, train_counts=None)).shape == (11,)
    with pytest.raises(ClassWeightError, match=r"expected 11 values \(c0, c1"):
        resolve("1,2,3,4,5,6,7").vector(WeightContext(classes=mafw, train_counts=None))


MAFW = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt",
    "anxiety", "helplessness", "disappointment",
)  # fmt: skip


def test_presets_on_another_class_set_read_its_own_counts_and_refuse_the_afew_vector():
    counts = tuple(range(1, 12))
    context = WeightContext(classes=MAFW, train_counts=counts)
    roots = np.sqrt(counts)
    np.testing.assert_allclose(resolve("sqrt-prior").vector(context), roots / roots.sum())
    with pytest.raises(ClassWeightError, match="emotiw2019 is the paper's vector for AFEW") as info:
        resolve("emotiw2019").vector(context)
    assert "anger, disgust" in str(info.value) and "\n" not in str(info.value)
    assert not PRESETS["emotiw2019"].applies(context)
    assert PRESETS["emotiw2019"].applies(WeightContext(classes=AFEW.classes))
    with pytest.raises(ClassWeightError, match="record none"):
        resolve("sqrt-prior").vector(WeightContext(classes=MAFW, train_counts=None))


def test_wrong_train_counts_are_an_error():
    with pytest.raises(ClassWeightError, match="train class counts"):
        resolve("sqrt-prior").vector(WeightContext(train_counts=(1, 2)))


def test_class_weights_move_predictions_toward_the_heavier_class():
    rng = np.random.default_rng(1)
    labels = rng.integers(1, K, 40)
    probs = near_tied(labels, rng)
    assert np.all(probs.argmax(axis=1) == 0)
    up = np.ones(K)
    up[3] = 1.5  # Happy up: clips of Happy flip to Happy, the others stay Angry
    moved = (probs * up).argmax(axis=1)
    np.testing.assert_array_equal(moved == 3, labels == 3)
    np.testing.assert_array_equal(moved[labels != 3], 0)


@pytest.mark.parametrize("objective", ["acc", "uar"])
def test_fitted_weights_recover_a_hidden_bias(objective):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, K, 120)
    probs = near_tied(labels, rng)
    before = score(probs.argmax(axis=1), labels, objective, K)
    weights = fit(probs, labels, objective=objective)
    after = score((probs * weights).argmax(axis=1), labels, objective, K)
    assert weights.sum() == pytest.approx(1.0)
    assert after > before + 0.3
    assert weights[0] < weights[1:].min()  # the over-predicted class is the one weighed down


def test_fitted_preset_needs_validation_scores():
    with pytest.raises(ClassWeightError, match="need validation"):
        resolve("fitted").vector(WeightContext())
