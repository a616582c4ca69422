"""Name -> class (or factory) registries filled by a decorator: backbones, enhancements, and in
``trainables`` the attention and fusion kinds.

    BACKBONES = Registry("backbone")

    @BACKBONES.register("ir50")
    def ir50(spec, device): ...

``BACKBONES["nope"]`` raises the registry's error listing the known names; ``BACKBONES.check(name)``
raises ``ValueError`` with the same line, which is what a pydantic validator needs, so a typo in a
recipe, a trial config or a search space says what would have been accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from avcore.errors import UserError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A ``dict`` of name -> entry whose unknown names fail with the list of known ones."""

    def __init__(self, kind: str, error: type[Exception] = UserError) -> None:
        super().__init__()
        self.kind = kind
        self.error = error

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self[name]}")
            self[name] = entry
            entry.registry_name = name  # type: ignore[attr-defined]
            return entry

        return add

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; known: {', '.join(self)}"

    def check(self, name: str) -> str:
        """``name`` if registered, else ``ValueError`` (for pydantic field validators)."""
        if name not in self:
            raise ValueError(self.unknown(name))
        return name

    def __missing__(self, name: str) -> T:
        raise self.error(self.unknown(name))
