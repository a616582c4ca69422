"""The visual recipe (``modality: visual``): video clips -> per-frame face features.

Its sections live in ``feature_store.visual.specs``; this model names a registered enhancement
and one or two registered backbones (``RecipeBackbone`` checks the name against
``feature_store.visual.backbones``), and registers itself for ``modality: visual``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from feature_store.recipe import RecipeBase, register_recipe
from feature_store.visual.backbones import BACKBONES, LAYERED
from feature_store.visual.enhance import ENHANCEMENTS
from feature_store.visual.specs import BackboneSpec, FaceSpec, SamplingSpec


class RecipeBackbone(BackboneSpec):
    """A backbone as a recipe names it: the name must be a registered backbone, and ``layer:``
    one that has layers."""

    @field_validator("name")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        return BACKBONES.check(value)

    @model_validator(mode="after")
    def _layers_where_there_are(self) -> RecipeBackbone:
        if self.layer is not None and self.name not in LAYERED:
            raise ValueError(
                f"backbone {self.name!r} gives one embedding; layer: is for "
                f"{', '.join(sorted(LAYERED))}"
            )
        return self


@register_recipe("visual")
class VisualRecipe(RecipeBase):
    """Video clips -> per-frame face features (paper: Video preprocessing, Visual Features)."""

    modality: Literal["visual"] = Field(description="always visual")
    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="frame sampling")
    faces: FaceSpec = Field(default_factory=FaceSpec, description="face detection and crops")
    backbones: list[RecipeBackbone] = Field(
        min_length=1, max_length=2, description="one backbone; two for f-ar-mean"
    )
    enhancement: str = Field("basic", description="a registered enhancement (basic, f-mean, ...)")
    batch_size: int = Field(32, ge=1, le=4096, description="frames per backbone forward pass")
    preview_frames: int = Field(
        8, ge=0, le=32, description="face crops per clip kept for the contact sheet"
    )

    @field_validator("enhancement")
    @classmethod
    def _known_enhancement(cls, value: str) -> str:
        return ENHANCEMENTS.check(value)

    @model_validator(mode="after")
    def _backbones_fit_enhancement(self) -> VisualRecipe:
        needed = 2 if self.enhancement == "f-ar-mean" else 1
        if len(self.backbones) != needed:
            raise ValueError(
                f"enhancement {self.enhancement!r} needs {needed} backbone(s), got {len(self.backbones)}"
            )
        return self
