"""The audio AlexNet's weights: read a file through the shared safe loader (``weights_only``,
prefixes stripped), fit it into the model (an ImageNet AlexNet's RGB first convolution summed for
one channel, its 1000-class head dropped), and write ``train-audio``'s checkpoint atomically with
the settings (``checkpoint_config``) a store built from it must agree on.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from feature_store.audio.cnn import AlexNet
from feature_store.audio.recipe import AudioRecipe
from feature_store.weights import WeightsError, read_checkpoint

CHECKPOINT_FORMAT = "avfusion-audio-cnn"


def _summary(keys: Iterable[str], limit: int = 4) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, extra)`` from a weights file: a bare state dict, or a dict holding one under
    ``state_dict``/``model`` (``extra`` = the other entries), read by the shared safe loader
    (``feature_store.weights``): ``weights_only=True``, prefixes stripped, one ``WeightsError``
    line naming the file for anything else.
    """
    checkpoint = read_checkpoint(path)
    return checkpoint.state, checkpoint.extra


def load_weights(
    model: AlexNet, path: str | os.PathLike[str], *, head: bool, features_only: bool = False
) -> dict[str, Any]:
    """Load a weights file into ``model``; returns the file's extra entries.

    ``head=False`` ignores a final layer whose class count differs (an ImageNet checkpoint's 1000
    classes); ``features_only`` loads and requires just the convolutional part (feature
    extraction). A 3-channel first convolution is summed over its channels for a 1-channel model.
    Anything that does not fit is one ``WeightsError`` naming the file and the keys.
    """
    state, extra = read_weights(path)
    own = model.state_dict()
    first = "features.0.weight"
    if first in state and first in own and (state[first].shape[1], own[first].shape[1]) == (3, 1):
        state = {**state, first: state[first].sum(dim=1, keepdim=True)}
    if not head:
        last = [k for k in ("classifier.6.weight", "classifier.6.bias") if k in state]
        if last and state[last[0]].shape != own[last[0]].shape:
            state = {k: v for k, v in state.items() if k not in last}
    wanted = {k for k in own if k.startswith("features.")} if features_only else set(own)
    if not head and not features_only:
        wanted -= {k for k in ("classifier.6.weight", "classifier.6.bias") if k not in state}
    missing = wanted - state.keys()
    unexpected = state.keys() - own.keys()
    mismatched = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in sorted(wanted & state.keys())
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"missing keys: {_summary(missing)}" if missing else "",
            f"unexpected keys: {_summary(unexpected)}" if unexpected else "",
            f"shape mismatches: {_summary(mismatched)}" if mismatched else "",
        ]
        raise WeightsError(
            f"{path}: does not fit the audio AlexNet; " + "; ".join(p for p in parts if p)
        )
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)
    return extra


def checkpoint_config(recipe: AudioRecipe) -> dict[str, Any]:
    """What a checkpoint must agree on with the recipe that builds a store from it."""
    return {
        "spectrogram": recipe.spectrogram,
        "n_mels": recipe.n_mels if recipe.spectrogram == "logmel" else None,
        "segment_frames": recipe.segment_frames,
        "fc_dim": recipe.fc_dim,
    }


def save_checkpoint(path: Path, model: AlexNet, **extra: Any) -> None:
    """``{"format", "state_dict", **extra}`` written atomically (tmp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": state, **extra}, tmp)
    os.replace(tmp, path)
