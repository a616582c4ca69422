"""User-facing errors of the trainables package.

The CLI (``python -m trainables``) prints any ``TrainablesError`` as one line and exits with status
2; ``search`` passes the same classes to its own ``run_cli``.
"""

from __future__ import annotations

from avcore.errors import UserError


class TrainablesError(UserError):
    """A problem with user input that the CLI reports as one clear line."""


class ConfigError(TrainablesError, ValueError):
    """A trial config names an unknown key or registry entry, or holds a value out of range."""


class TrialDataError(TrainablesError):
    """The stores handed to a trial cannot be trained on (no train or val clips, ...)."""
