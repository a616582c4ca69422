"""Which torch device a job runs on: ``auto`` takes the GPU when torch sees one."""

from __future__ import annotations

import torch

from feature_store.errors import StoreError


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; asking for cuda without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StoreError(f"device {name!r} requested but torch sees no CUDA GPU on this machine")
    return torch.device(name)
