"""What a search leaves, as ``run``, ``resume``, ``status``, ``report`` and the retrains read it:
``SearchOutcome`` (where it is recorded, its leaderboard, the planted oracle), and
``search_status``, which rebuilds one from MLflow alone (no Ray needed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from avcore import tracking as where
from search.errors import SearchError, TrackingError
from search.leaderboard import leaderboard
from search.parent_run import find_parent_run
from search.stores import oracle_table
from search.tracking import client, one_line_errors


@dataclass
class SearchOutcome:
    """What a finished (or resumed) search leaves: where it is recorded and its leaderboard."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    leaderboard: Any
    oracle: dict[tuple[str, str], float]
    # Stopped by Ctrl+C (SIGINT): Tune saved its state, the parent run is KILLED, `resume` goes on.
    interrupted: bool = False
    storage_path: str = "ray_results"  # where Tune keeps the search's state (for `resume`)


def search_status(name: str, *, tracking_uri: str | None = None) -> SearchOutcome:
    """The leaderboard of the latest search ``name`` recorded in MLflow."""
    uri = where.open_uri(tracking_uri, error=TrackingError)
    with one_line_errors(uri):
        return _status(name, uri)


def _status(name: str, uri: str) -> SearchOutcome:
    experiment = client(uri).get_experiment_by_name(name)
    parent = find_parent_run(uri, experiment.experiment_id, name) if experiment else None
    if parent is None:
        raise SearchError(f"no search {name!r} recorded in MLflow at {uri}")
    params: Mapping[str, str] = client(uri).get_run(parent).data.params
    oracle = oracle_table(
        Path(params.get("stores.root", ".")),
        yaml.safe_load(params.get("stores.visual_feature", "[]")) or [],
        yaml.safe_load(params.get("stores.audio_feature", "[]")) or [],
        int(fold) if (fold := params.get("stores.fold", "None")).isdigit() else None,
    )
    table = leaderboard(uri, experiment.experiment_id, parent)
    return SearchOutcome(name, uri, experiment.experiment_id, parent, table, oracle)
