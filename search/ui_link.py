"""The address that opens a search's runs in the MLflow UI, ready to read: the Model-training view,
the search's runs only, sorted by ``val_acc`` (best first), its key params and metrics as columns.

MLflow (3.x UI) has no experiment setting for a runs table's default columns or sort; it has
shared views, which this uses. A shared view is an experiment tag ``mlflow.sharedViewState.<key>``
holding the view as JSON (the search facets ``searchFilter``, ``orderByKey``, ``orderByAsc``, ...
and the table's ``selectedColumns``, each ``metrics.`name```-style); the UI applies it when the
address carries ``viewStateShareKey=<key>`` (and no facet of its own). ``workflowType=
machine_learning`` picks the Model-training view over the GenAI one the UI remembers by default.
Older UIs ignore what they do not know and still open the experiment's runs.

The view lists the children of the search's parent run (trials, retrains, an ensemble built from
the experiment); an ensemble has no ``val_acc`` (it logs ``val_acc_in_sample``/``val_acc_cv``) and
so sorts below every trial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from urllib.parse import urlencode

from avcore import results
from avcore import tracking as where
from search.tracking import client

VIEW_TAG_PREFIX = "mlflow.sharedViewState."  # the MLflow UI's own prefix for a shared view
SORT_METRIC = "val_acc"
METRIC_COLUMNS = (SORT_METRIC, "val_uar", "val_loss")
# Always shown: what tells trials apart (``trainables.config.trial_label``); then the space's keys.
PARAM_COLUMNS = ("visual_feature", "audio_feature", "visual_attention", "audio_attention", "fusion")
TAG_COLUMNS = (results.STATUS, results.TRIAL_ID)
RUN_NAME_COLUMN = "attributes.`Run Name`"
UI_PORT_ENV, UI_PORT = "MLFLOW_UI_PORT", 5000  # ``make ui``'s address for the embedded database


def _column(kind: str, name: str) -> str:
    return f"{kind}.`{name}`"  # the UI's canonical column key


def view_key(parent_run_id: str) -> str:
    """The share key of a search's view: one per parent run."""
    return f"avfusion-{parent_run_id}"


def view_state(parent_run_id: str, space_keys: Iterable[str]) -> dict:
    """The shared view's JSON: the search's child runs, best ``val_acc`` first, with columns."""
    params = list(PARAM_COLUMNS) + [k for k in space_keys if k not in PARAM_COLUMNS]
    columns = (
        [_column("metrics", m) for m in METRIC_COLUMNS]
        + [_column("params", p) for p in params]
        + [_column("tags", t) for t in TAG_COLUMNS]
    )
    return {
        "searchFilter": f"tags.`{results.PARENT}` = '{parent_run_id}'",
        "orderByKey": _column("metrics", SORT_METRIC),
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "modelVersionFilter": "All Runs",
        "datasetsFilter": [],
        "selectedColumns": columns,
        # The run name (configuration and trial number) wide enough to read in full; the UI
        # applies widths only to the columns an order lists.
        "columnOrder": [RUN_NAME_COLUMN, *columns],
        "columnWidths": {RUN_NAME_COLUMN: 380},
    }


def ensure_view(uri: str, experiment_id: str, parent_run_id: str) -> None:
    """Store the search's view on its experiment (an experiment tag, see the module's text) unless
    it is there; its param columns are the parent run's ``space.*`` keys."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(uri)
    tag = VIEW_TAG_PREFIX + view_key(parent_run_id)
    if tag in mlflow_client.get_experiment(experiment_id).tags:
        return
    params = mlflow_client.get_run(parent_run_id).data.params
    space_keys = dict.fromkeys(k.split(".")[1] for k in sorted(params) if k.startswith("space."))
    state = json.dumps(view_state(parent_run_id, space_keys), separators=(",", ":"))
    try:
        mlflow_client.set_experiment_tag(experiment_id, tag, state)
    except MlflowException:  # a reader without write access (`status`): the address still works
        return  # once the search's driver has stored the view


def _ui_port() -> str:
    return os.environ.get(UI_PORT_ENV) or str(UI_PORT)


def ui_base(uri: str) -> str:
    """Where the UI for ``uri`` is served: the tracking server itself, else ``make ui``'s address
    (which serves the embedded SQLite database; ``MLFLOW_UI_PORT`` as for ``make ui``)."""
    if where.is_http(uri):
        return uri.rstrip("/")
    return f"http://127.0.0.1:{_ui_port()}"


def runs_url(uri: str, experiment_id: str, parent_run_id: str) -> str:
    """The address that opens the search's shared view (``save_view``) in the runs table."""
    query = urlencode(
        {"workflowType": "machine_learning", "viewStateShareKey": view_key(parent_run_id)}
    )
    return f"{ui_base(uri)}/#/experiments/{experiment_id}/runs?{query}"


def ui_hint(uri: str, experiment_id: str, parent_run_id: str) -> str:
    """One line for a person: the address, and what serves it when that is not the server."""
    url = runs_url(uri, experiment_id, parent_run_id)
    if where.is_http(uri):
        server = ""
    elif where.resolve_uri(uri) == where.resolve_uri(where.DEFAULT_URI):
        server = "; serve it with `make ui`"
    else:
        server = f"; serve it with `mlflow ui --backend-store-uri {uri} --port {_ui_port()}`"
    return f"MLflow UI (the search's runs by val_acc{server}): {url}"
