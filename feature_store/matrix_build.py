"""Build many stores in one pass over the videos: ``build --recipe A.yaml --recipe B.yaml --out ROOT``.

Every store goes to ``ROOT/<recipe file stem>/``. The visual recipes run together through one
``ClipMatrix`` (decode, detect and align once per clip and setting; each backbone once per crop
and copy set; see ``feature_store.matrix``); audio recipes are built after them, one by one, by
the one-recipe engine (``build_store``).

The work folder ``<ROOT.parent>/.<ROOT.name>.work/`` holds

- ``stores/<stem>/``: finished clips of each unfinished store (a ``WorkDir`` each), so a stopped
  or killed build resumes at clip granularity for the whole matrix: a clip is redone only for the
  stores that lack it;
- ``tracks/``: the face-track cache (``feature_store.tracks``), keyed by track setting and the
  video's content hash. It is kept after the build, so a later build into the same ROOT with a
  new backbone or enhancement reuses the detection (delete the folder to reclaim the space).

Workers: in-process, ``--workers N`` processes, or Ray actors (``--ray``). The driver owns the
work folder: workers get a clip's cached tracks with the clip and send back its vectors and new
tracks, so Ray nodes need the videos but no shared filesystem. When the recipes run on CUDA
(local workers), the workers only decode, detect and align, and one consumer thread per GPU runs
every backbone on batches gathered across clips (``GpuConsumers``).
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from feature_store.build import (
    ClipError,
    WorkDir,
    _assemble,
    build_store,
    run_jobs,
    work_dir_for,
)
from feature_store.devices import resolve_device
from feature_store.errors import StoreError, StoreExistsError
from feature_store.manifest import read_manifest
from feature_store.matrix import ClipMatrix, MatrixOutcome
from feature_store.progress import BuildProgress
from feature_store.recipe import RecipeBase, load_recipe
from feature_store.store import META_FILE, Store
from feature_store.tracks import FaceTrack, TrackCache, content_hash
from feature_store.visual_recipe import VisualRecipe

#: Frames a GPU consumer gathers (over clips) before its backbone passes.
GPU_BATCH_FRAMES = 512
#: Images per backbone forward pass on a GPU, at least (a recipe's batch_size is sized for CPUs).
GPU_BATCH_IMAGES = 256


class MatrixJob:
    """What a worker runs per clip: the matrix of the visual recipes, built on first use."""

    def __init__(self, recipes: dict[str, VisualRecipe], *, features: bool) -> None:
        self.recipes, self.features = recipes, features
        self.matrix: ClipMatrix | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"recipes": self.recipes, "features": self.features, "matrix": None}

    def __call__(
        self,
        clip_id: str,
        path: str,
        names: Sequence[str],
        cached: dict[str, FaceTrack],
        video: str,
    ) -> MatrixOutcome | ClipError:
        if self.matrix is None:
            self.matrix = ClipMatrix(self.recipes, backbones=self.features)
        return self.matrix.run(
            clip_id, Path(path), names, cached, features=self.features, video=video or None
        )


@dataclass
class _Store:
    name: str
    recipe: RecipeBase
    path: Path  # the recipe file


def build_stores(
    manifest: str | os.PathLike[str],
    recipe_paths: Sequence[str | os.PathLike[str]],
    root: str | os.PathLike[str],
    *,
    workers: int = 1,
    skip_bad: bool = False,
    use_ray: bool = False,
    force: bool = False,
    progress: bool = True,
    stats: dict[str, float] | None = None,
) -> dict[str, Store]:
    """Build ``ROOT/<stem>/`` for every recipe from the clips of ``manifest``; resumable.
    ``stats``, when given, receives the visual stages' seconds and frames (for benchmarks)."""
    root = Path(root)
    if workers < 1:
        raise StoreError(f"--workers must be at least 1, got {workers}")
    stores = [_Store(Path(p).stem, load_recipe(p), Path(p)) for p in recipe_paths]
    names = [store.name for store in stores]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise StoreError(f"two recipes would write the same store ROOT/{twice[0]}/; rename one")
    existing = [s.name for s in stores if (root / s.name / META_FILE).exists()]
    if existing and not force:
        raise StoreExistsError(
            f"{root}: already holds the store(s) {', '.join(existing)}; refusing to overwrite "
            "(use --force, or leave their recipes out)"
        )
    clips = read_manifest(manifest)
    built: dict[str, Store] = {}
    visual = {s.name: s for s in stores if isinstance(s.recipe, VisualRecipe)}
    if visual:
        built.update(
            _build_visual(
                clips, manifest, visual, root, workers, skip_bad, use_ray, force, progress, stats
            )
        )
    for store in stores:
        if store.name not in visual:
            built[store.name] = build_store(
                manifest,
                store.path,
                root / store.name,
                workers=workers,
                skip_bad=skip_bad,
                use_ray=use_ray,
                force=force,
                progress=progress,
            )
    return built


