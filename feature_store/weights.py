"""Reading weights files safely: the one loader behind the visual backbones and the audio CNN.

A checkpoint is read with ``torch.load(weights_only=True)`` only, so a pickle that would run code
(a class, ``os.system``, ...) is refused before anything in it runs; a ``.safetensors`` file (no
code by design) is read with ``safetensors``. A TorchScript archive (OpenAI's CLIP ``.pt``) is
refused too: loading it runs the archive's own code. Whatever is wrong with a file (absent, a text
file, truncated, pickled objects, TorchScript, not a state dict) is one ``WeightsError`` line
naming the file; torch's own message is not repeated because it advises ``weights_only=False``,
which is exactly what must not be done with an untrusted file.

    >>> checkpoint = read_checkpoint(Path("Resnet18_FER+_pytorch.pth.tar"))
    >>> checkpoint.state["layer1.0.conv1.weight"].shape, checkpoint.extra["arch"]

Training scripts wrap a state dict (``{'epoch', 'arch', 'state_dict', 'best_prec1'}``) and
prefix its keys (``module.`` from DataParallel, ``_orig_mod.`` from ``torch.compile``); both are
undone here, and the wrapper's other entries come back as ``extra``.
"""

from __future__ import annotations

import importlib
import pickle
import re
import warnings
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from feature_store.errors import StoreError

# Wrappers that training scripts put around a state dict, and prefixes they put on its keys.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "backbone")
PREFIXES = ("module.", "model.", "backbone.", "net.", "_orig_mod.")


class WeightsError(StoreError):
    """A checkpoint is missing, unreadable, pickled, or does not fit the network."""


class PickledObjectsError(WeightsError):
    """The file pickles Python objects (a whole model, ...): ``global_name`` is the first one the
    safe unpickler refused (``timm.models.efficientnet.EfficientNet``, ``posix.system``)."""

    def __init__(self, message: str, global_name: str) -> None:
        super().__init__(message)
        self.global_name = global_name


@dataclass(frozen=True)
class Checkpoint:
    """The tensors of a weights file (prefixes stripped) and the wrapper's other entries."""

    path: Path
    state: dict[str, torch.Tensor]
    extra: dict[str, Any] = field(default_factory=dict)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read ``path`` with ``weights_only=True``, unwrap and strip it; ``WeightsError`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    loaded = _load_safetensors(path) if _is_safetensors(path) else _load(path)
    extra: dict[str, Any] = {}
    while isinstance(loaded, dict) and loaded and not _all_tensors(loaded):
        wrapped = [key for key in WRAPPER_KEYS if isinstance(loaded.get(key), dict)]
        if not wrapped:
            break
        extra.update({key: value for key, value in loaded.items() if key != wrapped[0]})
        loaded = loaded[wrapped[0]]
    if not isinstance(loaded, dict) or not loaded:
        raise WeightsError(
            f"{path}: expected a state dict (parameter name -> tensor), got "
            f"{'an empty dict' if isinstance(loaded, dict) else type(loaded).__name__}"
        )
    not_tensors = [str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise WeightsError(
            f"{path}: expected a state dict (parameter name -> tensor), but "
            f"{', '.join(not_tensors[:4])}{', ...' if len(not_tensors) > 4 else ''} hold no tensor"
        )
    return Checkpoint(path, strip_prefixes({str(k): v for k, v in loaded.items()}), extra)


def _numpy_data_types() -> list[Any]:
    """NumPy's data-only constructors (scalars, arrays, dtypes): training scripts store metrics such
    as ``best_prec1`` as NumPy scalars. They rebuild values from bytes and run no code; objects
    inside an object array still pass through the safe unpickler's checks."""
    core = importlib.import_module(
        "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    )
    dtypes = [
        kind for kind in vars(getattr(np, "dtypes", object)).values() if isinstance(kind, type)
    ]
    return [core.scalar, core._reconstruct, np.ndarray, np.dtype, *dtypes]


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    size = int.from_bytes(head[:8], "little") if len(head) == 9 else 0
    return path.suffix == ".safetensors" or (0 < size < path.stat().st_size and head[8:] == b"{")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(
            f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)"
        ) from None
    try:
        return load_file(path, device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        text = " ".join(str(exc).split())[:160]
        raise WeightsError(f"{path}: not a readable safetensors file ({text})") from None


def _torchscript_refused(path: Path) -> WeightsError:
    hint = f"{path.parent / path.stem}.state.pt"
    return WeightsError(
        f"{path}: a TorchScript archive (as OpenAI's CLIP .pt files are), not a state dict; it "
        "was not loaded (loading it runs the archive's code). Use the release's state dict (for "
        "CLIP: open_clip's open_clip_model.safetensors), or convert it once where you trust the "
        "file: python -c "
        f"\"import torch; torch.save(torch.jit.load('{path}', map_location='cpu').state_dict(), "
        f"'{hint}')\""
    )


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any("/code/" in name for name in names) and any(
        name.endswith("/constants.pkl") for name in names
    )


def _load(path: Path) -> Any:
    if _is_torchscript(path):
        raise _torchscript_refused(path)
    allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    try:
        with warnings.catch_warnings(), allow(_numpy_data_types()) if allow else nullcontext():
            warnings.simplefilter("ignore")  # torch's warnings about odd pickles: the error says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL (\S+)", text)
        if found is not None:  # the safe unpickler refused a class or function: nothing ran
            raise PickledObjectsError(
                f"{path}: holds pickled Python objects ({found.group(1)}), not plain weights; "
                "it was not loaded (loading it could run code). Save model.state_dict() with "
                "torch.save",
                found.group(1),
            ) from None
        operand = re.search(r"Unsupported operand \d+", text)
        if operand is not None and _is_pickle(path):
            raise WeightsError(
                f"{path}: holds pickle instructions a safe load refuses ({operand.group(0)}); "
                "it was not loaded (loading it could run code). Save model.state_dict() with "
                "torch.save"
            ) from None
        raise WeightsError(f"{path}: not a readable PyTorch weights file") from None
    except Exception as exc:  # noqa: BLE001 - a bad pickle stream raises anything (KeyError, ...)
        reason = type(exc).__name__
        if isinstance(exc, (RuntimeError, EOFError, OSError, zipfile.BadZipFile)):
            text = " ".join(str(exc).split())
            reason = text[:160] if text and "weights_only" not in text else reason
        raise WeightsError(
            f"{path}: not a readable PyTorch weights file (text, truncated or corrupt: {reason})"
        ) from None


def _is_pickle(path: Path) -> bool:
    """A pickle of protocol 2 or later (what torch writes) opens with the PROTO opcode; a text
    file whose first letter happens to be an opcode does not."""
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80" or zipfile.is_zipfile(path)


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove wrapper prefixes (``module.`` from DataParallel, ``_orig_mod.`` from compile, ...)
    shared by every key, repeatedly."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix) :]: value for key, value in state.items()}
                stripped = True
    return state


def _all_tensors(mapping: dict) -> bool:
    return all(isinstance(value, torch.Tensor) for value in mapping.values())
