"""Lazy re-exports for a package ``__init__`` (PEP 562): ``from PACKAGE import name`` still works,
but the module defining ``name`` (and torch, pandas, ... behind it) loads on first use, so
``python -m PACKAGE --help`` or ``import PACKAGE.errors`` stays light.

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {
        "trainables.config": ["TrialConfig", "load_trial_config"],
        "trainables.train": ["train_trial"],
    })
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """The module-level ``__getattr__``, ``__dir__`` and ``__all__`` of ``package``; ``modules``
    maps each defining module to the names it exports. A name once loaded is cached in the
    package's namespace, so later lookups are plain attribute reads."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__, sorted(where)
