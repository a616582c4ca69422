"""The generic, resumable store-build engine: manifest + recipe -> one feature store.

Each modality plugs in an ``Extractor`` (raw clip file -> ``[n, dim]`` vectors + provenance),
registered with ``@register_extractor("visual")`` in its package ``feature_store/<modality>/``
(imported on demand, see ``feature_store.recipe.import_modality``). The engine does everything
else:

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

Its parts: ``extractor`` (the plug-in contract), ``workers`` (processes and Ray actors),
``workdir`` (finished clips of an unfinished build), ``assemble`` (the store, ``rejected.csv``,
the contact sheet). Several recipes in one pass over the videos:
``feature_store.visual.matrix_build``, which shares those parts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from feature_store.assemble import assemble_store, no_face_warning, without_face
from feature_store.extractor import ClipError, ClipResult, ExtractJob, make_extractor
from feature_store.manifest import read_manifest
from feature_store.progress import BuildProgress
from feature_store.recipe import load_recipe
from feature_store.store.reader import Store
from feature_store.store.writer import check_out
from feature_store.workdir import WorkDir, work_dir_for
from feature_store.workers import check_workers, run_jobs


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
    classes: Sequence[str] | None = None,
) -> Store:
    """Build the store at ``out`` from every clip of ``manifest`` with the recipe; resumable."""
    out = Path(out)
    check_out(out, force=force)  # before any clip: --force replaces only a store
    check_workers(workers)
    clips = read_manifest(manifest, classes=classes)
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
                if without_face(outcome):
                    bar.write(no_face_warning(outcome))
            bar.update(_frames_timing(outcome))
    finally:
        outcomes.close()  # stops the workers now, not when the traceback is freed
        bar.close()
    return assemble_store(
        clips, recipe, extractor.dim, extractor.meta, extractor.preview_file, work, rejected, out,
        manifest, force=force, save_previews=extractor.save_previews,
    )  # fmt: skip


def _frames_timing(outcome: ClipResult | ClipError) -> dict[str, float]:
    # Extractors report frames but not stages: the clip's frames count for the whole pipeline.
    return {} if isinstance(outcome, ClipError) else {"frames": outcome.frames}
