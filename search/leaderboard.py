"""A search's leaderboard: every trial run as a table (finished ones first, by val_acc) and its
plain-text form for ``run``, ``resume`` and ``status``. A trial is named by its number in the
search (``#17``), as in its MLflow run's name and the progress lines.

A stopped-early trial's truncated val_acc is kept in the table but never ranked among the
finished; a failed trial shows its one-line cause. ``confirmed_trials``: the trials ``confirm``
retrained, with their val accuracy over seeds (``status``, ``report`` and ``confirm`` rank by its
mean).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from avcore import results
from avcore.results import (
    CONFIRM,
    CONFIRMS,
    EPOCHS_DONE,
    FAILED,
    FINISHED,
    FOLD,
    INTERRUPTED,
    KIND,
    PARENT,
    RUNNING,
    STATUS,
    STOPPED_EARLY,
    TRIAL_ID,
)
from search.tracking import client
from search.trial_runs import trial_runs
from trainables.config import trial_label

LEADERBOARD_COLUMNS = (
    "val_acc",
    "val_uar",
    "visual_feature",
    "audio_feature",
    "visual_attention",
    "audio_attention",
    "fusion",
)


def leaderboard(uri: str, experiment_id: str, parent_run_id: str):
    """Every trial run as a DataFrame: finished ones first by val_acc, then the rest."""
    import pandas as pd

    rows = []
    for run in trial_runs(uri, experiment_id, parent_run_id):
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        rows.append(
            {
                "run_id": run.info.run_id,
                "trial_id": tags.get(TRIAL_ID, ""),
                "status": tags.get(STATUS, ""),
                "epochs": int(tags.get(EPOCHS_DONE, 0) or 0),
                "val_acc": metrics.get("val_acc"),
                "val_uar": metrics.get("val_uar"),
                "node": tags.get(results.NODE_ID, "")[:8],
                **{k: params.get(k) for k in LEADERBOARD_COLUMNS[2:]},
                # both, visual or audio (a single-modality baseline); runs before the param: both
                "modality": params.get("modality") or "both",
                "error": tags.get(results.ERROR, ""),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "trial_id",
            "status",
            "epochs",
            *LEADERBOARD_COLUMNS,
            "modality",
            "node",
            "error",
        ],  # fmt: skip
    )
    table["rank_key"] = (table["status"] == FINISHED).astype(int)
    table = table.sort_values(["rank_key", "val_acc"], ascending=[False, False], na_position="last")
    table = table.drop(columns="rank_key").reset_index(drop=True)
    # A param a trial does not have (a single-modality trial's other variant) stays None, where
    # pandas would make it NaN: every reader of a row tests for None alone.
    params = [*LEADERBOARD_COLUMNS[2:], "modality"]
    table[params] = table[params].astype(object).where(table[params].notna(), None)
    return table


def format_leaderboard(
    table, oracle: Mapping[tuple[str, str], float] | None = None, limit: int = 20
) -> str:
    """A plain-text leaderboard; with ``oracle`` each trial's val_acc beside its pair's oracle."""
    if table.empty:
        return "no trials recorded yet"
    counts = table["status"].value_counts().to_dict()
    lines = [
        "trials: "
        + ", ".join(
            f"{counts.get(s, 0)} {s.replace('_', ' ')}"
            for s in (FINISHED, STOPPED_EARLY, FAILED, RUNNING)
        )
        + (f", {counts[INTERRUPTED]} interrupted" if counts.get(INTERRUPTED) else ""),
        "val_acc: each trial's last epoch, measured on val; ranked on val, so the top row is "
        "selected on val (optimistic: `confirm` re-measures it with fresh seeds)",
    ]
    header = f"{'#':>3} {'trial':<6} {'status':<13} {'ep':>3} {'val_acc':>7}"
    header += f" {'oracle':>6} {'ratio':>6}" if oracle else ""
    header += f"  {'visual':<10} {'audio':<12} {'v-attn':<11} {'a-attn':<11} {'fusion':<6} run"
    lines.append(header)
    for rank, row in enumerate(table.head(limit).itertuples(index=False), 1):
        acc = "" if row.val_acc is None or row.val_acc != row.val_acc else f"{row.val_acc:.4f}"
        trial = f"#{row.trial_id}" if row.trial_id else ""
        line = f"{rank:>3} {trial:<6} {row.status:<13} {row.epochs:>3} {acc:>7}"
        if oracle:
            best = oracle.get((row.visual_feature, row.audio_feature))
            ratio = f"{row.val_acc / best:.3f}" if best and acc else ""
            line += f" {best or float('nan'):>6.4f} {ratio:>6}"
        line += (
            f"  {row.visual_feature or '':<10} {row.audio_feature or '':<12}"
            f" {row.visual_attention or '':<11} {row.audio_attention or '':<11} {_fusion(row):<6}"
            f" {row.run_id[:8]}"
        )
        if row.status == FAILED and row.error:
            line += f"  {row.error[:80]}"
        lines.append(line)
    if len(table) > limit:
        lines.append(f"... {len(table) - limit} more")
    return "\n".join(lines)


def _fusion(row) -> str:
    """The fusion column: the fusion of an audio-visual trial, ``visual-only``/``audio-only``."""
    return row.fusion or ("" if row.modality == "both" else f"{row.modality}-only")


@dataclass(frozen=True)
class Confirmed:
    """A trial ``confirm`` retrained: its search seed's val accuracy and its fresh seeds'."""

    run_id: str
    label: str
    original: float
    retrained: list[float]

    @property
    def values(self) -> list[float]:
        return [self.original, *self.retrained]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def confirmed_trials(uri: str, experiment_id: str, parent_run_id: str, table) -> list[Confirmed]:
    """Every trial of ``table`` (the search's ``leaderboard``) with finished confirm runs, best
    mean first."""
    runs = client(uri).search_runs(
        [experiment_id],
        f"tags.`{PARENT}` = '{parent_run_id}' and tags.`{KIND}` = '{CONFIRM}' "
        f"and tags.`{STATUS}` = '{FINISHED}'",
        max_results=50000,
    )
    by_trial: dict[str, list[float]] = {}
    for run in runs:
        if FOLD in run.data.tags:  # another fold's val part: not a seed of this search's val
            continue
        by_trial.setdefault(run.data.tags[CONFIRMS], []).append(run.data.metrics["val_acc"])
    rows = table.set_index("run_id")
    found = [
        Confirmed(
            run_id, trial_label(rows.loc[run_id].to_dict()), float(rows.loc[run_id].val_acc), values
        )
        for run_id, values in by_trial.items()
        if run_id in rows.index
    ]
    return sorted(found, key=lambda c: -c.mean)
