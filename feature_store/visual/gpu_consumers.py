"""Visual builds on CUDA: the workers only decode, detect and align, and one consumer thread per
GPU, each with its own copy of every backbone, turns their face tracks into vectors in batches
gathered across clips (``GPU_BATCH_FRAMES``), so small clips still fill the GPU.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from feature_store.extractor import ClipError
from feature_store.visual.matrix import ClipMatrix, MatrixOutcome
from feature_store.visual.recipe import VisualRecipe

#: Frames a GPU consumer gathers (over clips) before its backbone passes.
GPU_BATCH_FRAMES = 512
#: Images per backbone forward pass on a GPU, at least (a recipe's batch_size is sized for CPUs).
GPU_BATCH_IMAGES = 256


class GpuConsumers:
    """One thread per GPU, each with its own copy of every backbone, turning the workers' face
    tracks into vectors; a consumer gathers clips until it has ``GPU_BATCH_FRAMES`` frames (or no
    more are waiting) and runs each shared feature over all of them in one pass."""

    def __init__(self, recipes: dict[str, VisualRecipe], gpus: int, first: ClipMatrix) -> None:
        # The driver's matrix already holds the models on the current GPU (device "cuda").
        self.matrices = [first] + [ClipMatrix(recipes, f"cuda:{i}") for i in range(1, gpus)]
        for matrix in self.matrices:
            for key, size in matrix.batch_sizes.items():
                matrix.batch_sizes[key] = max(size, GPU_BATCH_IMAGES)

    def features(
        self, tracked: Iterator[MatrixOutcome | ClipError], todo: list[tuple[str, str, tuple]]
    ) -> Iterator[MatrixOutcome | ClipError]:
        names = {clip_id: needed for clip_id, _, needed in todo}
        inbox: queue.Queue = queue.Queue(maxsize=64)  # clips waiting for a consumer
        outbox: queue.Queue = queue.Queue()
        threads = [
            threading.Thread(target=self._consume, args=(m, inbox, outbox, names), daemon=True)
            for m in self.matrices
        ]
        for thread in threads:
            thread.start()
        pending = 0
        try:
            for outcome in tracked:
                if isinstance(outcome, ClipError):
                    yield outcome
                    continue
                inbox.put(outcome)
                pending += 1
                while not outbox.empty():
                    pending -= 1
                    yield _raise_or(outbox.get())
            for _ in range(pending):
                yield _raise_or(outbox.get())
        finally:
            tracked.close()
            for _ in threads:  # each consumer stops at the first None it takes
                inbox.put(None)

    @staticmethod
    def _consume(matrix: ClipMatrix, inbox, outbox, names: dict[str, tuple[str, ...]]) -> None:
        stop = False
        while not stop:
            batch = [inbox.get()]
            stop = batch[0] is None
            frames = 0 if stop else _frames(batch[0])
            while not stop and frames < GPU_BATCH_FRAMES and not inbox.empty():
                item = inbox.get()
                if item is None:
                    stop = True
                    break
                batch.append(item)
                frames += _frames(item)
            batch = [item for item in batch if item is not None]
            if not batch:
                continue
            timings: dict[str, float] = {"backbone": 0.0, "backbone_frames": 0.0}
            try:
                results = matrix.feature_stage(
                    [(o.clip_id, names[o.clip_id], o.inputs) for o in batch], timings
                )
            except BaseException as exc:  # handed to the driver thread, which raises it
                for _ in batch:
                    outbox.put(exc)
                continue
            for outcome, result in zip(batch, results):
                share = {key: value / len(batch) for key, value in timings.items()}
                outbox.put(
                    MatrixOutcome(
                        outcome.clip_id,
                        result,
                        outcome.tracks,
                        {**outcome.timings, **share},
                    )
                )


def _frames(outcome: MatrixOutcome) -> int:
    return max(len(track.indices) for track in outcome.inputs.values())


def _raise_or(item: Any) -> Any:
    if isinstance(item, BaseException):
        raise item
    return item
