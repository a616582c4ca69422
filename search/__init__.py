"""Ray Tune + Optuna (TPE) search over the paper's design space, every trial an MLflow run.

    python -m search run conf/search/demo.yaml      # local Ray, MLflow in ./mlruns
    python -m search status demo                    # leaderboard so far
    python -m search resume demo                    # continue an interrupted search

``search/run.py`` is the same ``run`` as a script for ``ray submit`` / ``ray job submit``.
"""

from __future__ import annotations

from search.config import SearchConfig, load_search_config
from search.errors import ClusterError, SearchConfigError, SearchError, TrackingError

__all__ = [
    "ClusterError",
    "SearchConfig",
    "SearchConfigError",
    "SearchError",
    "TrackingError",
    "load_search_config",
]