def _build_visual(
    clips,
    manifest,
    stores: dict[str, _Store],
    root: Path,
    workers: int,
    skip_bad: bool,
    use_ray: bool,
    force: bool,
    progress: bool,
    stats: dict[str, float] | None,
) -> dict[str, Store]:
    recipes = {name: store.recipe for name, store in stores.items()}
    # Built here first: a recipe or weights problem stops the build before any clip is touched.
    matrix = ClipMatrix(recipes)
    work_root = work_dir_for(root)
    works = {
        name: WorkDir(work_root / "stores" / name, store.recipe, force=force)
        for name, store in stores.items()
    }
    cache = TrackCache(work_root / "tracks")
    todo = []
    for row in clips.itertuples(index=False):
        needed = tuple(name for name in recipes if not works[name].has(row.clip_id))
        if needed:
            todo.append((row.clip_id, row.path, needed))
    needed = {clip_id: names for clip_id, _, names in todo}
    gpus = _local_gpus(recipes) if not use_ray else 0
    job = MatrixJob(recipes, features=not gpus)
    if workers == 1 and not gpus:
        job.matrix = matrix
    bar = BuildProgress(
        len(clips),
        initial=len(clips) - len(todo),
        desc=f"build {len(recipes)} visual stores",
        enabled=progress,
    )
    rejected: dict[str, dict[str, str]] = {name: {} for name in recipes}
    outcomes = run_jobs(
        job,
        _items(todo, matrix, cache),
        workers=workers,
        use_ray=use_ray,
        gpus=int(any(r.device == "cuda" for r in recipes.values())),
        count=len(todo),
    )
    if gpus:
        outcomes = GpuConsumers(recipes, gpus, first=matrix).features(outcomes, todo)
    try:
        for outcome in outcomes:
            if isinstance(outcome, ClipError):
                if not skip_bad:
                    raise outcome
                for name in needed[outcome.clip_id]:  # stores that have the clip keep it
                    rejected[name][outcome.clip_id] = outcome.reason
                bar.write(f"skipped {outcome}")
                bar.update()
                continue
            for track in outcome.tracks.values():
                cache.save(track)
            for name, result in outcome.results.items():
                if isinstance(result, ClipError):
                    if not skip_bad:
                        raise result
                    rejected[name][result.clip_id] = result.reason
                    bar.write(f"skipped in {name}: {result}")
                else:
                    works[name].save(result)
            bar.update({**outcome.timings, "frames": outcome.frames})
    finally:
        outcomes.close()
        bar.close()
    if stats is not None:
        stats.update(bar.timings)
    built = {}
    for name, store in stores.items():
        plan = matrix.plans[name]
        built[name] = _assemble(
            clips, store.recipe, plan.dim, plan.meta, plan.preview_file, works[name],
            rejected[name], root / name, manifest, force=force,
        )  # fmt: skip
    shutil.rmtree(work_root / "stores", ignore_errors=True)
    return built


def _items(
    todo: list[tuple[str, str, tuple[str, ...]]], matrix: ClipMatrix, cache: TrackCache
) -> Iterator[tuple[Any, ...]]:
    """Each clip with its cached face tracks, read only when a worker is free for it."""
    for clip_id, path, names in todo:
        cached, video = {}, ""
        if Path(path).is_file():  # else the worker reports the missing file
            video = content_hash(path)
            for key in matrix.wanted(names):
                track = cache.load(key, video)
                if track is not None:
                    cached[key] = track
        yield clip_id, path, names, cached, video


def _local_gpus(recipes: dict[str, VisualRecipe]) -> int:
    """GPUs for the consumers: all visible ones when the recipes run on CUDA, else none."""
    devices = {resolve_device(recipe.device).type for recipe in recipes.values()}
    return torch.cuda.device_count() if devices == {"cuda"} else 0


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
