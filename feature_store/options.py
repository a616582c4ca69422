"""Command-line options several ``python -m feature_store`` commands share, each declared once
(the same name, type, default and help wherever it appears). Light: ``--help`` imports it.
"""

from __future__ import annotations

import argparse


def add_manifest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="CSV with clip_id,path,split,label")


def add_workers(parser: argparse.ArgumentParser, help: str, *, flag: str = "--workers") -> None:
    parser.add_argument(flag, type=int, default=1, help=f"{help} (default 1)")


def add_force(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--force", action="store_true", help=help)
