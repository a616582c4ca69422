"""search ``mode: reproducible``: the same config and seed give the same search (search.ordered).

Without Ray, the searcher and ``OrderedASHA`` are driven as Tune drives them, one epoch of one
running trial at a time in an order drawn at random: what they propose and decide is the same for
any order, any ``max_concurrent`` and after a resume from any snapshot, and ``OrderedASHA`` with a
window of 1 decides as Ray's ASHA does on trials run one after another. With Ray (slow), the smoke
search at 1 and 2 trials at once, beside a busy loop, and killed then resumed, leaves the same
runs in MLflow: params, statuses, epochs, val_acc and val_loss.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_search_resume import finished_trial_runs, kill_group, resume
from test_search_support import DEMO_CONFIG, cli_env, run_cli, search_args, write_tiny_stores

from search.config import load_search_config

EPOCHS = 6


def _config(*overrides: str, mode: str = "reproducible", trials: int = 16):
    return load_search_config(
        DEMO_CONFIG,
        [f"budget.num_trials={trials}", "start_grid=[]", f"budget.epochs={EPOCHS}",
         "budget.grace_period=1", "budget.reduction_factor=2", f"mode={mode}", *overrides],
        check_stores=False,
    )  # fmt: skip


def _curve(config: dict[str, Any]) -> list[float]:
    """A trial's val_acc per epoch: a function of its params, as deterministic training gives."""
    params = sorted((k, v) for k, v in config.items() if k != "trial_number")
    level = int(hashlib.sha256(repr(params).encode()).hexdigest()[:8], 16) / 16**8
    return [round(level * (0.5 + epoch / (2 * EPOCHS)), 6) for epoch in range(1, EPOCHS + 1)]


@dataclass
class _Running:
    trial: Any
    curve: list[float]
    epoch: int = 0
    ended: bool = False


class FakeTune:
    """What Tune does with a search's searcher and scheduler: asks for trials while the searcher
    gives them, then lets one epoch of one running trial (drawn by ``rng``) report."""

    def __init__(self, searcher, scheduler, trials: int, prefix: str = "t") -> None:
        self.searcher, self.scheduler, self.trials, self.prefix = (
            searcher,
            scheduler,
            trials,
            prefix,
        )
        self.controller = SimpleNamespace(search_alg=SimpleNamespace(searcher=searcher))
        self.runs: dict[str, _Running] = {}
        self.outcomes: dict[int, tuple] = {}  # number -> (config, epochs)

    def run(self, rng: random.Random, steps: int | None = None) -> None:
        while steps is None or steps > 0:
            while len(self.runs) < self.trials:
                trial_id = f"{self.prefix}{len(self.runs)}"
                config = self.searcher.suggest(trial_id)
                if config is None:
                    break
                trial = SimpleNamespace(trial_id=trial_id, config=config)
                self.scheduler.on_trial_add(self.controller, trial)
                self.runs[trial_id] = _Running(trial, _curve(config))
            running = [trial_id for trial_id, run in self.runs.items() if not run.ended]
            if not running:
                return
            self._epoch(self.runs[rng.choice(running)])
            steps = None if steps is None else steps - 1

    def _epoch(self, run: _Running) -> None:
        run.epoch += 1
        result = {
            "val_acc": run.curve[run.epoch - 1],
            "training_iteration": run.epoch,
            "finished": int(run.epoch == EPOCHS),
        }
        if self.scheduler.on_trial_result(self.controller, run.trial, result) == "STOP":
            self.scheduler.on_trial_complete(self.controller, run.trial, result)
            self.searcher.on_trial_complete(run.trial.trial_id, result)
            run.ended = True
            self.outcomes[run.trial.config["trial_number"]] = (run.trial.config, run.epoch)
        else:
            self.searcher.on_trial_result(run.trial.trial_id, result)

    def restarted(self, searcher, scheduler) -> FakeTune:
        """Tune restored from a snapshot taken now: ended trials stay ended, running ones start
        again from their first epoch under the same ids, new trials get new ids."""
        tune = FakeTune(searcher, scheduler, self.trials, prefix="r")
        for trial_id, run in self.runs.items():
            tune.runs[trial_id] = _Running(
                run.trial, run.curve, run.epoch if run.ended else 0, run.ended
            )
        tune.outcomes = dict(self.outcomes)
        return tune


def _search(config, storage):
    from search.adapter import METRIC, MODE, make_searcher

    searcher = make_searcher(config, storage=storage)
    searcher.set_search_properties(METRIC, MODE, {})
    return searcher, _scheduler(config)


def _scheduler(config):
    from search.adapter import METRIC, MODE
    from search.schedulers import make_scheduler

    scheduler = make_scheduler(config.budget, config.mode)
    scheduler.set_search_properties(METRIC, MODE)
    return scheduler


def _outcome(config, order: int) -> dict[int, tuple]:
    import optuna

    tune = FakeTune(*_search(config, optuna.storages.InMemoryStorage()), config.budget.num_trials)
    tune.run(random.Random(order))
    return tune.outcomes


