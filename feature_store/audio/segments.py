"""Training data of the audio CNN: every clip of a manifest split as standardised spectrogram
segments (in worker processes when asked), gathered into one ``SegmentSet`` with each segment's
label and clip, so a clip's prediction can be the mean over its segments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avcore.progress import progress
from feature_store.audio.cnn import segment, standardize
from feature_store.audio.recipe import AudioRecipe
from feature_store.audio.signal import AudioDecodeError, clip_image
from feature_store.errors import StoreError


@dataclass
class SegmentSet:
    """Every segment of some clips, with its label and the index of the clip it came from."""

    segments: torch.Tensor  # (S, C, H, frames)
    labels: torch.Tensor  # (S,) label of the segment's clip
    clip_index: torch.Tensor  # (S,) 0..clips-1
    clip_labels: torch.Tensor  # (clips,)

    @classmethod
    def from_clips(cls, clips: list[np.ndarray], labels: list[int]) -> SegmentSet:
        counts = [len(c) for c in clips]
        clip_index = torch.repeat_interleave(torch.arange(len(clips)), torch.tensor(counts))
        clip_labels = torch.tensor(labels, dtype=torch.long)
        return cls(
            torch.from_numpy(np.concatenate(clips)),
            clip_labels[clip_index],
            clip_index,
            clip_labels,
        )

    def __len__(self) -> int:
        return len(self.segments)


def _clip_segments(item: tuple[str, str, Any]) -> tuple[str, np.ndarray | None]:
    """One clip's standardised segments (None without an audio track); runs in worker processes."""
    clip_id, path, recipe = item
    try:
        image = clip_image(path, recipe.spectrogram, n_mels=recipe.n_mels)
    except AudioDecodeError as exc:
        raise StoreError(f"clip {clip_id!r}: {exc}") from None
    if image is None:
        return clip_id, None
    return clip_id, segment(standardize(image), recipe.segment_frames, recipe.hop)


def load_segments(
    clips: Any, recipe: AudioRecipe, *, workers: int = 1, desc: str = "spectrograms"
) -> tuple[SegmentSet | None, list[str]]:
    """Segments of the manifest rows ``clips`` (clip_id, path, label); also the clip ids that
    have no audio track and so are left out. A missing file or corrupt stream names the clip."""
    items = []
    for row in clips.itertuples(index=False):
        if not Path(row.path).is_file():
            raise StoreError(f"clip {row.clip_id!r}: {row.path}: no such file")
        items.append((row.clip_id, row.path, recipe))
    if workers > 1 and len(items) > 1:
        import concurrent.futures as futures
        import multiprocessing

        with futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            mapped = pool.map(_clip_segments, items, chunksize=4)
            results = list(progress(mapped, total=len(items), desc=desc, unit="clip"))
    else:
        results = [_clip_segments(item) for item in progress(items, desc=desc, unit="clip")]
    labels = dict(zip(clips["clip_id"], clips["label"]))
    kept = [(clip_id, segs) for clip_id, segs in results if segs is not None]
    silent = [clip_id for clip_id, segs in results if segs is None]
    if not kept:
        return None, silent
    return SegmentSet.from_clips([s for _, s in kept], [int(labels[c]) for c, _ in kept]), silent
