"""``ensembling compare`` (named ensembles side by side, the paper's Table 4) and
``--class-weights auto``: members chosen as the spec says, every figure in-sample and
cross-validated, the cross-validation recomputed here by hand for the best single trial, rows the
search cannot make said so, bad specs one line, and the CLI end to end through MLflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ensembling import compare
from ensembling.build import AUTO_PRESETS, Recipe, build
from ensembling.cli import main
from ensembling.crossval import stratified_folds
from ensembling.errors import EnsembleError
from ensembling.sources import Candidate, ScoreSet

K, N_VAL, N_TEST = 7, 70, 5
# (visual_feature, audio_feature, how strongly the true class is boosted)
TRIALS = [
    ("f-mean", "logmel", 2.5),
    ("f-mean", "spectrogram", 1.0),
    ("f-meanstd", "logmel", 2.0),
    ("f-meanstd", "logmel", 1.5),
    ("f-meanstd", "spectrogram", 0.5),
    ("f-normfft", "logmel", 1.2),
]


def score_set(seed: int = 0) -> ScoreSet:
    rng = np.random.default_rng(seed)
    labels = np.arange(N_VAL) % K
    vals = []
    for _, _, boost in TRIALS:
        val = rng.dirichlet(np.ones(K), N_VAL)
        val[np.arange(N_VAL), labels] += boost * rng.uniform(0, 0.3, N_VAL)
        vals.append(val / val.sum(axis=1, keepdims=True))
    candidates = tuple(
        Candidate(f"trial-{i}", f"run{i}", params={"visual_feature": v, "audio_feature": a})
        for i, (v, a, _) in enumerate(TRIALS)
    )
    return ScoreSet(
        candidates=candidates,
        clip_ids_val=np.array([f"val{j:03d}" for j in range(N_VAL)]),
        labels_val=labels,
        val=np.stack(vals).astype(np.float32),
        clip_ids_test=np.array([f"test{j}" for j in range(N_TEST)]),
        test=rng.dirichlet(np.ones(K), (len(TRIALS), N_TEST)).astype(np.float32),
    )


def spec(**overrides) -> compare.CompareSpec:
    data = {
        "class_weights": "sqrt-prior",
        "ensembles": [
            {"name": "2 x f-meanstd", "members": [{"where": {"visual_feature": "f-meanstd"}, "count": 2}]},
            {"name": "one per visual", "one_per": "visual_feature"},
            {"name": "greedy", "greedy": {"top": 4, "rounds": 5}},
            {"name": "4 x f-normfft", "members": [{"where": {"visual_feature": "f-normfft"}, "count": 4}]},
        ],
        **overrides,
    }  # fmt: skip
    return compare.CompareSpec.model_validate(data)


def test_members_follow_the_spec_and_the_best_single_matches_a_hand_computed_cv():
    scores = score_set()
    rows = {row.name: row for row in compare.compare(scores, spec(class_weights="none"))}
    accuracy = (scores.val.argmax(axis=2) == scores.labels_val).mean(axis=1)
    meanstd = [i for i, t in enumerate(TRIALS) if t[0] == "f-meanstd"]
    best_two = sorted(meanstd, key=lambda i: -accuracy[i])[:2]
    assert sorted(rows["2 x f-meanstd"].members) == sorted(f"trial-{i}" for i in best_two)
    assert len(rows["one per visual"].members) == 3  # f-mean, f-meanstd, f-normfft
    assert rows["4 x f-normfft"].missing.startswith("4 x f-normfft: 4 trial(s)")

    single = rows["best single trial"]
    assert single.in_sample == pytest.approx(accuracy.max())
    folds = stratified_folds(scores.labels_val, 5, 0)
    right = 0
    for fold in range(5):
        held = folds == fold
        train_acc = (scores.val[:, ~held].argmax(axis=2) == scores.labels_val[~held]).mean(axis=1)
        chosen = int(np.argmax(train_acc))
        right += int((scores.val[chosen, held].argmax(axis=1) == scores.labels_val[held]).sum())
    assert single.cv == pytest.approx(right / N_VAL)
    assert single.cv_plain == single.cv  # no class weights either way


def test_rendered_table_says_where_each_figure_was_selected_and_measured():
    scores = score_set()
    text = compare.render(compare.compare(scores, spec()), spec(), "demo")
    assert "sqrt-prior: selected on val | sqrt-prior: 5-fold CV" in text
    assert "| 4 x f-normfft | – | 4 x f-normfft: 4 trial(s)" in text


@pytest.mark.parametrize(
    "body, message",
    [
        ("ensembles: [{name: a, one_per: x, greedy: {top: 3}}]", "ensembles.0: .*exactly one of"),
        ("ensembles: [{name: a, members: [{count: 2, colour: red}]}]", "colour"),
        ("class_weights: heavy\nensembles: [{name: a, one_per: x}]", "unknown class-weight preset"),
        ("ensembles: [name: a\n  - b", r"spec.yaml:2:\d+: not valid YAML"),
    ],
)
def test_bad_specs_are_one_line_naming_the_file(tmp_path, body, message):
    path = tmp_path / "spec.yaml"
    path.write_text(body)
    with pytest.raises(EnsembleError, match=message) as error:
        compare.load_spec(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_auto_class_weights_pick_the_best_cross_validated_preset():
    scores = score_set(1)
    ensemble = build(scores, Recipe(rounds=5, class_weights="auto"))
    assert ensemble.chosen_class_weights in AUTO_PRESETS
    assert set(ensemble.class_weights_cv) == set(AUTO_PRESETS)
    best = max(ensemble.class_weights_cv.values())
    assert ensemble.class_weights_cv[ensemble.chosen_class_weights] == best


def test_compare_cli_through_mlflow(tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("cmp", artifact_location=(tmp_path / "art").as_uri())
    scores = score_set()
    for i, candidate in enumerate(scores.candidates):
        folder = tmp_path / f"t{i}"
        folder.mkdir()
        np.savez(
            folder / "scores.npz",
            clip_ids_val=scores.clip_ids_val,
            val=scores.val[i],
            labels_val=scores.labels_val,
            clip_ids_test=scores.clip_ids_test,
            test=scores.test[i],
        )
        run = client.create_run(
            experiment,
            run_name=candidate.name,
            tags={"avfusion.kind": "trial", "avfusion.status": "finished"},
        ).info.run_id
        for key, value in candidate.params.items():
            client.log_param(run, key, value)
        accuracy = float((scores.val[i].argmax(axis=1) == scores.labels_val).mean())
        client.log_metric(run, "val_acc", accuracy)
        client.log_artifact(run, str(folder / "scores.npz"))
        client.set_terminated(run)
    spec_file = Path(__file__).resolve().parents[1] / "conf" / "ensemble" / "table4.yaml"
    out = tmp_path / "cmp-out"
    argv = ["compare", "--experiment", "cmp", "--spec", str(spec_file), "--tracking-uri", uri]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| best single trial |" in printed and "| one of each audio variant | 2 |" in printed
    assert (out / "compare.md").read_text() in printed
    assert main([*argv, "--out", str(out)]) == 2  # exists, no --force
