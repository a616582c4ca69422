"""The last step of a build: the finished clips of a work directory become the store (written
atomically by ``StoreWriter``), then ``rejected.csv`` (clip_id,path,reason) and the extractor's
contact sheet are added and only then the work directory is removed. A visual store records how
many of its clips had no face in any frame (``num_without_face``, beside ``num_rejected``); the
build names each such clip in a warning line as it finishes (``no_face_warning``).
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.errors import StoreError
from feature_store.extractor import ClipResult
from feature_store.previews import save_contact_sheet
from feature_store.recipe import RecipeBase
from feature_store.store.reader import Store
from feature_store.store.writer import StoreWriter
from feature_store.workdir import WorkDir

REJECTED_FILE = "rejected.csv"
PREVIEW_CLIPS = 8  # clips shown on the contact sheet
SavePreviews = Callable[[Path, list[tuple[str, np.ndarray]]], Any]


def without_face(result: ClipResult) -> bool:
    """A visual clip in which no sampled frame had a face: its whole frames were used."""
    return result.info.get("frames_with_face") == 0


def no_face_warning(result: ClipResult, stores: Sequence[str] = ()) -> str:
    """The warning line of a clip without a face (``stores``: where, when not in all of them)."""
    where = f" (stores {', '.join(stores)})" if stores else ""
    frames = result.info.get("frames_used", result.frames)
    sampled = "its one sampled frame" if frames == 1 else f"any of its {frames} sampled frames"
    return f"warning: clip {result.clip_id!r}: no face in {sampled}; whole frames used{where}"


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
    save_previews: SavePreviews = save_contact_sheet,
) -> Store:
    kept = clips[~clips["clip_id"].isin(rejected)]
    if kept.empty:
        raise StoreError(
            f"{out}: every clip was rejected, so there is no store to write (see above)"
        )
    meta = dict(meta)
    spec = clips.attrs.get("spec")  # the manifest's classes and protocol (read_manifest)
    dataset = {} if spec is None else {"dataset": spec.dataset, "protocol": spec.protocol.as_dict()}
    protocol_columns = [name for name in ("fold", "speaker") if name in clips.columns]
    previews: list[tuple[str, np.ndarray]] = []
    faceless: int | None = None  # clips without a face in any frame; None: no faces were sought
    with StoreWriter(
        out,
        name=recipe.name or out.name,
        modality=recipe.modality,
        dim=dim,
        **({} if spec is None else {"classes": spec.classes}),
        backbone=meta.pop("backbone", None),
        pretrain=meta.pop("pretrain", None),
        enhancement=meta.pop("enhancement", None),
        recipe=recipe.model_dump(mode="json"),
        extra={
            **meta,
            **dataset,
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
                **{name: getattr(row, name) for name in protocol_columns},
                **result.info,
            )
            if result.preview is not None and len(previews) < PREVIEW_CLIPS:
                previews.append((row.clip_id, result.preview))
            if "frames_with_face" in result.info:
                faceless = (faceless or 0) + int(without_face(result))
        if faceless is not None:
            writer.meta["num_without_face"] = faceless
        store = writer.close()
    if rejected:
        _write_rejected(out / REJECTED_FILE, clips, rejected)
    if previews:
        save_previews(out / preview_file, previews)
    shutil.rmtree(work.path, ignore_errors=True)
    return store


def _write_rejected(path: Path, clips, rejected: dict[str, str]) -> None:
    paths = dict(zip(clips["clip_id"], clips["path"]))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "path", "reason"])
        for clip_id, reason in rejected.items():
            writer.writerow([clip_id, paths[clip_id], reason])
