"""Where MLflow lives, for every package: the tracking URI and the one probe of a tracking server.

The URI is the one given (``--tracking-uri``, a search config's ``tracking.uri``), else
``MLFLOW_TRACKING_URI``, else the embedded default ``sqlite:///mlruns/mlflow.db``. A relative
SQLite path or a bare folder is made absolute: Ray runs trials in other working directories, where
a relative path would point elsewhere. A SQLite store keeps its artifacts in ``artifacts/`` beside
its file; a tracking server (``--serve-artifacts``) chooses its own.

``probe`` is the only check that a server answers, with one behaviour: no answer within the timeout
(refused, unknown host, timed out) or a 5xx on ``/health`` (a proxy whose MLflow is down) is an
error; any other HTTP answer, 401 and 403 included, means a server is there, and the first real
request says what it thinks of our credentials. It fails in seconds where MLflow's own client
would retry for minutes. Only the standard library: no MLflow import.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from avcore.errors import TrackingError

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
MAX_TAG = 5000  # the longest tag value every MLflow release we support keeps (2.10's limit)
PROBE_TIMEOUT_S = 5.0
_SQLITE = "sqlite:///"


def resolve_uri(uri: str | None = None) -> str:
    """The tracking URI to use, made absolute where it names a local file or folder."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    if uri.startswith(_SQLITE) and not uri.startswith(_SQLITE + "/"):
        return _SQLITE + str(Path(uri[len(_SQLITE) :]).resolve())
    if "://" not in uri:
        return Path(uri).resolve().as_uri()
    return uri


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite URI, else None."""
    return Path(uri[len(_SQLITE) :]) if uri.startswith(_SQLITE) else None


def artifact_root(uri: str) -> str | None:
    """``artifacts/`` beside a SQLite file as a ``file://`` URI; None where a server decides."""
    database = sqlite_path(uri)
    return (database.parent / "artifacts").resolve().as_uri() if database else None


def open_uri(uri: str | None = None, *, error: type[Exception] = TrackingError) -> str:
    """``resolve_uri``, a SQLite file's folder created, an HTTP server probed: what a job that
    writes to MLflow checks before its work starts."""
    uri = resolve_uri(uri)
    database = sqlite_path(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    probe(uri, error=error)
    return uri


def probe(
    uri: str, *, timeout: float = PROBE_TIMEOUT_S, error: type[Exception] = TrackingError
) -> None:
    """Return when the HTTP tracking server at ``uri`` answers; else ``error`` in one line.
    Not an HTTP URI: nothing to probe."""
    if not is_http(uri):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise error(f"MLflow tracking server {uri} answered {exc.code} on /health") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise error(f"MLflow tracking server {uri} does not answer ({reason})") from None
