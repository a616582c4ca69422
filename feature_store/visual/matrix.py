"""Many visual recipes over one clip, each stage run once per distinct setting.

A ``ClipMatrix`` plans a set of visual recipes (the paper's matrix of backbones × pretrainings ×
enhancements) so that per clip

- decoding, sampling, detection and alignment run once per distinct track setting (sampling and
  face detection; ``feature_store.visual.tracks``), crops once per distinct ``faces`` section;
- each backbone runs once per distinct (crop setting, backbone, copy set): F-Mean and F-MeanStd
  share the same 18 copies, F-NormFFT shares the basic vectors, F-AR-Mean the two backbones'
  F-Mean copies (``Enhancement.inputs``);
- each recipe's vectors are ``Enhancement.combine`` of those shared features.

The two stages are separate calls so a GPU build can run them apart: ``track_stage`` (CPU:
decode, detect, align) in worker processes, ``feature_stage`` (backbones) in one consumer per GPU,
on the crops of several clips at once.

    >>> matrix = ClipMatrix({"basic": recipe_a, "f-mean": recipe_b})
    >>> outcome = matrix.run("clip1", Path("clip1.mp4"), ["basic", "f-mean"], cached={})
    >>> outcome.results["f-mean"].vectors.shape       # [frames, 128]
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from feature_store.devices import resolve_device
from feature_store.extractor import ClipError, ClipResult, check_vectors
from feature_store.visual.backbones import Backbone, make_backbone
from feature_store.visual.enhance import CopySet, Enhancement, copy_features, make_enhancement
from feature_store.visual.recipe import VisualRecipe
from feature_store.visual.tracks import FaceTrack, Tracker, content_hash, crop_key, track_key
from feature_store.visual.video import VideoError

PREVIEW_SIZE = 64
# A red frame around a preview crop marks a frame where no face was found (whole frame used).
_NO_FACE_BORDER = np.array([220, 30, 30], dtype=np.uint8)


@dataclass(frozen=True)
class Feature:
    """One shared backbone pass: a backbone over the crops (or their copies) of one crop setting."""

    track: str
    crop: str
    backbone: str
    copies: CopySet | None


@dataclass
class RecipePlan:
    """One recipe of the matrix: where its inputs come from and what its store records."""

    recipe: VisualRecipe
    track: str
    crop: str
    enhancement: Enhancement
    features: list[Feature]
    dim: int
    meta: dict[str, Any]
    preview_file: str = "contact_sheet.png"


@dataclass
class MatrixOutcome:
    """What a worker sends back for one clip: per recipe a result (or a ``ClipError``), the face
    tracks it made or completed (for the driver's cache), and seconds and frames per stage."""

    clip_id: str
    results: dict[str, ClipResult | ClipError]
    tracks: dict[str, FaceTrack]
    timings: dict[str, float] = field(default_factory=dict)
    #: every track the clip's recipes need (only sent when the feature stage runs elsewhere)
    inputs: dict[str, FaceTrack] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return max(
            (r.frames for r in self.results.values() if isinstance(r, ClipResult)), default=0
        )


class ClipMatrix:
    """Every visual recipe of a build, keyed by name (the store directory's name)."""

    def __init__(
        self,
        recipes: Mapping[str, VisualRecipe],
        device: torch.device | str | None = None,
        *,
        backbones: bool = True,
    ) -> None:
        """``device`` overrides the recipes' own; ``backbones=False`` plans the track stage only
        (what a worker feeding a GPU consumer runs: no models loaded)."""
        self.backbones: dict[str, Backbone] = {}
        self.batch_sizes: dict[str, int] = defaultdict(int)
        self.plans: dict[str, RecipePlan] = {}
        faces: dict[str, dict[str, Any]] = defaultdict(dict)
        sampling = {}
        for name, recipe in recipes.items():
            # Without backbones nothing runs on a device: a track worker never touches CUDA.
            where = "-" if not backbones else torch.device(device or resolve_device(recipe.device))
            track, crop = track_key(recipe), crop_key(recipe.faces)
            sampling[track] = recipe.sampling
            faces[track][crop] = recipe.faces
            keys = []
            for spec in recipe.backbones:
                key = json.dumps([spec.model_dump(mode="json"), str(where)], sort_keys=True)
                if backbones and key not in self.backbones:
                    self.backbones[key] = make_backbone(spec, where)
                keys.append(key)
            enhancement = make_enhancement(recipe.enhancement)
            features = [
                Feature(track, crop, keys[index], copies) for index, copies in enhancement.inputs()
            ]
            for feature in features:
                self.batch_sizes[feature.backbone] = max(
                    self.batch_sizes[feature.backbone], recipe.batch_size
                )
            used = [self.backbones[key] for key in keys] if backbones else []
            self.plans[name] = RecipePlan(
                recipe,
                track,
                crop,
                enhancement,
                features,
                enhancement.out_dim([backbone.dim for backbone in used]) if used else 0,
                _meta(recipe, used),
            )
        self.trackers = {
            track: Tracker(sampling[track], list(crops.values())) for track, crops in faces.items()
        }

    def wanted(self, names: Sequence[str]) -> dict[str, set[str]]:
        """Track key -> crop keys the recipes ``names`` need."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for name in names:
            wanted[self.plans[name].track].add(self.plans[name].crop)
        return dict(wanted)

    # -- stage 1: decode, detect, align (CPU) ------------------------------------------------------

    def track_stage(
        self,
        clip_id: str,
        path: Path,
        names: Sequence[str],
        cached: Mapping[str, FaceTrack],
        timings: dict[str, float],
        video: str | None = None,
    ) -> tuple[dict[str, FaceTrack], dict[str, FaceTrack]]:
        """All tracks ``names`` need, and the ones made or completed here (to be cached)."""
        if not path.is_file():
            raise ClipError(clip_id, f"{path}: no such file")
        video = video or content_hash(path)
        tracks, made = {}, {}
        for key, crops in self.wanted(names).items():
            found = cached.get(key)
            try:
                track, changed = self.trackers[key](
                    path, video, found if found and found.video == video else None, crops, timings
                )
            except VideoError as exc:
                raise ClipError(clip_id, str(exc)) from None
            tracks[key] = track
            if changed:
                made[key] = track
        return tracks, made

    # -- stage 2: backbones and enhancements (CPU or one GPU), several clips at once -----------------

    def feature_stage(
        self,
        clips: Sequence[tuple[str, Sequence[str], Mapping[str, FaceTrack]]],
        timings: dict[str, float],
    ) -> list[dict[str, ClipResult | ClipError]]:
        """Per (clip id, recipe names, tracks): each recipe's result. Every shared feature is one
        backbone pass over the crops of all the clips that need it."""
        started = time.perf_counter()
        needed: dict[Feature, list[int]] = defaultdict(list)
        for index, (_, names, _) in enumerate(clips):
            for feature in {f for name in names for f in self.plans[name].features}:
                needed[feature].append(index)
        computed: dict[tuple[Feature, int], torch.Tensor] = {}
        for feature, members in needed.items():
            backbone = self.backbones[feature.backbone]
            crops = [clips[i][2][feature.track].crops[feature.crop] for i in members]
            batch = torch.from_numpy(np.concatenate(crops)).permute(0, 3, 1, 2)
            device = getattr(backbone, "device", torch.device("cpu"))
            with torch.inference_mode():
                images = batch.to(device).float().div_(255)  # (sum F, 3, S, S)
                vectors = copy_features(
                    images, backbone, feature.copies, self.batch_sizes[feature.backbone]
                )
            timings["backbone_frames"] += len(images) * (
                feature.copies.size if feature.copies else 1
            )
            for i, part in zip(members, vectors.split([len(c) for c in crops])):
                computed[feature, i] = part
        results = []
        for index, (clip_id, names, tracks) in enumerate(clips):
            out: dict[str, ClipResult | ClipError] = {}
            for name in names:
                plan = self.plans[name]
                with torch.inference_mode():
                    vectors = plan.enhancement.combine([computed[f, index] for f in plan.features])
                track = tracks[plan.track]
                found = track.found
                info = {
                    "frames_decoded": track.decoded,
                    "frames_used": len(found),
                    "frames_with_face": int(found.sum()),
                }
                try:
                    checked = check_vectors(clip_id, vectors.cpu().numpy(), plan.dim)
                except ClipError as exc:
                    out[name] = exc
                    continue
                preview = make_preview(track.crops[plan.crop], found, plan.recipe.preview_frames)
                out[name] = ClipResult(clip_id, checked, info, preview)
            results.append(out)
        timings["backbone"] += time.perf_counter() - started
        return results

    def run(
        self,
        clip_id: str,
        path: Path,
        names: Sequence[str],
        cached: Mapping[str, FaceTrack],
        *,
        features: bool = True,
        video: str | None = None,
    ) -> MatrixOutcome | ClipError:
        """One clip through both stages (or only the first, ``features=False``)."""
        timings: dict[str, float] = defaultdict(float)
        try:
            tracks, made = self.track_stage(clip_id, Path(path), names, cached, timings, video)
        except ClipError as exc:
            return exc
        if not features:
            return MatrixOutcome(clip_id, {}, made, dict(timings), inputs=tracks)
        (results,) = self.feature_stage([(clip_id, names, tracks)], timings)
        return MatrixOutcome(clip_id, results, made, dict(timings))


def _meta(recipe: VisualRecipe, used: Sequence[Backbone]) -> dict[str, Any]:
    """What store.json records about the recipe's models."""
    return {
        "backbone": "+".join(backbone.name for backbone in used),
        "pretrain": "+".join(str(backbone.pretrain) for backbone in used),
        "enhancement": recipe.enhancement,
        "random_weights": [backbone.name for backbone in used if backbone.random_weights],
        "checkpoints": [
            None if spec.checkpoint is None else str(spec.checkpoint) for spec in recipe.backbones
        ],
        "face_detector": recipe.faces.detector,
        # per backbone: the preprocessing applied and the checkpoint keys ignored (heads)
        "backbones": [backbone.describe() for backbone in used],
    }


def make_preview(crops: np.ndarray, found: np.ndarray, count: int) -> np.ndarray | None:
    """``count`` crops side by side, 64 px each; a frame without a face framed in red."""
    count = min(count, len(crops))
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
