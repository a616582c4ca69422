"""Names are not paths: the one rule deciding whether a user's name may become a file name.

A clip id, a search or experiment name may hold letters, digits, spaces and punctuation, but never
a path separator, a ``..``, a control character or a leading dot (a hidden file, ``.`` or ``..``).
``check_name`` refuses such a name (clip ids, search names); ``folder_name`` turns any name into a
safe folder name (an MLflow experiment name for ``ensembles/<name>-<time>``).
"""

from __future__ import annotations

import re
import unicodedata

from avcore.errors import GuardError

_SEPARATORS = ("/", "\\")
MAX_NAME = 200


def unsafe_reason(name: str) -> str | None:
    """Why ``name`` cannot be a file name, or None when it can."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if any(sep in name for sep in _SEPARATORS):
        return "holds a path separator"
    if ".." in name:
        return "holds '..'"
    if name.startswith("."):
        return "starts with a dot"
    if any(unicodedata.category(ch)[0] == "C" for ch in name):
        return "holds a control character"
    if re.match(r"^[A-Za-z]:", name):
        return "starts with a drive letter"
    return None


def check_name(name: str, what: str) -> str:
    """``name`` itself when it is safe as a file name; else ``GuardError`` naming ``what``."""
    reason = unsafe_reason(name)
    if reason:
        raise GuardError(f"{what} {name!r} {reason}; names must not be paths")
    return name


def folder_name(name: str) -> str:
    """A safe folder name for any ``name``: unsafe characters become ``_``, leading dots go."""
    cleaned = "".join(
        "_" if ch in _SEPARATORS or unicodedata.category(ch)[0] == "C" else ch for ch in name
    )
    cleaned = re.sub(r"\.{2,}", "_", cleaned).lstrip(".").replace(":", "_")[:MAX_NAME]
    return cleaned or "unnamed"
