"""``python -m feature_store``: build, inspect and validate feature stores."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from feature_store import inspect as inspect_mod
from feature_store.cli import Command, run_cli
from feature_store.store import open_store


def _add_inspect(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="a store directory, or a folder of stores (e.g. data/demo)")


def _run_inspect(args: argparse.Namespace) -> int:
    print(inspect_mod.summarize_path(args.store))
    return 0


def _add_validate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="a store directory")
    parser.add_argument("--deep", action="store_true", help="also check checksums and NaN/Inf")


def _run_validate(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    if args.deep:
        store.validate_deep()
    print(
        f"{store.path}: ok ({len(store)} clips, {len(store.array)} vectors, dim {store.dim}"
        f"{', checksums and values checked' if args.deep else ''})"
    )
    return 0


def _add_synth(parser: argparse.ArgumentParser) -> None:
    from feature_store import synthetic

    synthetic.add_arguments(parser)


def _run_synth(args: argparse.Namespace) -> int:
    from feature_store import synthetic

    return synthetic.run(args)


COMMANDS: dict[str, Command] = {
    "synth": Command(
        "write the planted benchmark stores (known oracle accuracy)", _add_synth, _run_synth
    ),
    "inspect": Command(
        "print a store's summary: clips per split and class, vectors, oracle",
        _add_inspect,
        _run_inspect,
    ),
    "validate": Command(
        "check a store's format, shapes and offsets (--deep: checksums, NaN/Inf)",
        _add_validate,
        _run_validate,
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("feature_store", __doc__.strip(), COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
