"""Ray Tune + Optuna (TPE) search over the paper's design space, every trial an MLflow run.

    python -m search run conf/search/demo.yaml      # local Ray, MLflow in ./mlruns
    python -m search status demo                    # leaderboard so far
    python -m search resume demo                    # continue an interrupted search

``search/run.py`` is the same ``run`` as a script for ``ray submit`` / ``ray job submit``. README's
"search" section is the tour of the modules, driver first.

The names below are loaded on first use (PEP 562), so ``import search.errors`` costs no pydantic.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClusterError": "search.errors",
    "SearchConfigError": "search.errors",
    "SearchError": "search.errors",
    "TrackingError": "search.errors",
    "SearchConfig": "search.config",
    "load_search_config": "search.config",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
