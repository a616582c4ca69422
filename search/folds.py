"""Cross-fold results of a fold protocol (DFEW, MAFW: official folds; RAVDESS, CREMA-D: speaker
folds): ``search confirm NAME --top K --folds all`` trains each of the K best configurations on
every fold (child runs tagged ``avfusion.kind=confirm`` and ``avfusion.fold=k``), and this module
reads them back as the table a paper prints: WAR (accuracy) and UAR (mean per-class recall) on
each fold's test clips, and their mean ± std over folds, beside the best published figure the
search config names (``published:``). Every figure is measured on a test fold, never selected on:
each run chose nothing on its test clips (its epochs are fixed, its val part is carved from the
other folds).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from avcore.results import CONFIRM, CONFIRMS, FINISHED, FOLD, KIND, PARENT, STATUS
from search.data_config import PublishedFigure
from search.tracking import client
from trainables.config import trial_label


@dataclass
class FoldResult:
    """One configuration over folds: per fold, the (WAR, UAR) of each seed's run."""

    run_id: str  # the search trial the configuration comes from
    label: str
    runs: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def per_fold(self) -> dict[int, tuple[float, float]]:
        """Each fold's WAR and UAR, the mean over its seeds."""
        return {
            fold: (
                statistics.fmean(war for war, _ in values),
                statistics.fmean(uar for _, uar in values),
            )
            for fold, values in sorted(self.runs.items())
        }

    def summary(self) -> tuple[float, float, float, float]:
        """WAR mean, WAR std, UAR mean, UAR std over folds (std 0 for one fold)."""
        wars = [war for war, _ in self.per_fold().values()]
        uars = [uar for _, uar in self.per_fold().values()]

        def std(values: list[float]) -> float:
            return statistics.stdev(values) if len(values) > 1 else 0.0

        return statistics.fmean(wars), std(wars), statistics.fmean(uars), std(uars)


def fold_results(uri: str, experiment_id: str, parent_run_id: str, table) -> list[FoldResult]:
    """The finished fold runs of a search's configurations, best mean WAR first."""
    runs = client(uri).search_runs(
        [experiment_id],
        f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{KIND}` = '{CONFIRM}' "
        f"and tags.`{STATUS}` = '{FINISHED}'",
        max_results=50000,
    )
    rows = table.set_index("run_id")
    found: dict[str, FoldResult] = {}
    for run in runs:
        fold, trial = run.data.tags.get(FOLD), run.data.tags.get(CONFIRMS)
        metrics = run.data.metrics
        if fold is None or trial not in rows.index or "test_acc" not in metrics:
            continue
        result = found.setdefault(trial, FoldResult(trial, trial_label(rows.loc[trial].to_dict())))
        result.runs.setdefault(int(fold), []).append(
            (float(metrics["test_acc"]), float(metrics["test_uar"]))
        )
    return sorted(found.values(), key=lambda r: -r.summary()[0])


def format_folds(results: list[FoldResult], published=None) -> list[str]:
    """Markdown: one row per configuration, WAR / UAR (%) per fold and mean ± std over folds."""
    folds = sorted({fold for result in results for fold in result.runs})
    lines = [
        "| configuration | "
        + " | ".join(f"fold {fold} WAR / UAR" for fold in folds)
        + " | WAR mean ± std | UAR mean ± std |",
        "|---" * (len(folds) + 3) + "|",
    ]
    for result in results:
        per_fold = result.per_fold()
        cells = [
            f"{100 * per_fold[fold][0]:.2f} / {100 * per_fold[fold][1]:.2f}"
            if fold in per_fold
            else "–"
            for fold in folds
        ]
        war, war_std, uar, uar_std = result.summary()
        lines.append(
            f"| {result.label} ({result.run_id[:8]}) | "
            + " | ".join(cells)
            + f" | {100 * war:.2f} ± {100 * war_std:.2f} | {100 * uar:.2f} ± {100 * uar_std:.2f} |"
        )
    if published is not None and (published.war is not None or published.uar is not None):

        def figure(value: float | None) -> str:
            return "–" if value is None else f"{value:.2f}"

        lines.append(
            f"| best published{f' ({published.source})' if published.source else ''} | "
            + " | ".join("" for _ in folds)
            + f" | {figure(published.war)} | {figure(published.uar)} |"
        )
    return lines


def published_figure(outcome) -> PublishedFigure | None:
    """The search config's ``published:`` figure (from its search.yaml in MLflow), if any."""
    import yaml

    mlflow_client = client(outcome.tracking_uri)
    with tempfile.TemporaryDirectory() as folder:
        path = mlflow_client.download_artifacts(outcome.parent_run_id, "search.yaml", folder)
        raw = yaml.safe_load(Path(path).read_text()) or {}
    published = raw.get("published") if isinstance(raw, dict) else None
    return PublishedFigure.model_validate(published) if published else None
