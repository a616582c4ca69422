"""The generic, resumable store-build engine: manifest + recipe -> one feature store.

Each modality plugs in an ``Extractor`` (raw clip file -> ``[n, dim]`` vectors + provenance),
registered with ``@register_extractor("visual")`` in ``feature_store/<modality>.py`` (imported on
demand, see ``feature_store.recipe.import_modality``). The engine does everything else:

- runs extractors in-process (``workers=1``), in parallel worker processes, or on Ray actors
  (``use_ray``; ``ray.init()`` without an address, one GPU per actor when the recipe says cuda);
- keeps one finished ``.npz`` per clip in a work directory beside the output
  (``<out.parent>/.<out.name>.work/``), so a re-run skips finished clips and an interrupted or
  failed build loses nothing;
- stops on the first bad clip (``ClipError``) with one line naming it, or with ``skip_bad``
  lists it in ``rejected.csv`` (clip_id,path,reason) and goes on;
- writes the store atomically with ``StoreWriter`` at the end, adds ``rejected.csv`` and the
  extractor's contact sheet, and only then removes the work directory;
- shows progress (``feature_store.progress``): clips done, frames/s, time left.

    python -m feature_store build --manifest CSV --recipe conf/store/NAME.yaml --out DIR \
        [--workers N] [--skip-bad] [--ray] [--force]

Several recipes in one pass over the videos: ``feature_store.matrix_build``, which reuses the
work directory, the worker pools (``run_jobs``) and the store assembly from here.
"""

from __future__ import annotations

import concurrent.futures as futures
import csv
import hashlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from feature_store.errors import StoreError
from feature_store.manifest import read_manifest
from feature_store.progress import BuildProgress
from feature_store.recipe import RecipeBase, import_modality, load_recipe
from feature_store.store import Store, StoreWriter, check_out

REJECTED_FILE = "rejected.csv"
PREVIEW_CLIPS = 8  # clips shown on the contact sheet


class ClipError(StoreError):
    """One clip cannot be turned into features (missing, corrupt, no frames, ...)."""

    def __init__(self, clip_id: str, reason: str) -> None:
        super().__init__(f"clip {clip_id!r}: {reason}")
        self.clip_id = clip_id
        self.reason = reason

    def __reduce__(self):  # keeps both fields across process boundaries
        return (ClipError, (self.clip_id, self.reason))


class Extractor(ABC):
    """Turns one raw clip into feature vectors; one per worker, built from the recipe there.

    Subclasses set ``dim`` (vector size) and ``meta`` (goes into store.json: ``backbone``,
    ``pretrain``, ``enhancement`` and anything else worth recording) in ``__init__``.
    """

    dim: int
    meta: dict[str, Any]
    #: file name of the contact sheet that tiles a few clips' ``preview()`` images
    preview_file: ClassVar[str] = "contact_sheet.png"

    @abstractmethod
    def extract(self, clip_id: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        """``[n, dim]`` float32 vectors (n may be 0) and scalar provenance columns for
        clips.parquet. A key ``frames_decoded`` also feeds the frames/s figure. Raise
        ``ClipError(clip_id, reason)`` for a bad clip; the engine has already checked that
        ``path`` is a file."""

    def preview(self) -> np.ndarray | None:
        """Optional uint8 ``[h, w, 3]`` image of the clip just extracted (e.g. its face crops)."""
        return None


ExtractorFactory = Callable[[Any], Extractor]
EXTRACTORS: dict[str, ExtractorFactory] = {}
_F = TypeVar("_F", bound=ExtractorFactory)


def register_extractor(modality: str) -> Callable[[_F], _F]:
    """Decorator: ``factory(recipe) -> Extractor`` for one modality."""

    def register(factory: _F) -> _F:
        EXTRACTORS[modality] = factory
        return factory

    return register


def make_extractor(recipe: RecipeBase) -> Extractor:
    if recipe.modality not in EXTRACTORS:
        import_modality(recipe.modality)
    try:
        factory = EXTRACTORS[recipe.modality]
    except KeyError:
        raise StoreError(
            f"no extractor for modality {recipe.modality!r}; known: {', '.join(sorted(EXTRACTORS))}"
        ) from None
    return factory(recipe)


# -- one clip ---------------------------------------------------------------------------------


@dataclass
class ClipResult:
    clip_id: str
    vectors: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    preview: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.info.get("frames_decoded", len(self.vectors)))


