"""Text and YAML files from users, read with one line per problem: a folder given as a file, bytes
that are not UTF-8, a YAML syntax error or a tag that would build a Python object (refused by
``yaml.safe_load``) each name the file, and YAML errors their line and column."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from avcore.errors import GuardError


def read_text(
    path: str | os.PathLike[str], what: str = "file", *, error: type[Exception] = GuardError
) -> str:
    """The UTF-8 text of ``path``; ``error`` (one line) when it is missing, a folder or not text."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a folder, expected a {what}")
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not a UTF-8 text {what} (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from None


def read_yaml(
    path: str | os.PathLike[str], what: str = "YAML file", *, error: type[Exception] = GuardError
) -> Any:
    """``yaml.safe_load`` of ``path`` with one-line errors raised as ``error``:
    ``FILE:LINE:COLUMN: problem``."""
    text = read_text(path, what, error=error)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            problem = (
                f"{problem.split(' for the tag ')[0]} {_tag(problem)}; only plain YAML is read"
            )
        raise error(f"{where}: not valid YAML: {' '.join(problem.split())}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None


def _tag(problem: str) -> str:
    _, _, tag = problem.partition(" for the tag ")
    return f"(tag {tag.strip()})" if tag else ""
