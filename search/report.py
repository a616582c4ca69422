"""``python -m search report NAME``: the paper's study tables from one search, with honest marks.

- Table 2: the best val accuracy of every visual attention × audio attention pair, under FBP and
  under concatenation, with the number of finished trials behind each cell.
- Table 3: the best val accuracy per visual feature variant and per audio feature variant (over
  the audio-visual trials), and the single-modality baselines per variant when the search ran them
  (``space.modality``).

On planted stores each cell stands beside the exact oracle of its best trial's stores. Every
figure is "val, selected on val": the best of several trials on the clips it is scored on. A cell
marked ``≈`` is not distinguishable from its table's best cell: a paired bootstrap over the
validation clips (the two trials' per-clip hits resampled together) puts 0 inside the 95 %
interval of their accuracy difference. The report is written as markdown with a heatmap PNG and
logged to the search's parent run.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avcore.results import (
    FINISHED,
    SCORES_FILE,
    read_scores,
)
from search.errors import TrackingError
from search.folds import FoldResult, fold_results, format_folds, published_figure
from search.leaderboard import Confirmed, confirmed_trials
from search.outcome import SearchOutcome
from search.tracking import client as mlflow_client

ATTENTION_ORDER = ("mean", "self", "relation", "transformer")
FUSION_ORDER = ("fbp", "concat")
BOOTSTRAP = 2000
SELECTED = "val, selected on val"


@dataclass(frozen=True)
class Cell:
    best: float | None  # best finished val_acc, None when no trial finished here
    finished: int
    run_id: str | None
    oracle: float | None
    similar: bool = False  # not distinguishable from the table's best cell


def paired_bootstrap_supports(
    hits_a: np.ndarray, hits_b: np.ndarray, *, rounds: int = BOOTSTRAP, seed: int = 0
) -> bool:
    """Whether accuracy(a) - accuracy(b) stays on one side of 0 in the 95 % interval when the
    validation clips are resampled with replacement (the same clips for both: paired)."""
    rng = np.random.default_rng(seed)
    difference = hits_a.astype(np.float64) - hits_b.astype(np.float64)
    index = rng.integers(0, len(difference), size=(rounds, len(difference)))
    low, high = np.percentile(difference[index].mean(axis=1), [2.5, 97.5])
    return bool(low > 0 or high < 0)


def _cell(table, oracle, **where) -> Cell:
    rows = table[(table["status"] == FINISHED)]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    if rows.empty:
        return Cell(None, 0, None, None)
    best = rows.sort_values("val_acc", ascending=False).iloc[0]
    pair = oracle.get((best["visual_feature"], best["audio_feature"]))
    return Cell(float(best["val_acc"]), len(rows), best["run_id"], pair)


def _mark_similar(cells: dict, hits: dict[str, np.ndarray]) -> dict:
    """``similar`` on every filled cell whose difference to the best one the bootstrap does not
    support (the best cell itself is left unmarked)."""
    filled = {k: c for k, c in cells.items() if c.best is not None}
    if len(filled) < 2:
        return cells
    top_key = max(filled, key=lambda k: filled[k].best)
    top = filled[top_key]
    marked = dict(cells)
    for key, cell in filled.items():
        if key != top_key and cell.run_id != top.run_id:
            similar = not paired_bootstrap_supports(hits[top.run_id], hits[cell.run_id])
            marked[key] = Cell(cell.best, cell.finished, cell.run_id, cell.oracle, similar)
    return marked


def _val_hits(uri: str, run_ids: set[str]) -> dict[str, np.ndarray]:
    """Each run's per-clip correctness on val, in one clip order (from its ``scores.npz``)."""
    client = mlflow_client(uri)
    hits, order = {}, None
    with tempfile.TemporaryDirectory() as folder:
        for run_id in sorted(run_ids):
            into = Path(folder, run_id)
            into.mkdir()  # MLflow 2.10 downloads only into a folder that exists
            path = client.download_artifacts(run_id, SCORES_FILE, str(into))
            scores = read_scores(path, f"run {run_id}", error=TrackingError)
            ids, right = scores["clip_ids_val"], scores["val"].argmax(1) == scores["labels_val"]
            if order is None:
                order = {clip: i for i, clip in enumerate(ids)}
            aligned = np.empty(len(order), dtype=bool)
            aligned[[order[clip] for clip in ids]] = right
            hits[run_id] = aligned
    return hits


