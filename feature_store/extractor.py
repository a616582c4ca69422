"""The plug-in contract of the build engine: an ``Extractor`` turns one raw clip file into
``[n, dim]`` vectors and provenance; each modality registers a factory with
``@register_extractor("visual")`` in its package ``feature_store/<modality>/`` (imported on
demand by ``make_extractor``, see ``feature_store.recipe.import_modality``). A bad clip is a
``ClipError`` value, cheap to ship back from a worker; ``ExtractJob`` is what a worker runs per
clip.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from feature_store.errors import StoreError
from feature_store.previews import save_contact_sheet
from feature_store.recipe import RecipeBase, import_modality


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
        """Optional preview of the clip just extracted: a uint8 ``[h, w, 3]`` image (its face
        crops) for the default contact sheet, or the array this extractor's ``save_previews``
        draws."""
        return None

    def save_previews(self, path: Path, previews: list[tuple[str, np.ndarray]]) -> None:
        """Draw a few clips' ``(clip_id, preview())`` into ``path`` (``preview_file``): by default
        the images tiled under their clip ids."""
        save_contact_sheet(path, previews)


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
