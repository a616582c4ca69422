"""The names of the attention and fusion kinds, declared without their torch modules.

A trial config (and a search space built on it) names its kinds by these strings; checking them
here keeps ``trainables.config`` free of torch, so validating a YAML is quick. The classes live in
the registries ``trainables.attention.ATTENTIONS`` and ``trainables.fusion.FUSIONS``; a test holds
each registry to these names, in this order. A new kind is registered there and named here.
"""

from __future__ import annotations

from avcore.registry import Registry
from trainables.errors import ConfigError


def _declare(kind: str, *names: str) -> Registry[None]:
    """A registry of names only: ``check`` and a failed lookup list the known names."""
    declared: Registry[None] = Registry(kind, error=ConfigError)
    declared.update(dict.fromkeys(names))
    return declared


ATTENTION_KINDS = _declare("attention", "mean", "self", "relation", "transformer")
FUSION_KINDS = _declare("fusion", "fbp", "concat")
