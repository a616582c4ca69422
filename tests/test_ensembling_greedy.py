"""Greedy selection: optimality where greedy is provably optimal, agreement with a plain
reference implementation of the tie rule, best-prefix truncation, bagging, cross-validation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ensembling.crossval import cross_validate, stratified_folds
from ensembling.greedy import bagged_select, combine, evaluate, select

K = 7


def one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(K, dtype=np.float32)[labels]


def experts(labels: np.ndarray, blocks: list[np.ndarray]) -> np.ndarray:
    """Candidate i is sure and right on the clips of block i and uniform elsewhere."""
    probs = np.full((len(blocks), len(labels), K), 1 / K, dtype=np.float32)
    for i, block in enumerate(blocks):
        probs[i, block] = one_hot(labels[block])
    return probs


def exhaustive_best(probs, labels, max_members, class_weights=None, objective="acc") -> float:
    """Best objective over every multiset of at most ``max_members`` candidates."""
    best = -1.0
    for size in range(1, max_members + 1):
        for members in itertools.combinations_with_replacement(range(len(probs)), size):
            weights = np.bincount(members, minlength=len(probs))
            best = max(best, evaluate(probs, labels, weights, class_weights, objective))
    return best


@pytest.mark.parametrize("objective", ["acc", "uar"])
def test_greedy_matches_exhaustive_on_disjoint_experts(objective):
    # Each expert only ever adds its own block, so adding the largest remaining block is optimal.
    rng = np.random.default_rng(3)
    labels = rng.integers(1, K, 24)  # never class 0, so no clip is right by an argmax tie
    order = rng.permutation(24)
    blocks = [order[:9], order[9:15], order[15:19], order[19:21]]
    probs = experts(labels, blocks)
    selection = select(probs, labels, rounds=4, objective=objective)
    assert selection.score == pytest.approx(exhaustive_best(probs, labels, 4, objective=objective))
    if objective == "acc":
        assert selection.score == pytest.approx(21 / 24)  # 3 clips are in no block
    assert sorted(selection.members) == [0, 1, 2, 3]


def test_one_round_is_the_best_single_candidate():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, K, 40)
    probs = rng.dirichlet(np.ones(K), size=(12, 40)).astype(np.float32)
    selection = select(probs, labels, rounds=1)
    assert selection.score == pytest.approx(exhaustive_best(probs, labels, 1))


def test_greedy_never_below_best_single_nor_above_exhaustive():
    rng = np.random.default_rng(1)
    for _ in range(5):
        labels = rng.integers(0, K, 30)
        probs = rng.dirichlet(np.ones(K) * 0.5, size=(5, 30)).astype(np.float32)
        selection = select(probs, labels, rounds=3)
        assert (
            exhaustive_best(probs, labels, 1)
            <= selection.score
            <= exhaustive_best(probs, labels, 3)
        )


def reference_select(probs, labels, rounds, class_weights, objective, init_top=0):
    """The issue's rule, written plainly: recompute every candidate's ensemble each round."""
    n = len(probs)
    individual = [evaluate(probs, labels, np.eye(n)[c], class_weights, objective) for c in range(n)]
    counts = np.zeros(n)
    added, trajectory, rules = [], [], []
    for c in sorted(range(n), key=lambda c: (-individual[c], c))[:init_top]:
        counts[c] += 1
        added.append(c)
        trajectory.append(evaluate(probs, labels, counts, class_weights, objective))
    for _ in range(rounds):
        values = []
        for c in range(n):
            trial = counts.copy()
            trial[c] += 1
            values.append(evaluate(probs, labels, trial, class_weights, objective))
        top = max(values)
        tied = [c for c in range(n) if values[c] >= top - 1e-12]
        keys = sorted((counts[c] == 0, -individual[c], c) for c in tied)
        pick = keys[0][2]
        if len(keys) > 1:
            # The rule that decided: the first key on which the winner beats the runner-up.
            first_difference = next(i for i in range(3) if keys[0][i] != keys[1][i])
            rules.append(("in ensemble", "individual", "index")[first_difference])
        counts[pick] += 1
        added.append(pick)
        trajectory.append(values[pick])
    return added, trajectory, rules


@pytest.mark.parametrize("objective", ["acc", "uar"])
def test_fast_selection_equals_the_plain_reference_with_ties(objective):
    # Coarse probabilities (multiples of 1/4) and power-of-two class weights make many exact ties
    # and keep every sum exact, so both implementations must agree step for step.
    rng = np.random.default_rng(7)
    decided = set()
    for case in range(25):
        n, clips = 6, 14
        raw = rng.integers(0, 3, size=(n, clips, K)).astype(np.float32)
        raw[..., 0] += raw.sum(axis=2) == 0
        probs = raw / 4
        probs[1] = probs[3] if case % 2 else probs[1]  # exact duplicates
        labels = rng.integers(0, K, clips)
        class_weights = None if case % 3 else 2.0 ** rng.integers(-1, 2, K)
        init_top = case % 3
        expected_added, expected_trajectory, rules = reference_select(
            probs, labels, 6, class_weights, objective, init_top
        )
        selection = select(
            probs,
            labels,
            rounds=6,
            class_weights=class_weights,
            objective=objective,
            init_top=init_top,
        )
        assert list(selection.added) == expected_added
        np.testing.assert_allclose(selection.trajectory, expected_trajectory, atol=1e-9)
        decided.update(rules)
    assert decided == {"in ensemble", "individual", "index"}, (
        "every tie rule must have been exercised"
    )


def test_tie_goes_to_member_already_in_the_ensemble():
    # Clip labels: 0, 1. Candidate 2 alone is best (gets both). Adding 0, 1 or 2 again keeps 2/2;
    # 0 and 1 have the lower index, but 2 is already in: it must be picked again.
    labels = np.array([1, 2])
    probs = np.zeros((3, 2, K), dtype=np.float32)
    probs[0] = one_hot(np.array([1, 0])) * 0.4 + 0.6 / K  # right on clip 0 only
    probs[1] = one_hot(np.array([0, 2])) * 0.4 + 0.6 / K  # right on clip 1 only
    probs[2] = one_hot(labels)  # right on both, sure
    selection = select(probs, labels, rounds=3)
    assert selection.added == (2, 2, 2)


def test_tie_between_outsiders_goes_to_higher_individual_then_lower_index():
    labels = np.array([1, 1, 2, 3])
    probs = np.full((3, 4, K), 1 / K, dtype=np.float32)
    probs[0, :1] = one_hot(labels[:1])  # alone: 1/4
    probs[1, :2] = one_hot(labels[:2])  # alone: 2/4
    probs[2, :2] = one_hot(labels[:2])  # a copy of 1 at a higher index
    selection = select(probs, labels, rounds=1)
    assert selection.added == (1,)


def test_best_prefix_is_kept_and_trajectory_runs_on():
    # Seed 36 of this noise gives a trajectory that peaks at step 5 of 8, then falls.
    rng = np.random.default_rng(36)
    labels = rng.integers(0, K, 20)
    probs = rng.dirichlet(np.ones(K), size=(5, 20)).astype(np.float32)
    selection = select(probs, labels, rounds=8)
    trajectory = np.asarray(selection.trajectory)
    assert len(trajectory) == 8
    assert selection.kept == 5 and trajectory[4] == trajectory.max() > trajectory[5:].max()
    expected = np.bincount(selection.added[:5], minlength=5)
    np.testing.assert_array_equal(selection.weights, expected)
    assert selection.score == pytest.approx(trajectory[4])


def test_equal_prefixes_keep_the_shortest():
    labels = np.array([0, 1])
    probs = one_hot(np.array([[0, 1], [0, 1]]))  # two perfect candidates
    selection = select(probs, labels, rounds=5)
    assert selection.kept == 1 and selection.weights.sum() == 1


def test_init_top_adds_the_best_candidates_once_each():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, K, 50)
    probs = rng.dirichlet(np.ones(K), size=(8, 50)).astype(np.float32)
    individual = [evaluate(probs, labels, np.eye(8)[c], None, "acc") for c in range(8)]
    best_three = sorted(range(8), key=lambda c: (-individual[c], c))[:3]
    selection = select(probs, labels, rounds=2, init_top=3)
    assert list(selection.added[:3]) == best_three
    assert selection.kept >= 3 and len(selection.added) == 5


def test_class_weights_enter_the_objective():
    # Two classes always near-tied; a weight on class 1 flips every clip to class 1.
    labels = np.array([1, 1, 1])
    probs = np.zeros((1, 3, K), dtype=np.float32)
    probs[0, :, 0], probs[0, :, 1] = 0.51, 0.49
    assert select(probs, labels, rounds=1).score == 0.0
    weights = np.ones(K)
    weights[1] = 2.0
    assert select(probs, labels, rounds=1, class_weights=weights).score == 1.0


@pytest.mark.parametrize(
    ("probs_shape", "labels", "options"),
    [
        ((2, 3), [0, 1, 2], {}),
        ((2, 3, K), [0, 1], {}),
        ((2, 3, K), [0, 1, 9], {}),
        ((2, 3, K), [0, 1, 2], {"rounds": 0}),
        ((2, 3, K), [0, 1, 2], {"init_top": 3}),
        ((2, 3, K), [0, 1, 2], {"objective": "f1"}),
    ],
)
def test_bad_arguments_fail_clearly(probs_shape, labels, options):
    with pytest.raises(ValueError):
        select(np.ones(probs_shape, dtype=np.float32), np.array(labels), **options)


def test_bagged_selection_averages_bags():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, K, 60)
    probs = rng.dirichlet(np.ones(K), size=(10, 60)).astype(np.float32)
    bagged = bagged_select(probs, labels, bags=6, fraction=0.5, seed=1, rounds=5)
    assert len(bagged.bags) == 6 and len(bagged.trajectory) == 6
    assert bagged.weights.sum() == pytest.approx(1.0)
    assert bagged.score == pytest.approx(evaluate(probs, labels, bagged.weights, None, "acc"))
    again = bagged_select(probs, labels, bags=6, fraction=0.5, seed=1, rounds=5)
    np.testing.assert_array_equal(bagged.weights, again.weights)
    with pytest.raises(ValueError):
        bagged_select(probs, labels, bags=0)


def test_cross_validation_of_a_fixed_ensemble_is_its_in_sample_figure():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, K, 70)
    probs = rng.dirichlet(np.ones(K), size=(4, 70)).astype(np.float32)
    weights = np.array([1.0, 0, 2.0, 0])
    cv = cross_validate(probs, labels, lambda p, y: (weights, None), folds=5)
    assert cv.acc == pytest.approx(evaluate(probs, labels, weights, None, "acc"))
    assert cv.uar == pytest.approx(evaluate(probs, labels, weights, None, "uar"))


def test_cross_validated_selection_scores_held_out_clips():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, K, 80)
    probs = rng.dirichlet(np.ones(K), size=(30, 80)).astype(np.float32)  # pure noise
    in_sample = select(probs, labels, rounds=10).score
    cv = cross_validate(
        probs, labels, lambda p, y: (select(p, y, rounds=10).weights, None), folds=4
    )
    assert cv.acc < in_sample  # selection over-fits noise; held-out clips show it


def test_stratified_folds_spread_every_class():
    labels = np.repeat(np.arange(K), 10)
    folds = stratified_folds(labels, 5, seed=0)
    for label in range(K):
        assert np.bincount(folds[labels == label], minlength=5).tolist() == [2] * 5


def test_combine_normalises_weighted_mean():
    probs = np.stack([one_hot(np.array([0, 1])), one_hot(np.array([1, 1]))])
    combined = combine(probs, np.array([3.0, 1.0]))
    np.testing.assert_allclose(combined[0, :2], [0.75, 0.25])
    np.testing.assert_allclose(combined.sum(axis=1), 1.0)
