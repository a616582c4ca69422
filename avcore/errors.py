"""The error base every package's user errors derive from, and the two errors the ground floor
raises itself. A ``UserError``'s message is the one line a CLI prints (exit status 2)."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, a file that is not what it claims, a server away."""


class GuardError(UserError, ValueError):
    """Untrusted input refused: an unsafe name, an output we may not replace, an unreadable file."""


class TrackingError(UserError):
    """The MLflow tracking server does not answer, refuses us, or holds no such search or run."""
