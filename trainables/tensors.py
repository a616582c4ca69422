"""A trial's data on the device: every split padded once into tensors, and the batches cut from them.

``build_split`` pads all clips of a split in one vectorised pass per modality and moves them to the
device (the GPU when there is one); ``model_inputs`` then indexes a batch out of those tensors, so
there is no per-batch Python collation. With ``frame_sampling=segments`` each training clip gives
one random frame from each of K equal segments of its real frames (the Frame Attention Network
scheme), sampled on the device by ``sample_segments``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import feature_store
from trainables.config import TrialConfig
from trainables.errors import TrialDataError


@dataclass
class SplitTensors:
    """One split on the device: per-modality padded frames and masks, labels, clip ids."""

    clip_ids: list[str]
    labels: Tensor  # (N,) int64, -1 where unknown (test)
    x: dict[str, Tensor]  # modality -> (N, T, D) float32
    mask: dict[str, Tensor]  # modality -> (N, T) bool
    lengths: dict[str, Tensor]  # modality -> (N,) int64

    def __len__(self) -> int:
        return len(self.clip_ids)


def stores_of(
    data: feature_store.StorePair | feature_store.Store, modality: str = "both"
) -> dict[str, feature_store.Store]:
    """modality -> store the model reads: both of a pair, or the one ``modality`` (a trial
    config's ``modality``) names; a single store is read alone, and must be of that modality."""
    if isinstance(data, feature_store.StorePair):
        pair = {"visual": data.visual, "audio": data.audio}
        return pair if modality == "both" else {modality: pair[modality]}
    if isinstance(data, feature_store.Store):
        if modality not in ("both", data.modality):
            raise TrialDataError(
                f"{data.path}: a {data.modality} store, but the config reads modality={modality}"
            )
        return {data.modality: data}
    raise TrialDataError(f"train_trial needs a StorePair or a Store, got {type(data).__name__}")


def build_split(
    stores: Mapping[str, feature_store.Store],
    clip_ids: list[str],
    labels: np.ndarray,
    device: torch.device,
) -> SplitTensors:
    """Pad every clip of a split in one vectorised pass per modality and move it to ``device``."""
    x, mask, lengths = {}, {}, {}
    for modality, store in stores.items():
        padded = store.padded(clip_ids)
        _check_finite(store, clip_ids, padded.x)
        x[modality] = torch.from_numpy(padded.x).to(device)
        mask[modality] = torch.from_numpy(padded.mask).to(device)
        lengths[modality] = torch.from_numpy(padded.lengths.astype(np.int64)).to(device)
    return SplitTensors(clip_ids, torch.from_numpy(labels).to(device), x, mask, lengths)


def _check_finite(store: feature_store.Store, clip_ids: list[str], x: np.ndarray) -> None:
    """NaN/Inf would train to NaN scores silently: refuse them, naming the first such clip."""
    if x.dtype.kind != "f" or not len(x):  # a split without clips (a set with no test) is fine
        return
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        clip = clip_ids[int(np.argmin(finite))]
        raise TrialDataError(
            f"{store.path}: clip {clip!r} has NaN or Inf features; refusing to train "
            f"(check with `python -m feature_store validate --deep {store.path}`)"
        )


def sample_segments(
    x: Tensor, lengths: Tensor, segments: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One random real frame from each of ``segments`` equal parts of every clip.

    x: (B, T, D), lengths: (B,) -> frames (B, K, D) and mask (B, K). A clip shorter than K repeats
    frames (each segment still gets one); a clip with no frames gets an all-False mask.
    """
    batch = x.shape[0]
    part = torch.arange(segments, device=x.device)[None, :]  # (1, K)
    length = lengths[:, None]  # (B, 1)
    start = part * length // segments  # (B, K) first frame of each segment
    end = torch.maximum((part + 1) * length // segments, start + 1)  # at least one frame wide
    offset = torch.rand(batch, segments, generator=generator, device=x.device)
    index = start + (offset * (end - start)).long()
    index = torch.minimum(index, (length - 1).clamp(min=0))  # empty clips: index 0, masked out
    frames = x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))
    return frames, (length > 0).expand(batch, segments)


def model_inputs(
    split: SplitTensors,
    index: Tensor,
    config: TrialConfig,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Keyword arguments of ``EmotionModel.forward`` for the clips at ``index``; with a
    ``generator`` (training) and ``frame_sampling=segments``, K sampled frames per clip."""
    inputs: dict[str, Tensor] = {}
    for modality in split.x:
        x, mask = split.x[modality][index], split.mask[modality][index]
        if generator is not None and config.frame_sampling == "segments":
            x, mask = sample_segments(
                x, split.lengths[modality][index], config.frame_segments, generator
            )
        inputs[modality] = x
        inputs[f"{modality}_mask"] = mask
    return inputs
