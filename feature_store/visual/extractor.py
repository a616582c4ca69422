"""The visual pipeline as an ``Extractor``: video clip -> sampled frames -> face crops ->
backbone(s) -> enhanced per-frame vectors. The build engine (``feature_store.build``) runs it per
clip; this module registers it for ``modality: visual`` recipes (``feature_store.visual.recipe``).
It is the one-recipe case of ``feature_store.visual.matrix.ClipMatrix``, which a build of many
recipes uses directly.

    python -m feature_store build --manifest clips.csv --recipe conf/store/dlib-resnet-basic.yaml \
        --out data/stores/visual/dlib-resnet-basic
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.extractor import ClipError, Extractor, register_extractor
from feature_store.visual.matrix import ClipMatrix
from feature_store.visual.recipe import VisualRecipe


class VisualExtractor(Extractor):
    """Per clip: decode and sample frames, crop faces, run the enhancement over the backbone(s)."""

    def __init__(self, recipe: VisualRecipe) -> None:
        self.recipe = recipe
        self.name = recipe.name or "store"
        self.matrix = ClipMatrix({self.name: recipe})
        plan = self.matrix.plans[self.name]
        self.dim, self.meta = plan.dim, dict(plan.meta)
        self.enhancement = plan.enhancement
        self.backbones = [self.matrix.backbones[f.backbone] for f in plan.features]
        # seconds (and frames) per stage, for the benchmark
        self.timings: dict[str, float] = defaultdict(float)
        self._preview: np.ndarray | None = None

    def extract(self, clip_id: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        outcome = self.matrix.run(clip_id, path, [self.name], cached={}, video="-")
        if isinstance(outcome, ClipError):
            raise outcome
        for stage, seconds in outcome.timings.items():
            self.timings[stage] += seconds
        result = outcome.results[self.name]
        if isinstance(result, ClipError):
            raise result
        self.timings["frames"] += result.info["frames_used"]
        self._preview = result.preview
        return result.vectors, result.info

    def preview(self) -> np.ndarray | None:
        return self._preview


@register_extractor("visual")
def visual_extractor(recipe: VisualRecipe) -> VisualExtractor:
    return VisualExtractor(recipe)
