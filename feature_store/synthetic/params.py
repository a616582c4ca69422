"""Every parameter of the planted model (``Generator``, recorded in each store's ``store.json``)
and its views; light (no numpy) so the ``synth`` command's ``--help`` shows the defaults cheaply.

The parameters do not depend on the dataset whose shape is planted (``Generator.dataset``, an
``avcore.datasets`` profile: its classes, class frequencies, clip counts and protocol) except
through its class count K: ``class_strength`` is a pattern cycled over the K classes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SIGNS = (1.0, -1.0)


@dataclass(frozen=True)
class View:
    """One noisy observation of the latent means in a block of ``block_dim`` columns."""

    name: str
    modality: str
    gain: float
    noise: float


@dataclass(frozen=True)
class Generator:
    """Every parameter of the planted model; recorded in ``store.json``."""

    seed: int = 0
    # The avcore.datasets profile whose shape (classes, frequencies, clip counts, protocol) is
    # planted; its clip counts times ``scale``.
    dataset: str = "afew"
    scale: float = 1.0
    rank: int = 8
    block_dim: int = 512
    audio_dim: int = 256
    min_frames: int = 3
    max_frames: int = 20
    empty_visual_rate: float = 0.01
    audio_grid: tuple[int, int] = (2, 4)
    max_segments: int = 4
    frame_rate: float = 0.35
    audio_rate: float = 0.3
    fixed_strength: float = 1.5
    flip_strength: float = 3.0
    marker: float = 2.5
    # How strongly each class shows its evidence: cycled over the K classes (AFEW's 7 take it as is).
    class_strength: tuple[float, ...] = (1.0, 0.75, 0.75, 1.1, 0.9, 0.9, 1.0)
    sign_strength: float = 1.5
    audio_strength: float = 1.0
    audio_marker: float = 1.5
    distractor: float = 1.5
    label_agreement: float = 0.75
    # Noise outside a view's subspace, relative to the view's noise. It changes no likelihood ratio
    # (so no oracle figure) but sets how hard the subspace is to find from 773 training clips.
    complement_noise: float = 0.25
    views: tuple[View, ...] = field(
        default=(
            View("basic", "visual", 1.0, 1.0),
            View("mean", "visual", 1.0, 0.8),
            View("std", "visual", 0.9, 1.0),
            View("fft", "visual", 1.0, 1.05),
            View("mean-b", "visual", 0.8, 1.1),
            View("spectrogram", "audio", 1.0, 1.0),
            View("logmel", "audio", 1.0, 0.85),
        )
    )
    variants: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "visual/basic": ("basic",),
            "visual/f-mean": ("mean",),
            "visual/f-meanstd": ("mean", "std"),
            "visual/f-normfft": ("fft",),
            "visual/f-ar-mean": ("mean", "mean-b"),
            "audio/spectrogram": ("spectrogram",),
            "audio/logmel": ("logmel",),
        }
    )

    def view(self, name: str) -> View:
        return next(v for v in self.views if v.name == name)

    def strengths(self, classes: int) -> tuple[float, ...]:
        """``class_strength`` for ``classes`` classes: the pattern repeated (cut) to that length."""
        pattern = self.class_strength
        return tuple(pattern[index % len(pattern)] for index in range(classes))

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def generator_from_dict(params: dict[str, Any]) -> Generator:
    params = dict(params)
    params["views"] = tuple(View(**v) for v in params["views"])
    params["variants"] = {k: tuple(v) for k, v in params["variants"].items()}
    params["audio_grid"] = tuple(params["audio_grid"])
    params["class_strength"] = tuple(params["class_strength"])
    return Generator(**params)
