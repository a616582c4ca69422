"""The visual pipeline as an ``Extractor``: video clip -> sampled frames -> face crops ->
backbone(s) -> enhanced per-frame vectors. The build engine (``feature_store.build``) runs it per
clip; this module registers it for ``modality: visual`` recipes (``feature_store.recipe.VisualRecipe``).

    python -m feature_store build --manifest clips.csv --recipe conf/store/dlib-resnet-basic.yaml \
        --out data/stores/visual/dlib-resnet-basic
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from feature_store.backbones import make_backbone
from feature_store.build import ClipError, Extractor, register_extractor
from feature_store.devices import resolve_device
from feature_store.enhance import make_enhancement
from feature_store.faces import FaceCropper
from feature_store.recipe import VisualRecipe
from feature_store.video import VideoError, decode_frames

PREVIEW_SIZE = 64
# A red frame around a preview crop marks a frame where no face was found (whole frame used).
_NO_FACE_BORDER = np.array([220, 30, 30], dtype=np.uint8)


class VisualExtractor(Extractor):
    """Per clip: decode and sample frames, crop faces, run the enhancement over the backbone(s)."""

    def __init__(self, recipe: VisualRecipe) -> None:
        self.recipe = recipe
        self.device = resolve_device(recipe.device)
        self.enhancement = make_enhancement(recipe.enhancement)
        self.backbones = [make_backbone(spec, self.device) for spec in recipe.backbones]
        self.cropper = FaceCropper(recipe.faces)
        self.dim = self.enhancement.out_dim([backbone.dim for backbone in self.backbones])
        untrained = [backbone.name for backbone in self.backbones if backbone.random_weights]
        self.meta: dict[str, Any] = {
            "backbone": "+".join(backbone.name for backbone in self.backbones),
            "pretrain": "+".join(str(backbone.pretrain) for backbone in self.backbones),
            "enhancement": recipe.enhancement,
            "random_weights": untrained,
            "checkpoints": [
                None if spec.checkpoint is None else str(spec.checkpoint)
                for spec in recipe.backbones
            ],
            "face_detector": recipe.faces.detector,
            # per backbone: the preprocessing applied and the checkpoint keys ignored (heads)
            "backbones": [backbone.describe() for backbone in self.backbones],
        }
        self.timings: dict[str, float] = defaultdict(float)  # seconds per stage, for the benchmark
        self._preview: np.ndarray | None = None

    def extract(self, clip_id: str, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        started = time.perf_counter()
        try:
            clip = decode_frames(
                path,
                max_fps=self.recipe.sampling.max_fps,
                max_frames=self.recipe.sampling.max_frames,
            )
        except VideoError as exc:
            raise ClipError(clip_id, str(exc)) from None
        decoded = time.perf_counter()
        faces = [self.cropper.detect(frame) for frame in clip.frames]
        detected = time.perf_counter()
        crops = np.stack(
            [self.cropper.crop(frame, face) for frame, face in zip(clip.frames, faces)]
        )
        aligned = time.perf_counter()
        tensor = (
            torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float().div_(255)
        )  # (F, 3, S, S)
        with torch.inference_mode():
            vectors = self.enhancement(tensor, self.backbones, self.recipe.batch_size)
        vectors = vectors.cpu().numpy().astype(np.float32)
        finished = time.perf_counter()
        for stage, seconds in (
            ("decode", decoded - started),
            ("detect", detected - decoded),
            ("align", aligned - detected),
            ("backbone", finished - aligned),
        ):
            self.timings[stage] += seconds
        self.timings["frames"] += len(clip.frames)
        found = [face is not None for face in faces]
        self._preview = self._make_preview(crops, found)
        info = {
            "frames_decoded": clip.decoded,
            "frames_used": len(clip.frames),
            "frames_with_face": int(sum(found)),
        }
        return vectors, info

    def _make_preview(self, crops: np.ndarray, found: list[bool]) -> np.ndarray | None:
        count = min(self.recipe.preview_frames, len(crops))
        if count == 0:
            return None
        tiles = []
        for index in np.linspace(0, len(crops) - 1, count).round().astype(int):
            tile = np.asarray(
                Image.fromarray(crops[index]).resize((PREVIEW_SIZE, PREVIEW_SIZE), Image.BILINEAR)
            ).copy()
            if not found[index]:
                tile[:2], tile[-2:], tile[:, :2], tile[:, -2:] = (_NO_FACE_BORDER,) * 4
            tiles.append(tile)
        return np.concatenate(tiles, axis=1)  # (64, 64 * count, 3)

    def preview(self) -> np.ndarray | None:
        return self._preview


@register_extractor("visual")
def visual_extractor(recipe: VisualRecipe) -> VisualExtractor:
    return VisualExtractor(recipe)
