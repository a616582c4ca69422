"""Store recipes: the typed YAML (``conf/store/NAME.yaml``) that says how a store is built.

Every recipe has ``modality: visual | audio``; the modality picks the pydantic model that
validates the rest (a discriminated union whose members register themselves with
``@register_recipe("audio")``). A modality's models live beside its pipeline: ``load_recipe``
imports the package ``feature_store.<modality>`` on first use so it can register its recipe model
(and its extractor, see ``feature_store.extractor``). Unknown keys and bad values are
``RecipeError``s naming the file and the key::

    >>> from feature_store.recipe import load_recipe
    >>> recipe = load_recipe("conf/store/dlib-resnet-basic.yaml")
    >>> recipe.modality, recipe.name
    ('visual', 'dlib-resnet-basic')
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avcore import guards
from avcore.parsing import pydantic_line
from feature_store.errors import StoreError
from feature_store.store.format import MODALITIES


class RecipeError(StoreError):
    """A recipe file is missing, not YAML, or has an unknown key or a bad value."""


class RecipeBase(BaseModel):
    """Fields every recipe has; a modality's recipe model subclasses this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    modality: str = Field(description="visual or audio; picks the recipe model and the extractor")
    name: str | None = Field(
        None, description="the store's name; defaults to the recipe file's stem"
    )
    description: str = Field("", description="free text, copied into store.json")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="where models run; auto = cuda when available, cuda also asks Ray for a GPU",
    )

    def fingerprint(self) -> dict[str, Any]:
        """What decides the features (not the name or description): a resumed build must match it."""
        return self.model_dump(mode="json", exclude={"name", "description"})


RECIPES: dict[str, type[RecipeBase]] = {}
_R = TypeVar("_R", bound=type[RecipeBase])


def register_recipe(modality: str) -> Callable[[_R], _R]:
    """Class decorator: the recipe model for ``modality`` (one per modality)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")

    def register(cls: _R) -> _R:
        RECIPES[modality] = cls
        return cls

    return register


def import_modality(modality: str) -> None:
    """Import ``feature_store.<modality>`` so its recipe model and extractor register themselves."""
    if modality not in MODALITIES:
        raise RecipeError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    module = f"feature_store.{modality}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise RecipeError(f"no {modality} pipeline is installed ({module} is missing)") from None


def parse_recipe(data: Any, source: str = "<recipe>", *, name: str | None = None) -> RecipeBase:
    """Validate a recipe mapping; ``source`` names it in errors, ``name`` is the default name."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    modality = data.get("modality")
    if modality is None:
        raise RecipeError(f"{source}: missing key 'modality' ({' or '.join(MODALITIES)})")
    if modality not in MODALITIES:
        raise RecipeError(
            f"{source}: modality: expected one of {', '.join(MODALITIES)}, got {modality!r}"
        )
    if modality not in RECIPES:
        import_modality(modality)
    model = RECIPES.get(modality)
    if model is None:
        raise RecipeError(f"{source}: no recipe model registered for modality {modality!r}")
    if name is not None and data.get("name") is None:
        data = {**data, "name": name}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(pydantic_line(exc, source)) from None


def load_recipe(path: str | os.PathLike[str]) -> RecipeBase:
    """Read and validate ``conf/store/NAME.yaml``; the store name defaults to ``NAME``."""
    path = Path(path)
    data = guards.read_yaml(path, "recipe file", error=RecipeError)
    return parse_recipe(data, str(path), name=path.stem)
