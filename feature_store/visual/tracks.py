"""Face tracks: what decoding, sampling, detection and alignment found in one clip, and a cache of
them so a build never finds the same faces twice.

A ``FaceTrack`` holds, for one clip and one *track setting* (the recipe's sampling and its face
detection settings: detector, upsample, detect_max_side, align), the sampled frame indices and
times, the largest face's box and 5 landmarks per frame (NaN where none was found), and the
aligned crops for every *crop setting* asked for so far (the whole ``faces`` section, keyed by a
digest). Recipes that differ only in crop size or chip share the detection; recipes that differ
in nothing share the crops too.

``TrackCache`` keeps tracks as ``<track setting digest>-<video content hash>.npz`` files (plain
arrays, ``allow_pickle=False``), so a changed setting or a changed video file is a different key
and is never served stale. ``Tracker`` makes a track, or completes a cached one with the crops of
a new crop setting (decoding again, but not detecting again).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.visual.faces import Face, FaceCropper
from feature_store.visual.recipe import VisualRecipe
from feature_store.visual.specs import FaceSpec, SamplingSpec
from feature_store.visual.video import decode_frames

# Fields of ``faces`` that only change how a found face is cut out, not where it is. Any other
# field (including ones added later) is part of the detection key: sharing less, never stale.
CROP_FIELDS = frozenset({"extend", "size", "chip", "chip_padding"})
_FORMAT = 1


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def track_settings(sampling: SamplingSpec, faces: FaceSpec) -> dict[str, Any]:
    detection = faces.model_dump(mode="json", exclude=set(CROP_FIELDS))
    return {"format": _FORMAT, "sampling": sampling.model_dump(mode="json"), "faces": detection}


def track_key(recipe: VisualRecipe) -> str:
    """Digest of what decides a clip's sampled frames and faces."""
    return _digest(track_settings(recipe.sampling, recipe.faces))


def crop_key(faces: FaceSpec) -> str:
    """Digest of what decides a clip's crops, given its faces."""
    return _digest(faces.model_dump(mode="json"))


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes (first 32 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:32]


@dataclass
class FaceTrack:
    """One clip's sampled frames, faces and crops under one track setting."""

    settings: str  # track_key
    video: str  # content_hash of the clip file
    indices: np.ndarray  # int64 [n]: positions of the sampled frames among the decoded ones
    times: np.ndarray  # float64 [n]: their presentation times
    decoded: int  # frames decoded in total
    boxes: np.ndarray  # float64 [n, 4]: left, top, right, bottom; NaN where no face was found
    landmarks: np.ndarray | None  # float64 [n, 5, 2], NaN where no face; None without align
    crops: dict[str, np.ndarray] = field(default_factory=dict)  # crop_key -> uint8 [n, S, S, 3]

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.boxes[:, 0])

    def faces(self) -> list[Face | None]:
        return [
            Face(
                box=tuple(float(v) for v in self.boxes[i]),
                landmarks=None if self.landmarks is None else self.landmarks[i],
            )
            if found
            else None
            for i, found in enumerate(self.found)
        ]

    @classmethod
    def from_faces(
        cls, settings: str, video: str, indices, times, decoded: int, faces: list[Face | None]
    ) -> FaceTrack:
        boxes = np.full((len(faces), 4), np.nan)
        with_landmarks = any(face is not None and face.landmarks is not None for face in faces)
        landmarks = np.full((len(faces), 5, 2), np.nan) if with_landmarks else None
        for i, face in enumerate(faces):
            if face is not None:
                boxes[i] = face.box
                if landmarks is not None and face.landmarks is not None:
                    landmarks[i] = face.landmarks
        return cls(
            settings,
            video,
            np.asarray(indices, dtype=np.int64),
            np.asarray(times, dtype=np.float64),
            int(decoded),
            boxes,
            landmarks,
        )


class TrackCache:
    """Face tracks on disk, one ``.npz`` per (track setting, video content)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def file(self, settings: str, video: str) -> Path:
        return self.folder / f"{settings}-{video}.npz"

    def load(self, settings: str, video: str) -> FaceTrack | None:
        path = self.file(settings, video)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                crops = {
                    name.removeprefix("crop-"): data[name]
                    for name in data.files
                    if name.startswith("crop-")
                }
                return FaceTrack(
                    settings,
                    video,
                    data["indices"],
                    data["times"],
                    int(data["decoded"]),
                    data["boxes"],
                    data["landmarks"] if "landmarks" in data.files else None,
                    crops,
                )
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache entry is only a cache miss
            return None

    def save(self, track: FaceTrack) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.file(track.settings, track.video)
        arrays: dict[str, np.ndarray] = {
            "indices": track.indices,
            "times": track.times,
            "decoded": np.array(track.decoded),
            "boxes": track.boxes,
            **{f"crop-{key}": crops for key, crops in track.crops.items()},
        }
        if track.landmarks is not None:
            arrays["landmarks"] = track.landmarks
        tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.npz")
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, target)  # complete or absent


class Tracker:
    """Makes the face tracks of one track setting; ``faces`` are the crop settings that share it."""

    def __init__(self, sampling: SamplingSpec, faces: Sequence[FaceSpec]) -> None:
        self.sampling = sampling
        self.settings = _digest(track_settings(sampling, faces[0]))
        self.croppers = {crop_key(spec): FaceCropper(spec) for spec in faces}
        self.detector = next(iter(self.croppers.values()))

    def __call__(
        self,
        path: Path,
        video: str,
        cached: FaceTrack | None,
        wanted: set[str],
        timings: dict[str, float],
    ) -> tuple[FaceTrack, bool]:
        """The track with crops for every crop key in ``wanted``, and whether it is new or
        changed. Raises ``VideoError`` for a clip that cannot be decoded."""
        if cached is not None and wanted <= cached.crops.keys():
            return cached, False
        started = time.perf_counter()
        clip = decode_frames(
            path, max_fps=self.sampling.max_fps, max_frames=self.sampling.max_frames
        )
        decoded = time.perf_counter()
        timings["decode"] += decoded - started
        timings["decode_frames"] += clip.decoded
        if cached is not None and np.array_equal(cached.indices, clip.indices):
            track = cached
        else:
            faces = [self.detector.detect(frame) for frame in clip.frames]
            track = FaceTrack.from_faces(
                self.settings, video, clip.indices, clip.times, clip.decoded, faces
            )
            timings["detect"] += time.perf_counter() - decoded
            timings["detect_frames"] += len(clip.frames)
        aligning = time.perf_counter()
        faces = track.faces()
        for key in sorted(wanted - track.crops.keys()):
            cropper = self.croppers[key]
            track.crops[key] = np.stack(
                [cropper.crop(frame, face) for frame, face in zip(clip.frames, faces)]
            )
            timings["align_frames"] += len(clip.frames)
        timings["align"] += time.perf_counter() - aligning
        return track, True
