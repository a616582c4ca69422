"""A search's leaderboard: every trial run as a table (finished ones first, by val_acc) and its
plain-text form for ``run``, ``resume`` and ``status``. A trial is named by its number in the
search (``#17``), as in its MLflow run's name and the progress lines.

A stopped-early trial's truncated val_acc is kept in the table but never ranked among the
finished; a failed trial shows its one-line cause.
"""

from __future__ import annotations

from collections.abc import Mapping

from avcore import results
from avcore.results import (
    EPOCHS_DONE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    RUNNING,
    STATUS,
    STOPPED_EARLY,
    TRIAL_ID,
)
from search.trial_runs import trial_runs

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
    return table.drop(columns="rank_key").reset_index(drop=True)


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
            best = oracle_of(oracle, row.visual_feature, row.audio_feature)
            ratio = f"{row.val_acc / best:.3f}" if best and acc else ""
            line += f" {best or float('nan'):>6.4f} {ratio:>6}"
        line += (
            f"  {_str(row.visual_feature):<10} {_str(row.audio_feature):<12}"
            f" {_str(row.visual_attention):<11} {_str(row.audio_attention):<11} {_fusion(row):<6}"
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
    return _str(row.fusion) or ("" if row.modality == "both" else f"{row.modality}-only")


def _str(value: object) -> str:
    """A leaderboard cell as text: empty for a param the trial has not (None, or pandas' NaN)."""
    return value if isinstance(value, str) else ""


def oracle_of(oracle: Mapping[tuple, float], visual: object, audio: object) -> float | None:
    """The planted oracle of a trial's stores (``search.stores.oracle_table``), given a leaderboard
    row's variants: NaN or None where the trial does not read a modality."""
    return oracle.get(
        (visual if isinstance(visual, str) else None, audio if isinstance(audio, str) else None)
    )
