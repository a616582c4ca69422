"""The command-line frame every ``python -m PACKAGE`` shares: a table of sub-commands, user errors
as one line with exit status 2, the traceback only with ``--debug``.

``trainables`` and ``search`` reuse it (imports go downward); ``ensembling`` has its own copy of
these few lines because it must not import this package.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import guards
from feature_store.errors import StoreError


@dataclass(frozen=True)
class Command:
    """One sub-command: its help line, how it adds its arguments, and what runs it."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


def run_cli(
    prog: str,
    description: str,
    commands: dict[str, Command],
    argv: Sequence[str] | None = None,
    *,
    user_errors: tuple[type[BaseException], ...] = (),
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in commands.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        sub_parser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        command.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(commands[args.command].run(args) or 0)
    except (StoreError, guards.GuardError, *user_errors) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
