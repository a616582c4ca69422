"""Where and how reproducibly a trial runs: the device a config names, deterministic kernels for
the trial's duration, and the synchronisation that makes a GPU timing honest."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from feature_store.devices import resolve_device as feature_store_device
from feature_store.errors import StoreError
from trainables.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu`` or ``cuda`` as a device; a missing GPU is a ``ConfigError`` on ``device``."""
    try:
        return feature_store_device(name)
    except StoreError as exc:
        raise ConfigError(f"device: {exc}") from None


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the trial's duration, restoring the caller's setting afterwards."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cuda":
        # Only effective before cuBLAS starts; a later trial in the same process inherits it.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a wall-clock reading includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
