"""Class-weight presets (every registry entry), explicit vectors, bad vectors, fitting."""

from __future__ import annotations

import numpy as np
import pytest

from avcore.metrics import score
from ensembling.class_weights import (
    EMOTIW2019,
    PRESETS,
    TRAIN_COUNTS,
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
        ("1,2,3", "expected 7 values"),
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
