"""User-facing errors of the search package, printed by ``python -m search`` as one line (exit 2)."""

from __future__ import annotations

from avcore.errors import UserError


class SearchError(UserError):
    """A problem the user can fix: bad config, missing stores, unreachable tracking server, ..."""


class SearchConfigError(SearchError, ValueError):
    """A search config names an unknown key or holds a value out of range."""


class TrackingError(SearchError):
    """The MLflow tracking server does not answer, or holds no such search."""


class ClusterError(SearchError):
    """The Ray cluster cannot run the search as configured (e.g. GPUs asked for, none there)."""
