"""Build many stores in one pass over the videos: ``build --recipe A.yaml --recipe B.yaml --out ROOT``.

Every store goes to ``ROOT/<recipe file stem>/``. The visual recipes run together through one
``ClipMatrix`` (decode, detect and align once per clip and setting; each backbone once per crop
and copy set; see ``feature_store.visual.matrix``); audio recipes are built after them, one by
one, by the one-recipe engine (``build_store``).

The work folder ``<ROOT.parent>/.<ROOT.name>.work/`` holds

- ``stores/<stem>/``: finished clips of each unfinished store (a ``WorkDir`` each), so a stopped
  or killed build resumes at clip granularity for the whole matrix: a clip is redone only for the
  stores that lack it;
- ``tracks/``: the face-track cache (``feature_store.visual.tracks``), keyed by track setting and
  the video's content hash. It is kept after the build, so a later build into the same ROOT with a
  new backbone or enhancement reuses the detection (delete the folder to reclaim the space).

Workers: in-process, ``--workers N`` processes, or Ray actors (``--ray``). The driver owns the
work folder: workers get a clip's cached tracks with the clip and send back its vectors and new
tracks, so Ray nodes need the videos but no shared filesystem. When the recipes run on CUDA
(local workers), the workers only decode, detect and align, and one consumer thread per GPU runs
every backbone on batches gathered across clips (``GpuConsumers``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from feature_store.assemble import assemble_store, no_face_warning, without_face
from feature_store.build import build_store
from feature_store.devices import resolve_device
from feature_store.errors import StoreError, StoreExistsError
from feature_store.extractor import ClipError
from feature_store.manifest import read_manifest
from feature_store.progress import BuildProgress
from feature_store.recipe import RecipeBase, load_recipe
from feature_store.store.format import META_FILE
from feature_store.store.reader import Store
from feature_store.visual.gpu_consumers import GpuConsumers
from feature_store.visual.matrix import ClipMatrix, MatrixOutcome
from feature_store.visual.recipe import VisualRecipe
from feature_store.visual.tracks import FaceTrack, TrackCache, content_hash
from feature_store.workdir import WorkDir, work_dir_for
from feature_store.workers import check_workers, run_jobs


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
    classes: Sequence[str] | None = None,
) -> dict[str, Store]:
    """Build ``ROOT/<stem>/`` for every recipe from the clips of ``manifest``; resumable.
    ``stats``, when given, receives the visual stages' seconds and frames (for benchmarks)."""
    root = Path(root)
    check_workers(workers)
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
    clips = read_manifest(manifest, classes=classes)
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
                classes=classes,
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
            faceless = []
            for name, result in outcome.results.items():
                if isinstance(result, ClipError):
                    if not skip_bad:
                        raise result
                    rejected[name][result.clip_id] = result.reason
                    bar.write(f"skipped in {name}: {result}")
                else:
                    works[name].save(result)
                    if without_face(result):
                        faceless.append((name, result))
            if faceless:  # one line per clip; the stores named when only some found no face
                some = len(faceless) < len(outcome.results)
                bar.write(no_face_warning(faceless[0][1], [n for n, _ in faceless] if some else ()))
            bar.update({**outcome.timings, "frames": outcome.frames})
    finally:
        outcomes.close()
        bar.close()
    if stats is not None:
        stats.update(bar.timings)
    built = {}
    for name, store in stores.items():
        plan = matrix.plans[name]
        built[name] = assemble_store(
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
