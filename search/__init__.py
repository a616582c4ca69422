"""Ray Tune + Optuna (TPE) search over the paper's design space, every trial an MLflow run.

    python -m search run conf/search/demo.yaml      # local Ray, MLflow in ./mlruns
    python -m search status demo                    # leaderboard so far
    python -m search resume demo                    # continue an interrupted search

``search/run.py`` is the same ``run`` as a script for ``ray submit`` / ``ray job submit``. README's
"search" section is the tour of the modules, driver first.

The names below are loaded on first use (PEP 562), so ``import search.errors`` costs no pydantic.
"""

from __future__ import annotations

from avcore.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "search.errors": ["ClusterError", "SearchConfigError", "SearchError", "TrackingError"],
        "search.config": ["SearchConfig", "load_search_config"],
    },
)
