"""The parent run's search plots: one interactive HTML page (``search_plots.html``) of Optuna's
plotly figures (optimisation history, parallel coordinates, parameter importances) drawn from the
search's study (``search.study``), each titled with the number of trials behind it.

``StudyPlotsCallback`` redraws the page while the search runs, from a thread of the driver (never
in Tune's loop, never in a trial): after every ``REFRESH_TRIALS`` trials that ended, and at most
``REFRESH_S`` after any trial ended. The driver draws the last version as it closes the search.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import warnings
from datetime import datetime
from pathlib import Path
from typing import Any

from ray.tune import Callback

PLOTS_FILE = "search_plots.html"
METRIC = "val_acc"
REFRESH_TRIALS = 5
REFRESH_S = 120.0
# fANOVA's importances from fewer finished trials than this move a lot from one trial to the next.
FEW_TRIALS = 20
logger = logging.getLogger(__name__)


def _figures(study: Any, finished: int) -> list[tuple[str, Any]]:
    """(heading, plotly figure or the reason it could not be drawn) per plot."""
    from optuna import visualization as vis

    few = (
        f" — only {finished} finished trials: a rough guide, it moves as trials finish"
        if finished < FEW_TRIALS
        else ""
    )
    plots = (
        (f"{METRIC} per trial ({finished} finished)", vis.plot_optimization_history),
        (f"Parameters against {METRIC} ({finished} finished trials)", vis.plot_parallel_coordinate),
        (f"Parameter importance for {METRIC} (fANOVA){few}", vis.plot_param_importances),
    )
    out = []
    for heading, draw in plots:
        try:
            with warnings.catch_warnings():  # Optuna's experimental-feature warnings
                warnings.simplefilter("ignore")
                figure = draw(study, target_name=METRIC)
        except (ValueError, RuntimeError) as exc:  # too few trials, one value per parameter
            out.append((heading, f"not drawn yet: {exc}"))
            continue
        figure.update_layout(title=heading, height=520, margin={"l": 80, "r": 40, "t": 110})
        # Long categorical labels (attention kinds, store variants) slant instead of overlapping.
        figure.update_traces(labelangle=-20, selector={"type": "parcoords"})
        out.append((heading, figure))
    return out


def draw_study_plots(study: Any, folder: Path) -> Path:
    """``search_plots.html`` in ``folder``: plotly.js embedded once, so it opens offline (MLflow's
    artifact view, a browser on a cluster's head)."""
    import html

    import optuna

    trials = study.get_trials(deepcopy=False)
    State = optuna.trial.TrialState
    words = {State.COMPLETE: "finished", State.PRUNED: "pruned", State.FAIL: "failed"}
    counts = {state: sum(t.state == state for t in trials) for state in (*words, State.RUNNING)}
    finished = counts[State.COMPLETE]
    summary = ", ".join(f"{n} {words.get(s, 'running')}" for s, n in counts.items())
    title = f"search {study.study_name}: {len(trials)} trials ({summary})"
    parts, embedded = [], False
    for heading, figure in _figures(study, finished):
        if isinstance(figure, str):
            parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(figure)}</p>")
            continue
        parts.append(figure.to_html(full_html=False, include_plotlyjs=not embedded))
        embedded = True
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    page = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body style='font-family:sans-serif'><h1>{html.escape(title)}</h1>"
        f"<p>pruned = stopped early by ASHA; drawn {stamp}</p>{''.join(parts)}</body></html>"
    )
    path = Path(folder, PLOTS_FILE)
    path.write_text(page, encoding="utf-8")
    return path


class StudyPlotsCallback(Callback):
    """Redraws the parent run's ``search_plots.html`` from the study while trials run."""

    def __init__(self, study_name: str, storage_url: str, uri: str, parent_run_id: str) -> None:
        self.study_name, self.storage_url = study_name, storage_url
        self.uri, self.parent_run_id = uri, parent_run_id
        self.ended = 0
        self._reset()

    def _reset(self) -> None:
        self._drawn = self.ended
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self):  # Tune pickles callbacks with every snapshot: settings only
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    def setup(self, **info):
        self._thread = threading.Thread(target=self._loop, name="study-plots", daemon=True)
        self._thread.start()

    def _ended(self) -> None:
        self.ended += 1
        if self.ended - self._drawn >= REFRESH_TRIALS:
            self._wake.set()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended()

    def on_experiment_end(self, trials, **info):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=120)

    def _loop(self) -> None:
        import optuna

        from search.study import open_storage
        from search.tracking import client

        storage = None
        while not self._stop.is_set():
            self._wake.wait(REFRESH_S)
            self._wake.clear()
            ended = self.ended
            if self._stop.is_set() or ended == self._drawn:
                continue
            try:
                storage = storage or open_storage(self.storage_url)
                study = optuna.load_study(study_name=self.study_name, storage=storage)
                with tempfile.TemporaryDirectory() as folder:
                    page = draw_study_plots(study, Path(folder))
                    client(self.uri).log_artifact(self.parent_run_id, str(page))
                self._drawn = ended
            except Exception:  # noqa: BLE001 - a plot must never stop the search
                logger.warning("search plots not refreshed", exc_info=True)
