"""Two small parsers every CLI needs: ``key=value`` overrides (``--set lr=1e-3``) and a pydantic
``ValidationError`` turned into the one line a user reads.

The line is ``SOURCE: KEY: MESSAGE`` with pydantic's wording made plain: an unknown key says
"unknown key", a missing one "required key is missing", a validator's own message loses pydantic's
"Value error, " prefix, and union-branch names (``Range``, ``list[...]``) leave the key path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pydantic import ValidationError


def parse_key_value(text: str, *, error: type[Exception] = ValueError) -> tuple[str, Any]:
    """``"key=value"`` with the value read as YAML (``lr=1e-3`` a float, ``fbp_sqrt=no`` a bool,
    ``x=`` the empty string). ``error`` says what is wrong in one line."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise error(f"--set {text!r}: expected key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise error(f"--set {text!r}: value is not valid YAML ({problem})") from None
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string; nobody means that
    return key, value


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def error_key(loc: tuple[Any, ...]) -> str:
    """Pydantic's location as a dotted key, without validator or union-branch names."""
    parts = [str(p) for p in loc if not re.search(r"[\[\]]|^Range$|^function-", str(p))]
    return ".".join(parts) or "(top level)"


def error_message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return str(error["msg"]).removeprefix("Value error, ")


def pydantic_line(
    exc: ValidationError, source: str | None = None, *, show_input: bool = False
) -> str:
    """The first problem of ``exc`` as ``SOURCE: KEY: MESSAGE`` (``(got X)`` with ``show_input``
    for scalar inputs), and how many more there are."""
    error = exc.errors()[0]
    line = f"{error_key(error['loc'])}: {error_message(error)}"
    value = error.get("input")
    if (
        show_input
        and error["type"] not in ("missing", "extra_forbidden")
        and not isinstance(value, (dict, list))
    ):
        line += f" (got {value!r})"
    if exc.error_count() > 1:
        line += f" (and {exc.error_count() - 1} more)"
    return f"{source}: {line}" if source else line
