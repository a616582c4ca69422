"""What the driver prints while a search runs (``ProgressCallback``, a Tune callback).

One line per trial as it ends, either way. On a terminal, below those lines, a live table of the
running trials (id, configuration, epoch, val_acc) redrawn in place with ANSI cursor moves. Without
a terminal (``ray job submit``, a redirected log) nothing is redrawn: after the trial lines, a
summary at most every ``SUMMARY_S`` seconds, only when something changed, and never a carriage
return.

Tune pickles its callbacks with every experiment snapshot and ``Tuner.restore`` brings them back,
so the snapshot keeps only settings and counts; the running trials are relearnt as they report.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass

from ray.tune import Callback

from avcore.results import FAILED, FINISHED, STOPPED_EARLY
from search.callbacks import failure_cause
from search.config import SearchConfig
from search.trial_fields import trial_number_text

SUMMARY_S = 30.0
REDRAW_S = 0.5  # a terminal's table at most twice a second


@dataclass
class _Running:
    label: str
    number: str  # the trial's id as every screen shows it (trial_fields.trial_number_text)
    epoch: int = 0
    val_acc: float | None = None


def _label(config: dict) -> str:
    from trainables.config import trial_label

    return trial_label(config)


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class ProgressCallback(Callback):
    """The trial lines, and the live table (terminal) or the periodic summary (a log)."""

    def __init__(self, config: SearchConfig) -> None:
        self.name, self.trials, self.epochs = (
            config.name,
            config.budget.num_trials,
            config.budget.epochs,
        )
        self.best: float | None = None
        self.done = 0
        self.counts = {FINISHED: 0, STOPPED_EARLY: 0, FAILED: 0}
        self._reset()

    def _reset(self) -> None:
        self._running: dict[str, _Running] = {}
        self._drawn = 0  # table lines on the terminal below the trial lines
        self._last_draw = self._last_summary = 0.0
        self._changed = False
        self._started = time.monotonic()
        self._out = sys.stdout

    def __getstate__(self):  # settings and counts only (see the module's docstring)
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset()

    # Saved with every experiment snapshot, so a resumed search counts on from there.
    def get_state(self) -> dict:
        return {"done": self.done, "best": self.best, "counts": self.counts}

    def set_state(self, state: dict) -> None:
        self.done, self.best = state["done"], state["best"]
        self.counts = state.get("counts", self.counts)

    @property
    def _tty(self) -> bool:
        return self._out.isatty()

    def summary(self) -> str:
        best = _acc(self.best)
        pending = max(0, self.trials - self.done - len(self._running))
        ended = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in self.counts.items())
        minutes, seconds = divmod(int(time.monotonic() - self._started), 60)
        return (
            f"search {self.name}: {self.done}/{self.trials} trials done ({ended}), "
            f"{len(self._running)} running, {pending} pending, best val_acc {best}, "
            f"{minutes}m{seconds:02d}s"
        )

    def _table(self) -> list[str]:
        width = shutil.get_terminal_size((120, 24)).columns - 1
        lines = [self.summary()]
        if self._running:
            lines.append(f"  {'trial':<18} {'epoch':>7} {'val_acc':>7}  configuration")
        for row in sorted(self._running.values(), key=lambda row: (len(row.number), row.number)):
            epoch = f"{row.epoch}/{self.epochs}"
            lines.append(f"  #{row.number:<17} {epoch:>7} {_acc(row.val_acc):>7}  {row.label}")
        return [line[:width] for line in lines]  # a wrapped line would break the redraw

    def _erase(self) -> None:
        if self._drawn:  # up to the table's first line, then clear to the end of the screen
            self._out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            if force or now - self._last_draw >= REDRAW_S:
                self._erase()
                lines = self._table()
                self._out.write("".join(f"{line}\n" for line in lines))
                self._drawn, self._last_draw = len(lines), now
        elif self._changed and (force or now - self._last_summary >= SUMMARY_S):
            self._out.write(self.summary() + "\n")
            self._last_summary, self._changed = now, False
        self._out.flush()

    def _print(self, line: str) -> None:
        """A line that stays: above the terminal's table, or simply next in the log."""
        self._erase()
        self._out.write(line + "\n")
        self._changed = True
        self._show(force=self._tty)

    def _row(self, trial) -> _Running:
        if trial.trial_id not in self._running:
            self._running[trial.trial_id] = _Running(
                _label(trial.config), trial_number_text(trial.config, trial.trial_id)
            )
        return self._running[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._row(trial)
        self._changed = True
        self._show()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = self._row(trial)
        row.epoch = int(result.get("epoch", row.epoch))
        row.val_acc = result.get("val_acc", row.val_acc)
        self._changed = True
        self._show()

    def on_step_end(self, iteration, trials, **info):
        self._show()  # the terminal's clock; a log's summary once SUMMARY_S passed

    def _ended(self, trial, status: str, cause: str = "") -> None:
        result = trial.last_result or {}
        acc = result.get("val_acc")
        if status == FINISHED and acc is not None and (self.best is None or acc > self.best):
            self.best = acc
        self.done += 1
        self.counts[status] = self.counts.get(status, 0) + 1
        self._running.pop(trial.trial_id, None)
        self._print(
            f"trial #{trial_number_text(trial.config, trial.trial_id)} {status:<13} epochs {result.get('epoch', 0)}/{self.epochs}"
            f" val_acc {_acc(acc)}  {_label(trial.config)}"
            + (f"  failed: {cause}" if cause else "")
        )

    def on_trial_complete(self, iteration, trials, trial, **info):
        finished = (trial.last_result or {}).get("finished") == 1
        self._ended(trial, FINISHED if finished else STOPPED_EARLY)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, FAILED, failure_cause(trial))

    def on_experiment_end(self, trials, **info):
        self._erase()
        self._running.clear()
        self._out.write(self.summary() + "\n")
        self._out.flush()
