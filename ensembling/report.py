"""The outputs of an ensemble, written all at once or not at all (a temporary sibling directory
renamed into place):

- ``ensemble.json``: members with weights, class weights, the selection trajectory, in-sample and
  cross-validated figures, the best single candidate; ``python -m ensembling show DIR`` reads it;
- ``predictions_test.csv`` (``clip_id,emotion`` and one ``p_<class>`` per class, in the scores'
  class order, e.g. ``p_Angry..p_Surprise`` for AFEW) and ``predictions_val.csv``;
- ``submission.zip``: one ``<clip_id>.txt`` per test clip holding the emotion name;
- ``report.md``, ``confusion_val.png`` and ``trajectory.png`` (drawn by ``ensembling.charts``).
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from avcore import guards
from avcore.datasets import default_classes
from avcore.staged import staged
from ensembling import charts
from ensembling.build import Ensemble
from ensembling.errors import OutputError

FORMAT = "avfusion-ensemble"
VERSION = 1
SUMMARY_FILE = "ensemble.json"


def summary(ensemble: Ensemble, *, source: dict, mlflow_run_id: str | None) -> dict:
    """Everything ``ensemble.json`` holds, as plain JSON types."""
    scores, selection = ensemble.scores, ensemble.selection
    names = [candidate.name for candidate in scores.candidates]
    total = selection.weights.sum()
    members = [
        {
            "name": names[i],
            "run_id": scores.candidates[i].run_id,
            "weight": float(selection.weights[i] / total),
            "count": float(selection.weights[i]),
            "val_acc": float(np.mean(scores.val[i].argmax(axis=1) == scores.labels_val)),
        }
        for i in np.argsort(-selection.weights, kind="stable")
        if selection.weights[i] > 0
    ]
    best = ensemble.best_single
    cv, cv_plain = ensemble.cross_validated, ensemble.cross_validated_without_class_weights
    classes = list(scores.classes)
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "classes": classes,
        "recipe": ensemble.recipe.model_dump(mode="json"),
        "class_weights": {
            "spec": ensemble.recipe.class_weights,
            "vector": None
            if ensemble.class_weights is None
            else [float(w) for w in ensemble.class_weights],
            "chosen": ensemble.chosen_class_weights,
            "cv_by_preset": ensemble.class_weights_cv,
        },
        "candidates": len(names),
        "clips": {"val": int(scores.val.shape[1]), "test": int(scores.test.shape[1])},
        "members": members,
        "trajectory": [
            {"step": step + 1, "added": names[candidate], "objective": value}
            for step, (candidate, value) in enumerate(zip(selection.added, selection.trajectory))
        ],
        "bag_trajectory": list(selection.trajectory) if selection.bags else [],
        "kept_steps": selection.kept,
        "in_sample": {
            "acc": ensemble.in_sample.acc,
            "uar": ensemble.in_sample.uar,
            "recall": dict(zip(classes, ensemble.in_sample.recall)),
        },
        "test": _test_figures(ensemble, classes),
        "cross_validated": {
            "folds": cv.folds,
            "acc": cv.acc,
            "uar": cv.uar,
            "acc_without_class_weights": cv_plain.acc,
            "uar_without_class_weights": cv_plain.uar,
        },
        "best_single": {
            "name": names[best],
            "run_id": scores.candidates[best].run_id,
            "acc": ensemble.best_single_figures.acc,
            "uar": ensemble.best_single_figures.uar,
            "recall": dict(zip(classes, ensemble.best_single_figures.recall)),
        },
        "mlflow_run_id": mlflow_run_id,
    }


def _test_figures(ensemble: Ensemble, classes: list[str]) -> dict | None:
    """The labelled test clips' figures (a fold's test, MELD's test): measured, never selected
    on. None when the test split is unlabelled (AFEW's)."""
    if ensemble.test is None or ensemble.best_single_test is None:
        return None
    return {
        "clips": int((ensemble.scores.labels_test >= 0).sum()),
        "acc": ensemble.test.acc,
        "uar": ensemble.test.uar,
        "recall": dict(zip(classes, ensemble.test.recall)),
        "best_single_acc": ensemble.best_single_test.acc,
        "best_single_uar": ensemble.best_single_test.uar,
    }


def _source_name(info: dict) -> str:
    """The experiment an ensemble was built from, or its score folders."""
    source = info["source"]
    return source.get("experiment") or ", ".join(source.get("dirs", [])) or "?"


def _auto_choice(class_weights: dict) -> str:
    """`` (auto chose sqrt-prior: CV acc none 0.45, sqrt-prior 0.47, ...)`` for ``auto``."""
    by_preset = class_weights.get("cv_by_preset")
    if not by_preset:
        return ""
    tried = ", ".join(f"{name} {value:.4f}" for name, value in by_preset.items())
    return f" → {class_weights['chosen']} (cross-validated on val: {tried})"


def render(info: dict) -> str:
    """The markdown report of an ``ensemble.json``; ``show`` prints the same text."""
    ins, cv, best = info["in_sample"], info["cross_validated"], info["best_single"]
    classes = info.get("classes") or list(default_classes())  # files from before classes
    test = info.get("test")
    source = info["source"]
    where = _source_name(info)
    skipped = ", ".join(f"{n} {status}" for status, n in source.get("skipped", {}).items())
    recipe = info["recipe"]
    lines = [
        f"# Ensemble of {len(info['members'])} members from {info['candidates']} candidates",
        "",
        f"- source: {where}" + (f" (filter `{source['filter']}`)" if source.get("filter") else ""),
        f"- trial runs left out: {skipped}" if skipped else "- trial runs left out: none",
        f"- objective {recipe['objective']}, {recipe['rounds']} rounds, init_top {recipe['init_top']}, "
        + (
            f"{recipe['bags']} bags of {recipe['bag_fraction']:.0%}"
            if recipe["bags"]
            else "no bagging"
        )
        + f", kept {info['kept_steps']} steps",
        f"- class weights: {info['class_weights']['spec']}"
        + _auto_choice(info["class_weights"])
        + (
            " = " + ", ".join(f"{w:.3f}" for w in info["class_weights"]["vector"])
            if info["class_weights"]["vector"]
            else ""
        ),
        f"- clips: {info['clips']['val']} validation, {info['clips']['test']} test",
        *(
            [
                "- test scores: the members refit on train + val (`search refit`), combined with "
                "the member and class weights chosen on val. Every val figure below is of the "
                "original trials; the refit models' own val accuracy is in-sample and cannot be "
                "measured any more."
            ]
            if source.get("refits")
            else []
        ),
        "",
        "| validation | accuracy | UAR |",
        "|---|---|---|",
        f"| ensemble: val, selected on val (in-sample) | {ins['acc']:.4f} | {ins['uar']:.4f} |",
        f"| ensemble: val, {cv['folds']}-fold cross-validated selection | {cv['acc']:.4f} | {cv['uar']:.4f} |",
        f"| same without class weights: val, {cv['folds']}-fold cross-validated | "
        f"{cv['acc_without_class_weights']:.4f} | {cv['uar_without_class_weights']:.4f} |",
        f"| best single trial ({best['name']}): val, selected on val | {best['acc']:.4f} "
        f"| {best['uar']:.4f} |",
        "",
        "| class | ensemble recall | best single recall |",
        "|---|---|---|",
        *(
            f"| {name} | {ins['recall'][name]:.4f} | {best['recall'][name]:.4f} |"
            for name in classes
        ),
        "",
        *(
            [
                f"| test ({test['clips']} labelled clips: measured, never selected on) | "
                "accuracy (WAR) | UAR |",
                "|---|---|---|",
                f"| ensemble | {test['acc']:.4f} | {test['uar']:.4f} |",
                f"| best single trial ({best['name']}) | {test['best_single_acc']:.4f} | "
                f"{test['best_single_uar']:.4f} |",
                "",
            ]
            if test
            else []
        ),
        "| member | weight | own val acc | run id |",
        "|---|---|---|---|",
        *(
            f"| {m['name']} | {m['weight']:.3f} | {m['val_acc']:.4f} | {m['run_id'] or '-'} |"
            for m in info["members"]
        ),
        "",
    ]
    if info.get("mlflow_run_id"):
        lines.append(f"MLflow run: {info['mlflow_run_id']}")
    return "\n".join(lines) + "\n"


def _probability_table(
    clip_ids: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]
) -> pd.DataFrame:
    table = pd.DataFrame(
        {"clip_id": clip_ids, "emotion": np.asarray(classes)[probs.argmax(axis=1)]}
    )
    for k, name in enumerate(classes):
        table[f"p_{name}"] = probs[:, k]
    return table


