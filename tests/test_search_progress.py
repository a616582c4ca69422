"""What the driver shows while trials run. search.progress: on a terminal a live table of the
running trials (id, configuration, epoch, val_acc) redrawn in place; in a log one line per ended
trial and a summary at most every 30 s, with no carriage return and no cursor move.
search.study_plots: the parent run's search plots redrawn as trials end."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from test_search_support import DEMO_CONFIG

from search.config import load_search_config
from search.progress import ProgressCallback

CONFIG = {
    "visual_feature": "f-mean",
    "audio_feature": "logmel",
    "visual_attention": "relation",
    "audio_attention": "transformer",
    "fusion": "concat",
}


class Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def callback(tty: bool) -> tuple[ProgressCallback, Stream]:
    config = load_search_config(
        DEMO_CONFIG, ["budget.num_trials=3", "start_grid=[]"], check_stores=False
    )
    progress = ProgressCallback(config)
    stream = Stream(tty)
    progress._out = stream
    return progress, stream


def play(progress: ProgressCallback) -> None:
    trials = [SimpleNamespace(trial_id=f"t{i}", config=CONFIG, last_result={}) for i in range(2)]
    for trial in trials:
        progress.on_trial_start(0, trials, trial)
    for epoch in (1, 2, 3):
        for trial in trials:
            trial.last_result = {"epoch": epoch, "val_acc": 0.1 * epoch}
            progress.on_trial_result(0, trials, trial, trial.last_result)
            progress.on_step_end(0, trials)
    trials[0].last_result = {"epoch": 12, "val_acc": 0.5, "finished": 1}
    progress.on_trial_complete(0, trials, trials[0])
    progress.on_trial_complete(0, trials, trials[1])  # ASHA stopped it at epoch 3
    progress.on_experiment_end(trials)


def test_a_terminal_gets_a_live_table_of_the_running_trials(monkeypatch):
    import search.progress

    monkeypatch.setattr(search.progress, "REDRAW_S", 0)  # every result redrawn
    progress, stream = callback(tty=True)
    play(progress)
    text = stream.getvalue()
    assert "\x1b[" in text and "\r" not in text
    # The table as last drawn before the first trial's line: both trials at epoch 3, val_acc.
    table = text.split("trial #t0 finished")[0].split("\x1b[J")[-2]
    rows = [line.split() for line in table.splitlines()[2:] if not line.startswith("\x1b")]
    assert rows == [
        [f"#t{i}", "3/12", "0.3000", "f-mean+logmel", "relation/transformer", "concat"]
        for i in range(2)
    ]
    assert "trial #t1 stopped_early epochs 3/12 val_acc 0.3000" in text
    assert text.endswith("(1 finished, 1 stopped early, 0 failed), 0 running, 1 pending, "
                         f"best val_acc 0.5000, {text.rsplit(', ', 1)[-1]}")  # fmt: skip


def test_a_log_gets_one_line_per_trial_and_rare_summaries():
    progress, stream = callback(tty=False)
    play(progress)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert [line.split()[:3] for line in lines if line.startswith("trial ")] == [
        ["trial", "#t0", "finished"],
        ["trial", "#t1", "stopped_early"],
    ]
    # Six results within a second: one summary then (the first), one at the end.
    summaries = [line for line in lines if line.startswith("search demo: ")]
    assert len(summaries) == 2, lines
    assert summaries[-1].startswith("search demo: 2/3 trials done (1 finished, 1 stopped early")


def test_the_search_plots_are_redrawn_while_trials_end(tmp_path, monkeypatch):
    """StudyPlotsCallback's thread redraws the parent run's search_plots.html from the study in
    its database after REFRESH_TRIALS ended trials, titled with the trials behind it."""
    import time

    import optuna
    from mlflow.tracking import MlflowClient

    import search.study_plots
    from search.study_plots import PLOTS_FILE, StudyPlotsCallback

    monkeypatch.setattr(search.study_plots, "REFRESH_TRIALS", 3)
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(study_name="demo", storage=storage, direction="maximize")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("demo")).info.run_id
    plots = StudyPlotsCallback("demo", storage, uri, parent)
    plots.setup()
    for i in range(3):
        study.enqueue_trial({"lr": 0.001 * (i + 1), "fusion": ["fbp", "concat"][i % 2]})
        study.optimize(
            lambda t: (
                t.suggest_float("lr", 1e-4, 1e-1, log=True)
                + (t.suggest_categorical("fusion", ["fbp", "concat"]) == "fbp")
            ),
            n_trials=1,
        )
        plots.on_trial_complete(0, [], None)
    deadline = time.time() + 120
    while time.time() < deadline and PLOTS_FILE not in {
        a.path for a in client.list_artifacts(parent)
    }:
        time.sleep(0.5)
    plots.on_experiment_end([])
    page = Path(client.download_artifacts(parent, PLOTS_FILE, str(tmp_path))).read_text()
    assert "search demo: 3 trials (3 finished, 0 pruned, 0 failed, 0 running)" in page
    assert "only 3 finished trials: a rough guide" in page  # the importance's caveat
    assert page.count("Plotly.newPlot") == 3