def check_vectors(clip_id: str, vectors: Any, dim: int, source: Path | None = None) -> np.ndarray:
    """``vectors`` as float32 ``[n, dim]``; NaN or Inf make the clip a ``ClipError``."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise StoreError(
            f"clip {clip_id!r}: extractor returned shape {list(vectors.shape)}, expected [n, {dim}]"
        )
    if not np.isfinite(vectors).all():
        raise ClipError(clip_id, f"{source or 'the clip'}: features contain NaN or Inf")
    return vectors


def run_extractor(extractor: Extractor, clip_id: str, path: str) -> ClipResult | ClipError:
    """Extract one clip; a bad clip comes back as a ``ClipError`` value (cheap to ship back)."""
    source = Path(path)
    if not source.is_file():
        return ClipError(clip_id, f"{source}: no such file")
    try:
        vectors, info = extractor.extract(clip_id, source)
        vectors = check_vectors(clip_id, vectors, extractor.dim, source)
    except ClipError as exc:
        return exc
    return ClipResult(clip_id, vectors, dict(info), extractor.preview())


class ExtractJob:
    """What a worker runs per clip for a one-recipe build: its extractor, built on first use (in
    the worker, so only the recipe travels)."""

    def __init__(self, recipe: RecipeBase) -> None:
        self.recipe = recipe
        self.extractor: Extractor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"recipe": self.recipe, "extractor": None}

    def __call__(self, clip_id: str, path: str) -> ClipResult | ClipError:
        if self.extractor is None:
            self.extractor = make_extractor(self.recipe)
        return run_extractor(self.extractor, clip_id, path)


# Worker processes and Ray actors hold one job (built from its pickled state) for all their clips.
_WORKER: dict[str, Any] = {}


def _worker_init(job: Callable[..., Any], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER["job"] = job


def _worker_run(*item: Any) -> Any:
    return _WORKER["job"](*item)


class _RayWorker:
    """A Ray actor holding one job (the class is wrapped with ``ray.remote`` at build time)."""

    def __init__(self, job: Callable[..., Any], threads: int) -> None:
        _worker_init(job, threads)

    def run(self, *item: Any) -> Any:
        return _worker_run(*item)


# -- the work directory -----------------------------------------------------------------------


def work_dir_for(out: Path) -> Path:
    return out.parent / f".{out.name}.work"


class WorkDir:
    """Finished clips of an unfinished build, one ``.npz`` each, plus the recipe they came from."""

    def __init__(self, path: Path, recipe: RecipeBase, *, force: bool) -> None:
        self.path = path
        self.clips = path / "clips"
        fingerprint = json.dumps(recipe.fingerprint(), sort_keys=True)
        stamp = path / "recipe.json"
        if stamp.is_file() and stamp.read_text() != fingerprint:
            if not force:
                raise StoreError(
                    f"{path}: holds an unfinished build made with a different recipe; "
                    "use --force to discard it, or build with the same recipe to resume"
                )
            shutil.rmtree(path)
        self.clips.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)

    def file(self, clip_id: str) -> Path:
        # Clip ids may hold any character; a hash keeps the names safe and distinct.
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", clip_id)[:40]
        digest = hashlib.sha1(clip_id.encode()).hexdigest()[:12]
        return self.clips / f"{safe}-{digest}.npz"

    def has(self, clip_id: str) -> bool:
        return self.file(clip_id).is_file()

    def save(self, result: ClipResult) -> None:
        target = self.file(result.clip_id)
        tmp = target.with_name(f".{target.stem}.{uuid.uuid4().hex[:8]}.npz")
        arrays = {
            "vectors": result.vectors,
            "info": np.array(json.dumps(result.info, default=_json_scalar)),
        }
        if result.preview is not None:
            arrays["preview"] = np.asarray(result.preview, dtype=np.uint8)
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, target)  # a clip's file is complete or absent

    def load(self, clip_id: str) -> ClipResult:
        path = self.file(clip_id)
        try:
            with np.load(path, allow_pickle=False) as data:
                preview = data["preview"] if "preview" in data.files else None
                return ClipResult(clip_id, data["vectors"], json.loads(str(data["info"])), preview)
        except (OSError, ValueError, KeyError) as exc:
            path.unlink(missing_ok=True)
            raise StoreError(
                f"{path}: damaged work file for clip {clip_id!r} ({exc}); removed it, run again"
            ) from None


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"provenance value {value!r} is not a scalar")


# -- the build --------------------------------------------------------------------------------


def build_store(
    manifest: str | os.PathLike[str],
    recipe_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    workers: int = 1,
    skip_bad: bool = False,
    use_ray: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Store:
    """Build the store at ``out`` from every clip of ``manifest`` with the recipe; resumable."""
    out = Path(out)
    check_out(out, force=force)  # before any clip: --force replaces only a store
    if workers < 1:
        raise StoreError(f"--workers must be at least 1, got {workers}")
    clips = read_manifest(manifest)
    recipe = load_recipe(recipe_path)
    # Built here first: a recipe or weights problem stops the build before any clip is touched,
    # and dim/meta come from it.
    extractor = make_extractor(recipe)
    work = WorkDir(work_dir_for(out), recipe, force=force)
    todo = [
        (row.clip_id, row.path)
        for row in clips.itertuples(index=False)
        if not work.has(row.clip_id)
    ]
    rejected: dict[str, str] = {}
    bar = BuildProgress(
        len(clips), initial=len(clips) - len(todo), desc=f"build {recipe.name}", enabled=progress
    )
    job = ExtractJob(recipe)
    job.extractor = extractor
    outcomes = run_jobs(
        job,
        iter(todo),
        workers=workers,
        use_ray=use_ray,
        gpus=int(recipe.device == "cuda"),
        count=len(todo),
    )
    try:
        for outcome in outcomes:
            if isinstance(outcome, ClipError):
                if not skip_bad:
                    raise outcome
                rejected[outcome.clip_id] = outcome.reason
                bar.write(f"skipped {outcome}")
            else:
                work.save(outcome)
            bar.update(_frames_timing(outcome))
    finally:
        outcomes.close()  # stops the workers now, not when the traceback is freed
        bar.close()
    return _assemble(
        clips, recipe, extractor.dim, extractor.meta, extractor.preview_file, work, rejected, out,
        manifest, force=force,
    )  # fmt: skip


def _frames_timing(outcome: ClipResult | ClipError) -> dict[str, float]:
    # Extractors report frames but not stages: the clip's frames count for the whole pipeline.
    return {} if isinstance(outcome, ClipError) else {"frames": outcome.frames}


def run_jobs(
    job: Callable[..., Any],
    items: Iterator[tuple[Any, ...]],
    *,
    workers: int,
    use_ray: bool,
    gpus: int = 0,
    count: int | None = None,
) -> Iterator[Any]:
    """``job(*item)`` for every item, in-process (one worker), in worker processes or on Ray
    actors; results in the order they finish. Items are drawn only as workers come free, so an
    item may carry data (a clip's cached face tracks) without all of them sitting in memory. ``count`` (how many items, when known) caps the
    workers started."""
    if count is not None:
        workers = max(1, min(workers, count))
    if use_ray:
        yield from _ray_outcomes(job, items, workers, gpus, count)
    elif workers == 1:
        for item in items:
            yield job(*item)
    else:
        yield from _process_outcomes(job, items, workers)


def _process_outcomes(
    job: Callable[..., Any], items: Iterator[tuple[Any, ...]], workers: int
) -> Iterator[Any]:
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn: torch and dlib are not fork-safe once their thread pools have started.
    pool = futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(job, threads),
    )
    pending: set[futures.Future] = set()
    try:
        while True:
            for item in itertools.islice(items, 2 * workers - len(pending)):
                pending.add(pool.submit(_worker_run, *item))
            if not pending:
                return
            done, pending = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            for finished in done:
                yield finished.result()
    finally:
        # On a stop (bad clip, Ctrl-C, error) queued clips are dropped; running ones finish and
        # are simply not saved, finished ones already are.
        for item in pending:
            item.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _ray_outcomes(
    job: Callable[..., Any],
    items: Iterator[tuple[Any, ...]],
    workers: int,
    gpus: int,
    count: int | None,
) -> Iterator[Any]:
    import ray
    from ray.util import ActorPool

    if not ray.is_initialized():
        ray.init()  # no address: a submitted job joins its cluster, otherwise a local one starts
    resources = ray.cluster_resources()
    if gpus and resources.get("GPU", 0) < 1:
        raise StoreError("the recipe asks for device cuda but the Ray cluster has no GPU")
    if workers > 1:
        actors = workers
    else:
        actors = int(resources.get("GPU", 0)) if gpus else int(resources.get("CPU", 1))
    actors = max(1, min(actors, count or actors))
    cpus_each = max(1, int(resources.get("CPU", 1)) // actors)
    # A lost actor (its node gone, its process killed) is restarted and its clip retried: only
    # the clips in flight on it are redone, finished ones are already back at the driver.
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_restarts=-1, max_task_retries=3)(_RayWorker)
    handles = [remote.remote(job, cpus_each) for _ in range(actors)]
    pool = ActorPool(handles)
    try:
        while True:
            while pool.has_free():
                item = next(items, None)
                if item is None:
                    break
                pool.submit(lambda actor, value: actor.run.remote(*value), item)
            if not pool.has_next():
                return
            yield pool.get_next_unordered()
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, StoreError):
            raise cause from None
        raise
    finally:
        for handle in handles:
            ray.kill(handle, no_restart=True)


def _assemble(
    clips,
    recipe: RecipeBase,
    dim: int,
    meta: dict[str, Any],
    preview_file: str,
    work: WorkDir,
    rejected: dict[str, str],
    out: Path,
    manifest: str | os.PathLike[str],
    *,
    force: bool,
) -> Store:
    kept = clips[~clips["clip_id"].isin(rejected)]
    if kept.empty:
        raise StoreError(
            f"{out}: every clip was rejected, so there is no store to write (see above)"
        )
    meta = dict(meta)
    previews: list[tuple[str, np.ndarray]] = []
    with StoreWriter(
        out,
        name=recipe.name or out.name,
        modality=recipe.modality,
        dim=dim,
        backbone=meta.pop("backbone", None),
        pretrain=meta.pop("pretrain", None),
        enhancement=meta.pop("enhancement", None),
        recipe=recipe.model_dump(mode="json"),
        extra={
            **meta,
            "manifest": str(Path(manifest).resolve()),
            "num_rejected": len(rejected),
        },
        force=force,
    ) as writer:
        for row in kept.itertuples(index=False):
            result = work.load(row.clip_id)
            writer.add(
                row.clip_id,
                row.split,
                row.label,
                result.vectors,
                source_path=row.path,
                **result.info,
            )
            if result.preview is not None and len(previews) < PREVIEW_CLIPS:
                previews.append((row.clip_id, result.preview))
        store = writer.close()
    if rejected:
        _write_rejected(out / REJECTED_FILE, clips, rejected)
    if previews:
        save_contact_sheet(out / preview_file, previews)
    shutil.rmtree(work.path, ignore_errors=True)
    return store


def _write_rejected(path: Path, clips, rejected: dict[str, str]) -> None:
    paths = dict(zip(clips["clip_id"], clips["path"]))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "path", "reason"])
        for clip_id, reason in rejected.items():
            writer.writerow([clip_id, paths[clip_id], reason])


def save_contact_sheet(path: Path, previews: list[tuple[str, np.ndarray]]) -> None:
    """One row per clip: its clip id, then its preview image (PNG). Drawn with PIL: matplotlib's
    import and layout took seconds, a share of a short build."""
    from PIL import Image, ImageDraw

    label, gap = 14, 6
    widest = max(image.shape[1] for _, image in previews)
    height = sum(label + image.shape[0] + gap for _, image in previews)
    sheet = Image.new("RGB", (widest, height), "white")
    draw = ImageDraw.Draw(sheet)
    top = 0
    for clip_id, image in previews:
        draw.text((2, top + 1), clip_id, fill="black")
        sheet.paste(Image.fromarray(np.ascontiguousarray(image[..., :3])), (0, top + label))
        top += label + image.shape[0] + gap
    sheet.save(path)
