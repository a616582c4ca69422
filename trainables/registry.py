"""Name -> class registries filled by a decorator (attention kinds, fusion kinds).

    @ATTENTIONS.register("self")
    class SelfAttention(Pooling): ...

``ATTENTIONS["nope"]`` fails with the list of known names, so a typo in a config or a search space
says what would have been accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from trainables.errors import ConfigError

T = TypeVar("T")


class Registry(dict[str, type[T]], Generic[T]):
    """A ``dict`` of name -> class whose unknown names raise ``ConfigError`` listing known ones."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self[name]}")
            self[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return add

    def __missing__(self, name: str) -> type[T]:
        raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self)}")
