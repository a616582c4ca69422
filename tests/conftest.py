"""Shared test helpers: tiny stores made on the fly, system tools that may skip locally but
never in CI (under ``CI=true`` a missing tool fails the test), and the figures a test drew."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import feature_store
from avcore import figures

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_tool(name: str) -> str:
    """Path of a system tool; skip the test when it is missing, fail instead under CI=true."""
    found = shutil.which(name)
    if found:
        return found
    missing(f"system tool {name!r} is not installed (.ci/run installs it)")


def missing(message: str) -> None:
    """A system piece the test needs is absent: skip, or fail under CI=true."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., feature_store.Store]:
    """``make_store(name, modality, lengths, splits, labels, dim=4, seed=0)`` writes a tiny store
    with random features under tmp_path and opens it; ``columns`` adds clip-table columns (fold,
    speaker)."""

    def make(
        name: str = "tiny",
        modality: str = "visual",
        lengths=(3, 1, 2),
        splits=("train", "val", "test"),
        labels=(0, 1, -1),
        dim: int = 4,
        seed: int = 0,
        clip_ids=None,
        features: np.ndarray | None = None,
        columns: dict | None = None,
        **writer_args,
    ) -> feature_store.Store:
        rng = np.random.default_rng(seed)
        clip_ids = list(clip_ids or [f"clip{i:03d}" for i in range(len(lengths))])
        clips = pd.DataFrame(
            {
                "clip_id": clip_ids,
                "split": list(splits),
                "label": list(labels),
                "length": list(lengths),
                **(columns or {}),
            }
        )
        if features is None:
            features = rng.standard_normal((int(sum(lengths)), dim)).astype(np.float32)
        return feature_store.write_store(
            tmp_path / name, clips, features, name=name, modality=modality, **writer_args
        )

    return make


@pytest.fixture
def drawn(monkeypatch):
    """Every figure saved through ``avcore.figures.save``, by file name (saved as usual)."""
    saved = {}
    real_save = figures.save

    def save(fig, path):
        saved[path.name] = fig
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save", save)
    return saved


def slide_png(path, fig) -> None:
    """A PNG of the figure's size at 160 dpi, the dpi recorded in the file."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.info["dpi"] == pytest.approx((160, 160), abs=0.1)
        width, height = fig.get_size_inches() * 160
        assert image.size == (round(width), round(height))
        assert image.size[0] >= 900
