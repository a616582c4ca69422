"""The last step of a build: the finished clips of a work directory become the store (written
atomically by ``StoreWriter``), then ``rejected.csv`` (clip_id,path,reason) and the extractor's
contact sheet are added and only then the work directory is removed.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.errors import StoreError
from feature_store.recipe import RecipeBase
from feature_store.store.reader import Store
from feature_store.store.writer import StoreWriter
from feature_store.workdir import WorkDir

REJECTED_FILE = "rejected.csv"
PREVIEW_CLIPS = 8  # clips shown on the contact sheet


def assemble_store(
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
