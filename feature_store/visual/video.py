"""Decode a video clip with PyAV and sample its frames (every frame, a frame-rate cap, at most N).

    >>> clip = decode_frames("clip.avi", max_fps=10, max_frames=64)
    >>> clip.frames[0].shape, clip.decoded      # RGB uint8 [H, W, 3]; frames decoded in total

A file PyAV cannot open, a file without a video stream, a stream that fails or stops early while
decoding, and a stream with no frames are ``VideoError``s naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from feature_store.errors import StoreError

# A container that promises N frames but yields fewer than this share of them was cut short.
_TRUNCATED_SHARE = 0.9


class VideoError(StoreError):
    """A clip's video cannot be used: unreadable, no video stream, corrupt, truncated or empty."""


@dataclass
class DecodedClip:
    frames: list[np.ndarray]  # the sampled frames, RGB uint8 [H, W, 3]
    times: list[float]  # their presentation times in seconds
    indices: list[int]  # their positions among the decoded frames
    decoded: int  # frames decoded in total, before sampling


def sample_indices(
    times: list[float], *, max_fps: float | None = None, max_frames: int | None = None
) -> list[int]:
    """Indices of the frames to keep: at most ``max_fps`` per second (the first frame of each
    1/max_fps slot), then at most ``max_frames`` of those, evenly spaced (first and last kept)."""
    keep = list(range(len(times)))
    if max_fps is not None and keep:
        start, last_slot, capped = times[0], None, []
        for index in keep:
            slot = int(np.floor((times[index] - start) * max_fps + 1e-6))
            if slot != last_slot:
                capped.append(index)
                last_slot = slot
        keep = capped
    if max_frames is not None and len(keep) > max_frames:
        chosen = np.linspace(0, len(keep) - 1, max_frames).round().astype(int)
        keep = [keep[i] for i in chosen]
    return keep


def decode_frames(
    path: str | os.PathLike[str], *, max_fps: float | None = None, max_frames: int | None = None
) -> DecodedClip:
    """Decode the first video stream of ``path`` and keep the sampled frames as RGB arrays."""
    path = Path(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: corrupt, truncated or not a video ({_reason(exc)})") from None
    with container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        # Frames stay as decoded PyAV frames until sampling: converting to RGB costs more than decoding.
        raw, times = [], []
        try:
            for frame in container.decode(stream):
                times.append(float(frame.time) if frame.time is not None else len(raw) / rate)
                raw.append(frame)
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(
                f"{path}: corrupt or truncated video, decoding stopped after {len(raw)} frames "
                f"({_reason(exc)})"
            ) from None
        promised = int(stream.frames or 0)
    if not raw:
        raise VideoError(f"{path}: the video stream has no frames")
    if promised and len(raw) < _TRUNCATED_SHARE * promised:
        raise VideoError(
            f"{path}: truncated video, {len(raw)} of the {promised} frames its header promises"
        )
    keep = sample_indices(times, max_fps=max_fps, max_frames=max_frames)
    frames = [raw[i].to_ndarray(format="rgb24") for i in keep]
    return DecodedClip(
        frames=frames, times=[times[i] for i in keep], indices=keep, decoded=len(raw)
    )


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def write_video(path: str | os.PathLike[str], frames: list[np.ndarray], *, fps: int = 25) -> None:
    """Write RGB uint8 frames as an H.264 (or MPEG-4 fallback) video; used by tests and benchmarks."""
    path = Path(path)
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
            stream.options = {"preset": "ultrafast", "crf": "18"}
        except (av.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