def _write_files(ensemble: Ensemble, info: dict, directory: Path) -> None:
    scores = ensemble.scores
    (directory / SUMMARY_FILE).write_text(json.dumps(info, indent=2) + "\n")
    test_table = _probability_table(scores.clip_ids_test, ensemble.test_probs, scores.classes)
    if (scores.labels_test >= 0).any():
        names = np.asarray([*scores.classes, ""])  # -1 (unlabelled) -> ""
        test_table.insert(1, "label", names[scores.labels_test])
    test_table.to_csv(directory / "predictions_test.csv", index=False, float_format="%.6f")
    val_table = _probability_table(scores.clip_ids_val, ensemble.val_probs, scores.classes)
    val_table.insert(1, "label", np.asarray(scores.classes)[scores.labels_val])
    val_table.to_csv(directory / "predictions_val.csv", index=False, float_format="%.6f")
    with zipfile.ZipFile(directory / "submission.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for clip_id, emotion in zip(test_table["clip_id"], test_table["emotion"]):
            # Second guard after the stores': an entry never escapes the extraction folder.
            archive.writestr(f"{guards.check_name(str(clip_id), 'test clip id')}.txt", emotion)
    (directory / "report.md").write_text(render(info))
    name = charts.source_label(info["source"])
    charts.plot_confusion(ensemble, directory / "confusion_val.png", name)
    charts.plot_trajectory(ensemble, directory / "trajectory.png", name)


def write(ensemble: Ensemble, out: Path, info: dict, *, force: bool = False) -> Path:
    """Write every output into ``out`` atomically; an existing ``out`` needs ``force`` and must be
    an ensemble folder (``guards.prepare_out``)."""
    out = Path(out)
    guards.prepare_out(out, force=force, marker=SUMMARY_FILE)
    with staged(out) as staging:
        _write_files(ensemble, info, staging)
    return out


def read(directory: Path) -> dict:
    """The ``ensemble.json`` of an output directory, checked."""
    path = Path(directory) / SUMMARY_FILE
    if not path.is_file():
        raise OutputError(f"{directory}: no {SUMMARY_FILE} (not an ensemble directory)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OutputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise OutputError(f"{path}: format is not {FORMAT!r}")
    if info.get("version") != VERSION:
        raise OutputError(f"{path}: version {info.get('version')!r}, this code reads {VERSION}")
    try:
        render(info)
    except KeyError as exc:
        raise OutputError(f"{path}: incomplete, lacks key {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise OutputError(f"{path}: malformed ({exc})") from None
    return info
