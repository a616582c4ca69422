"""Third-party log lines that tell a researcher nothing, dropped at the logger that emits them (a
filter on that logger, for those messages only: everything else it says still shows).

- Ray's notice that a new local cluster has token authentication on (the default; its warning
  that authentication is *off* stays);
- MLflow's "Creating initial MLflow database tables" / "Updating database tables", printed by
  every process that first opens a SQLite store (the driver, each trial worker);
- Tune's "Trials did not complete: [...]" after the search: the driver already printed a line
  per failed trial with its cause, and the leaderboard counts them;
- Tune's Ctrl+C notices ("Stop signal received", "Experiment has been interrupted ... Resume
  experiment with: Tuner.restore(...)"): the driver prints the interruption and the
  ``python -m search resume`` command that continues the search.
"""

from __future__ import annotations

import logging
import os

_DROPPED = {
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    "mlflow.store.db.utils": (
        "Creating initial MLflow database tables",
        "Updating database tables",
    ),
    "ray.tune.tune": (
        "Trials did not complete",
        "Stop signal received",
        "Experiment has been interrupted",
    ),
}


class _Drop(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_third_party() -> None:
    """Install the filters in this process (once; calling again changes nothing), and turn off
    MLflow's progress bar per artifact download (one bar per small file, many per command)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, prefixes in _DROPPED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(prefixes))