def test_proposals_and_rung_decisions_do_not_depend_on_end_order_or_concurrency():
    """16 trials, window 4, the paper-best start point first: the same configs and the same
    stopped/finished epochs for 1, 2 and 4 trials at once and three end orders each; in async mode
    the same draws give different searches (the test would see a dependence)."""
    outcomes = {
        (concurrent, order): _outcome(_config(f"budget.max_concurrent={concurrent}"), order)
        for concurrent in (1, 2, 4)
        for order in range(3)
    }
    first = outcomes[1, 0]
    assert all(outcome == first for outcome in outcomes.values())
    epochs = [epochs for _, epochs in first.values()]
    assert 1 in epochs and EPOCHS in epochs  # ASHA stopped some, others finished
    start = load_search_config(DEMO_CONFIG, check_stores=False).start_from[0]
    assert {k: first[0][0][k] for k in start} == start
    async_outcomes = [
        _outcome(_config("budget.max_concurrent=2", mode="async"), o) for o in (0, 1, 2)
    ]
    assert any(outcome != async_outcomes[0] for outcome in async_outcomes[1:])


@pytest.mark.parametrize(("snapshot", "killed"), [(0, 50), (10, 30), (25, 26), (40, 90)])
def test_a_search_resumed_from_any_snapshot_ends_as_the_uninterrupted_one(
    tmp_path: Path, snapshot: int, killed: int
):
    """Tune's snapshot (the searcher's state) at step ``snapshot``, the driver killed at step
    ``killed`` (trials proposed, ended and told in the study after the snapshot), then restored
    as Tune restores: the same trials under the same numbers, the same outcomes, the same study
    (states, values, params) as a search never interrupted."""
    import optuna

    from search.study import open_storage

    config = _config("budget.max_concurrent=2")

    def study(url: str) -> list[tuple]:
        trials = optuna.load_study(study_name=config.name, storage=url).trials
        return [(t.number, t.state, t.value, t.params, t.intermediate_values) for t in trials]

    whole = FakeTune(*_search(config, open_storage(f"sqlite:///{tmp_path}/whole.db")), 16)
    whole.run(random.Random(7))
    url = f"sqlite:///{tmp_path}/killed.db"
    searcher, scheduler = _search(config, open_storage(url))
    tuner_pkl = pickle.dumps(searcher)  # what Tune keeps of the searcher it was given
    tune, rng = FakeTune(searcher, scheduler, 16), random.Random(snapshot)
    tune.run(rng, snapshot)
    state = searcher.get_state()
    searcher.searcher.save(str(tmp_path / "searcher.pkl"))
    at_snapshot = tune.restarted(None, None)
    tune.run(rng, killed - snapshot)  # then the driver dies
    restored = pickle.loads(tuner_pkl)
    restored.set_state(state)
    restored.searcher.restore(str(tmp_path / "searcher.pkl"))
    resumed = at_snapshot.restarted(restored, _scheduler(config))
    resumed.run(random.Random(killed))
    assert resumed.outcomes == whole.outcomes
    assert study(url) == study(f"sqlite:///{tmp_path}/whole.db")


def test_ordered_asha_with_window_1_decides_as_rays_asha_on_sequential_trials():
    """Trials one after another: Ray's ASHA has seen every earlier trial at each rung, which is
    what OrderedASHA judges against with a window of 1; grouped by fusion, both alike."""
    import optuna

    config = _config("budget.window=1", "budget.max_concurrent=1", trials=24)
    searcher, ordered = _search(config, optuna.storages.InMemoryStorage())
    asha = _scheduler(config.model_copy(update={"mode": "async"}))
    controller = SimpleNamespace(search_alg=SimpleNamespace(searcher=searcher))
    decisions = []
    for index in range(24):
        trial = SimpleNamespace(trial_id=f"t{index}", config=searcher.suggest(f"t{index}"))
        asha.on_trial_add(controller, trial)
        for epoch, value in enumerate(_curve(trial.config), 1):
            result = {"val_acc": value, "training_iteration": epoch}
            decision = ordered.on_trial_result(controller, trial, result)
            assert asha.on_trial_result(controller, trial, result) == decision, (index, epoch)
            if decision == "STOP":
                asha.on_trial_complete(controller, trial, result)
                searcher.on_trial_complete(trial.trial_id, result)
                decisions.append(epoch)
                break
            searcher.on_trial_result(trial.trial_id, result)
    assert len(set(decisions)) > 1, decisions  # some cut early, some ran to the end


