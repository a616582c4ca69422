"""The command-line frame every ``python -m PACKAGE`` shares: a table of sub-commands, user errors
as one line with exit status 2, the traceback only with ``--debug``, 130 on Ctrl+C.

A user error is any ``UserError`` (every package's error base derives from it) or a pydantic
``ValidationError`` that escaped a loader, printed through ``avcore.parsing.pydantic_line``.
Commands import their heavy modules (torch, Ray, MLflow) inside ``run``, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from avcore.errors import UserError


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
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"{prog} {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130


def user_error_line(exc: BaseException) -> str | None:
    """The one line a user reads for ``exc``, or None when it is a bug (traceback wanted)."""
    if isinstance(exc, UserError):
        return str(exc)
    if type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic"):
        from avcore.parsing import pydantic_line

        return pydantic_line(exc)  # type: ignore[arg-type]
    return None