def _ordered(column) -> list[str]:
    """The distinct values of a leaderboard column, attention kinds in the paper's order first."""
    present = set(column.dropna())
    return [a for a in ATTENTION_ORDER if a in present] + sorted(present - set(ATTENTION_ORDER))


@dataclass(frozen=True)
class Report:
    table2: dict[str, dict[tuple[str, str], Cell]]  # fusion -> (visual, audio attention) -> cell
    visual: dict[str, Cell]
    audio: dict[str, Cell]
    alone: dict[tuple[str, str], Cell]  # (modality, variant) -> a single-modality baseline
    trials: int
    confirmed: list[Confirmed]  # the trials `confirm` retrained, best mean first
    folds: list[FoldResult]  # the configurations `confirm --folds` trained on every fold
    published: Any = None  # the search config's published figure, if any


def build_report(outcome: SearchOutcome, published: Any = None) -> Report:
    table, oracle = outcome.leaderboard, outcome.oracle
    fused = table[table["modality"] == "both"]
    attentions = _ordered(fused["visual_attention"])
    audio_attentions = _ordered(fused["audio_attention"])
    table2 = {
        fusion: {
            (v, a): _cell(table, oracle, fusion=fusion, visual_attention=v, audio_attention=a)
            for v in attentions
            for a in audio_attentions
        }
        for fusion in FUSION_ORDER
    }
    visual = {
        v: _cell(table, oracle, modality="both", visual_feature=v)
        for v in _ordered(table["visual_feature"])
    }
    audio = {
        a: _cell(table, oracle, modality="both", audio_feature=a)
        for a in _ordered(table["audio_feature"])
    }
    # The single-modality baselines (space.modality), per store variant.
    alone = {
        (modality, variant): _cell(table, oracle, modality=modality, **{column: variant})
        for modality in ("visual", "audio")
        for column in [f"{modality}_feature"]
        for variant in _ordered(table.loc[table["modality"] == modality, column])
    }
    every = [c for cells in (*table2.values(), visual, audio, alone) for c in cells.values()]
    run_ids = {c.run_id for c in every if c.run_id}
    hits = _val_hits(outcome.tracking_uri, run_ids) if run_ids else {}
    # Table 2's cells compete across both fusions: FBP against concatenation is the question.
    both = {(f, *k): c for f, cells in table2.items() for k, c in cells.items()}
    both = _mark_similar(both, hits)
    table2 = {f: {k[1:]: c for k, c in both.items() if k[0] == f} for f in FUSION_ORDER}
    return Report(
        table2,
        _mark_similar(visual, hits),
        _mark_similar(audio, hits),
        _mark_similar(alone, hits),
        len(table),
        confirmed_trials(outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id, table),
        fold_results(outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id, table),
        published,
    )


def _text(cell: Cell) -> str:
    if cell.best is None:
        return "–"
    text = f"{cell.best:.3f}{' ≈' if cell.similar else ''} (n={cell.finished})"
    return text + (f" / oracle {cell.oracle:.3f}" if cell.oracle else "")


