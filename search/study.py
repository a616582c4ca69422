"""The search's Optuna study, kept in a database so that it outlives the driver: ``optuna-dashboard``
opens it while the search runs, ``resume`` continues it, and the parent run's plots
(``search.study_plots``) are drawn from it. The study is named after the search.

Where (``tracking.optuna_storage``, resolved once by ``run`` and saved with the search, so that
``resume`` finds the same study): the URL configured there (on a cluster, a database of the
head's PostgreSQL, see README "Cluster"); else ``optuna.db`` beside a SQLite tracking database;
else ``mlruns/optuna.db`` where the driver runs (a tracking server keeps its database to itself).

Never inside MLflow's own SQLite file: both keep their schema revision in an Alembic table named
``alembic_version``, so each would find the other's revision there and refuse the file (or try to
migrate it). Only the driver writes the study (the searcher lives there); readers such as
optuna-dashboard may open it at any time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avcore import tracking as where
from avcore.results import FAILED, FINISHED, STOPPED_EARLY
from search.config import SearchConfig
from search.errors import SearchError

STUDY_FILE = "optuna.db"
_SQLITE = "sqlite:///"
# A run's end as an Optuna trial state (TrialState's names; optuna is imported on first use).
_ENDED = {FINISHED: "COMPLETE", STOPPED_EARLY: "PRUNED", FAILED: "FAIL"}


def storage_url(config: SearchConfig) -> str:
    """The URL of the search's study database, absolute where it names a file."""
    if config.tracking.optuna_storage:
        return where.resolve_uri(config.tracking.optuna_storage)
    database = where.sqlite_path(where.resolve_uri(config.tracking_uri))
    folder = database.parent if database is not None else Path("mlruns")
    return _SQLITE + str((folder / STUDY_FILE).resolve())


def with_storage(config: SearchConfig) -> SearchConfig:
    """``config`` with ``tracking.optuna_storage`` resolved (what ``run`` records and saves)."""
    tracking = config.tracking.model_copy(update={"optuna_storage": storage_url(config)})
    return config.model_copy(update={"tracking": tracking})


def open_storage(url: str):
    """Optuna's RDB storage at ``url`` (its tables created on first use), or ``SearchError``."""
    import optuna
    import sqlalchemy.exc

    database = where.sqlite_path(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
        # A reader (optuna-dashboard) may hold the file for a moment: wait rather than fail.
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # a server that restarted: reconnect
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError, ImportError) as exc:
        raise SearchError(
            f"Optuna storage {url}: {str(exc).splitlines()[0][:300]} (tracking.optuna_storage)"
        ) from None


def check_new_study(config: SearchConfig) -> None:
    """Before a new search: no study of its name is in its database (a search whose Tune state
    was deleted): continuing it would mix its trials into the new search's sampler."""
    import optuna

    names = {
        s.study_name for s in optuna.get_all_study_summaries(open_storage(storage_url(config)))
    }
    if config.name in names:
        url = storage_url(config)
        raise SearchError(
            f"an Optuna study {config.name!r} already exists in {url}; choose another name "
            f"(--set name=...) or delete it: optuna delete-study --study-name {config.name} "
            f"--storage {url}"
        )


def load_study(config: SearchConfig) -> Any | None:
    """The search's study from its database; None where it has none (a search begun before its
    study was stored)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=config.name, storage=open_storage(storage_url(config)))
    except KeyError:
        return None


def tell_held_back(config: SearchConfig, table: Any) -> int:
    """Once a search has ended (not interrupted): trials still running in its study whose runs
    ended are told as their runs did (``table``: the leaderboard). A reproducible search holds a
    result back until the trials before it end (``search.ordered``), and a time limit can end the
    search first. Returns how many were told."""
    from optuna.trial import TrialState

    study = load_study(config)
    if study is None:
        return 0
    rows = {row.trial_id: row for row in table.itertuples(index=False)}
    told = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        row = rows.get(str(trial.number))
        if row is None or row.status not in _ENDED:
            continue
        value = row.val_acc if row.status == FINISHED else None
        study.tell(trial.number, value, state=TrialState[_ENDED[row.status]])
        told += 1
    return told
