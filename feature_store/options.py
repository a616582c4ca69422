"""Command-line options several ``python -m feature_store`` commands share, each declared once
(the same name, type, default and help wherever it appears). Light: ``--help`` imports it.
"""

from __future__ import annotations

import argparse


def add_manifest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        required=True,
        help="CSV with clip_id,path,split,label[,fold,speaker]; its classes and protocol from the "
        "MANIFEST.yaml beside it (python -m feature_store manifest writes both)",
    )
    parser.add_argument(
        "--classes",
        type=lambda text: [name.strip() for name in text.split(",")],
        default=None,
        help="A,B,C: the ordered classes of a manifest without a YAML (default: AFEW's seven, "
        "when its labels fit them)",
    )


def add_workers(parser: argparse.ArgumentParser, help: str, *, flag: str = "--workers") -> None:
    parser.add_argument(flag, type=int, default=1, help=f"{help} (default 1)")


def add_force(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--force", action="store_true", help=help)