def render(report: Report, name: str) -> str:
    lines = [
        f"# Search {name}: the paper's tables",
        "",
        f"{report.trials} trial runs. Each cell: best val accuracy ({SELECTED}) of the finished "
        "trials behind it, their number n, and on planted stores the exact oracle of that best "
        "trial's stores. ≈: not distinguishable from the table's best cell (paired bootstrap "
        f"over validation clips, {BOOTSTRAP} resamples, 95 %).",
    ]
    for fusion, cells in report.table2.items():
        visual = list(dict.fromkeys(k[0] for k in cells))
        audio = list(dict.fromkeys(k[1] for k in cells))
        lines += ["", f"## Table 2 — {fusion}: visual attention (rows) × audio attention", ""]
        lines += [
            "| visual \\ audio | " + " | ".join(audio) + " |",
            "|---" * (len(audio) + 1) + "|",
        ]
        lines += [
            f"| {v} | " + " | ".join(_text(cells[(v, a)]) for a in audio) + " |" for v in visual
        ]
    for title, cells in (("visual feature", report.visual), ("audio feature", report.audio)):
        lines += ["", f"## Table 3 — per {title} (audio-visual trials)", ""]
        lines += [f"| {title} | best val acc |", "|---|---|"]
        lines += [f"| {key} | {_text(cell)} |" for key, cell in cells.items()]
    lines += ["", "## Table 3 — single-modality baselines", ""]
    if report.alone:
        lines += ["| modality | feature | best val acc |", "|---|---|---|"]
        lines += [f"| {m} alone | {v} | {_text(c)} |" for (m, v), c in report.alone.items()]
    else:
        lines.append(
            "This search ran no single-modality trial (the paper's audio alone, 38 %): add "
            "`--set 'space.modality=[both,visual,audio]'` to run them beside the fused ones."
        )
    if report.confirmed:
        lines += [
            "",
            "## Confirmed: val accuracy over seeds (`search confirm`), ranked by the mean",
            "",
            "Each row: the search's trial and its retrains with fresh seeds, the same configuration.",
            "",
            "| configuration | mean | std | seeds | values |",
            "|---|---|---|---|---|",
        ]
        for c in report.confirmed:
            listed = ", ".join(f"{v:.3f}" for v in c.values)
            lines.append(
                f"| {c.label} ({c.run_id[:8]}) | {c.mean:.4f} | {c.std:.4f} | {len(c.values)} "
                f"| {listed} |"
            )
    if report.folds:
        lines += [
            "",
            "## Over folds: test WAR / UAR (%) per fold (`search confirm --folds`)",
            "",
            "Each fold's figure: the configuration trained on the other folds (its val part carved "
            "from them with the search's seed), measured once on the fold's test clips, the mean "
            "over its seeds; then mean ± std over folds.",
            "",
            *format_folds(report.folds, report.published),
        ]
    return "\n".join(lines) + "\n"


def plot_table2(report: Report, path: Path, name: str) -> Path:
    """Heatmaps of Table 2, FBP and concatenation side by side on one colour scale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = [c.best for cells in report.table2.values() for c in cells.values() if c.best]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    fig = Figure(figsize=(10, 4.4))
    fig.subplots_adjust(left=0.1, right=0.9, bottom=0.2, top=0.83, wspace=0.45)
    fig.suptitle(f"{name}: best val accuracy (selected on val) per attention pair", fontsize=10)
    image = None
    for col, (fusion, cells) in enumerate(report.table2.items()):
        ax = fig.add_subplot(1, 2, col + 1)
        if not cells:  # a search of single-modality trials alone: no audio-visual trial
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{fusion}: no audio-visual trial", ha="center", va="center")
            continue
        visual = list(dict.fromkeys(k[0] for k in cells))
        audio = list(dict.fromkeys(k[1] for k in cells))
        grid = np.array([[cells[(v, a)].best or np.nan for a in audio] for v in visual])
        image = ax.imshow(grid, cmap="viridis", vmin=low, vmax=high)
        for i, v in enumerate(visual):
            for j, a in enumerate(audio):
                cell = cells[(v, a)]
                mark = "≈" if cell.similar else ""
                label = "–" if cell.best is None else f"{cell.best:.3f}{mark}\nn={cell.finished}"
                ax.text(j, i, label, ha="center", va="center", fontsize=8, color="white")
        ax.set_xticks(range(len(audio)), audio, rotation=30, ha="right")
        ax.set_yticks(range(len(visual)), visual)
        ax.set_xlabel("audio attention")
        ax.set_ylabel("visual attention")
        ax.set_title(fusion)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, fraction=0.03, label="val acc")
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=160)
    return path


def write_report(outcome: SearchOutcome, out: Path | None = None) -> tuple[str, Path]:
    """Build, write (``out`` or a temporary folder) and log to the parent run; returns the text
    and the folder it was written to."""
    report = build_report(outcome, published_figure(outcome))
    text = render(report, outcome.name)
    folder = out or Path(tempfile.mkdtemp(prefix="search-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(text)
    plot_table2(report, folder / "table2.png", outcome.name)
    client = mlflow_client(outcome.tracking_uri)
    client.log_artifacts(outcome.parent_run_id, str(folder), artifact_path="report")
    return text, folder
