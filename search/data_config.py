"""The search definition's data sections: which stores (and, for a fold protocol, which fold and
how much validation to carve), and the published figure a report stands beside."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Strict(BaseModel):
    """A config section: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StoresConfig(Strict):
    """Which feature stores the search draws from."""

    root: Path = Field(description="folder holding visual/<variant>/ and audio/<variant>/ stores")
    visual_feature: list[str] = Field(
        min_length=1, description="visual store variants to search over"
    )
    audio_feature: list[str] = Field(
        min_length=1, description="audio store variants to search over"
    )
    validate_deep: bool = Field(
        False, description="check every store's features sha256 and NaN/Inf before the search"
    )
    fold: int | None = Field(
        None,
        ge=1,
        description="fold/speaker protocols (DFEW, MAFW, RAVDESS, CREMA-D): the fold whose clips "
        "are the test; null for a fixed protocol (AFEW, MELD)",
    )
    val_fraction: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="fold protocols: the stratified share of the other folds' clips carved out "
        "as validation (seeded by the search's seed; the search selects on it)",
    )

    @field_validator("root")
    @classmethod
    def _absolute(cls, root: Path) -> Path:
        # Relative to where the search starts, and recorded so: report, confirm and refit read the
        # same stores from any folder.
        return Path(os.path.abspath(root.expanduser()))

    def path(self, modality: Literal["visual", "audio"], variant: str) -> Path:
        return self.root / modality / variant


class PublishedFigure(Strict):
    """The best published figure on the same data and protocol, printed beside the report's."""

    war: float | None = Field(None, ge=0, le=100, description="weighted average recall (%)")
    uar: float | None = Field(None, ge=0, le=100, description="unweighted average recall (%)")
    source: str = Field("", description="who reported it (paper, year)")
