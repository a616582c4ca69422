"""Command-line options several CLIs share, spelled once so their names and help agree.

``add_tracking_uri(parser)``: ``--tracking-uri``, resolved later by ``avcore.tracking.resolve_uri``.
"""

from __future__ import annotations

from typing import Any

from avcore.tracking import DEFAULT_URI


def add_tracking_uri(parser: Any) -> None:
    """``--tracking-uri`` on an ``argparse`` parser or argument group (default ``None``: the
    environment's ``MLFLOW_TRACKING_URI``, else the embedded default)."""
    parser.add_argument(
        "--tracking-uri",
        help=f"MLflow tracking URI (else MLFLOW_TRACKING_URI, else {DEFAULT_URI})",
    )