def test_results_held_back_when_the_search_ended_are_told_from_the_runs(tmp_path: Path):
    """A time limit can end a reproducible search while results are held back: the driver then
    tells the study how each trial's run ended (finished, stopped early, failed); a trial with no
    ended run stays running."""
    import optuna
    import pandas as pd

    from search.study import tell_held_back

    url = f"sqlite:///{tmp_path}/optuna.db"
    config = _config(f"tracking.optuna_storage={url}")
    study = optuna.create_study(study_name=config.name, storage=url, direction="maximize")
    for _ in range(4):
        study.ask().report(0.1, 1)
    table = pd.DataFrame(
        {"trial_id": ["0", "1", "2", "3"], "val_acc": [0.5, 0.1, None, None],
         "status": ["finished", "stopped_early", "failed", "interrupted"]}
    )  # fmt: skip
    assert tell_held_back(config, table) == 3
    trials = optuna.load_study(study_name=config.name, storage=url).trials
    assert [(t.state.name, t.value) for t in trials] == [
        ("COMPLETE", 0.5), ("PRUNED", 0.1), ("FAIL", None), ("RUNNING", None)
    ]  # fmt: skip


def test_the_report_draws_table_2_of_a_search_without_audio_visual_trials(tmp_path: Path):
    """With ``space.modality`` a short search may draw single-modality trials alone (the smoke of
    tests/test_search_modality.py does, seeded per trial): Table 2's figure says so, no crash."""
    from search.report import Report, plot_table2

    report = Report({"fbp": {}, "concat": {}}, {}, {}, {}, 2, [], [], None)
    assert plot_table2(report, tmp_path / "table2.png", "demo").stat().st_size > 0


def test_a_search_saved_before_modes_resumes_as_the_async_search_it_was(tmp_path: Path):
    import yaml

    from search.storage import CONFIG_FILE, load_search, save_search

    config = _config(f"storage_path={tmp_path}", "stores.root=/nowhere")
    save_search(config, "parent", "sqlite:///x.db")
    saved = tmp_path / config.name / CONFIG_FILE
    state = yaml.safe_load(saved.read_text())
    assert state["config"].pop("mode") == "reproducible"
    saved.write_text(yaml.safe_dump(state))
    with pytest.MonkeyPatch.context() as patch:  # the stores are not there: no need here
        patch.setattr("search.config.check_store_paths", lambda config, source: None)
        assert load_search(config.name, str(tmp_path))[0].mode == "async"


def _runs(work: Path) -> dict[str, tuple]:
    """trial number -> (params, status, epochs, val_acc, val_loss) of the search's trial runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("demo")
    runs = client.search_runs([experiment.experiment_id], "tags.`avfusion.kind` = 'trial'")
    return {
        run.data.tags["avfusion.trial_id"]: (
            run.data.params,
            run.data.tags["avfusion.status"],
            run.data.tags["avfusion.epochs_done"],
            run.data.metrics.get("val_acc"),
            run.data.metrics.get("val_loss"),
        )
        for run in runs
    }


def _smoke_args(work: Path, *extra: str) -> list[str]:
    """The smoke search, 8 trials of 3 epochs (window 2: TPE proposes from trial 4 on, ASHA
    judges at epochs 1 and 2), on 2 local CPUs."""
    root = work.parent / "stores"
    if not root.exists():
        write_tiny_stores(root)
    return search_args(
        root, work, "--num-cpus", "2", "--set", "budget.num_trials=8",
        "--set", "budget.epochs=3", "--set", "seed=5", *extra,
    )  # fmt: skip


def _smoke(work: Path, *extra: str) -> dict[str, tuple]:
    work.mkdir(parents=True)
    result = run_cli("search", _smoke_args(work, *extra), work, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _runs(work)


@pytest.fixture(scope="module")
def two_at_once(tmp_path_factory) -> dict[str, tuple]:
    return _smoke(tmp_path_factory.mktemp("repro") / "two")


@pytest.mark.slow
def test_the_smoke_search_is_the_same_one_at_a_time_two_at_once_and_under_load(
    two_at_once, tmp_path: Path
):
    statuses = {status for _, status, *_ in two_at_once.values()}
    assert len(two_at_once) == 8 and {"finished", "stopped_early"} <= statuses, two_at_once
    assert _smoke(tmp_path / "one", "--set", "budget.max_concurrent=1") == two_at_once
    # A busy loop beside it (niced, or the smoke search takes 4 times as long on 2 cores): the
    # trials share the CPUs with it, so they end in other orders and at other moments.
    busy = subprocess.Popen([sys.executable, "-c", "import os; os.nice(10)\nwhile True: pass"])
    try:
        assert _smoke(tmp_path / "busy") == two_at_once
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.slow
def test_a_killed_search_resumed_ends_as_the_uninterrupted_one(two_at_once, tmp_path: Path):
    """The driver (and its Ray) SIGKILLed once a trial finished, then ``resume``: the same runs
    as the search never interrupted."""
    work = tmp_path / "killed"
    work.mkdir()
    log = (work / "run.log").open("w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "search", *_smoke_args(work)],
        cwd=work, env=cli_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 180
        while time.time() < deadline and driver.poll() is None:
            if finished_trial_runs(work / "mlruns" / "mlflow.db"):
                break
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        kill_group(driver)
        log.close()
    before = _runs(work)
    assert len(before) < 8 or "running" in {s for _, s, *_ in before.values()}, before
    resume(work)
    assert _runs(work) == two_at_once
