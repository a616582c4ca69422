"""The one error type of ``guards``."""

from __future__ import annotations


class GuardError(ValueError):
    """Untrusted input refused: an unsafe name, an output we may not replace, an unreadable file."""
