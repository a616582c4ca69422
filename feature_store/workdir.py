"""The work directory of an unfinished build, beside its output (``<out.parent>/.<out.name>.work/``):
one finished ``.npz`` per clip (complete or absent) and the recipe fingerprint they came from, so
a re-run skips finished clips and a build with another recipe is refused (or, with ``--force``,
starts over).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.errors import StoreError
from feature_store.extractor import ClipResult
from feature_store.recipe import RecipeBase


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
            arrays["preview"] = np.asarray(result.preview)  # the extractor's dtype (image or data)
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
