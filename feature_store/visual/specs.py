"""The sections of a visual recipe, each a frozen pydantic model with a one-line doc per field:
frame sampling, face detection and crops, and the backbones with the preprocessing their
checkpoints were trained on (``PREPROCESS_PRESETS``). Kept apart from ``VisualRecipe`` so the
backbones and the face pipeline can take their section without importing the recipe (which
checks names against their registries).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingSpec(_Section):
    """Which decoded frames are used: all, at most ``max_fps`` per second, then at most N."""

    max_fps: float | None = Field(
        None, gt=0, description="keep at most this many frames per second"
    )
    max_frames: int | None = Field(None, ge=1, description="then keep at most N, evenly spaced")


class FaceSpec(_Section):
    """Face detection, alignment and cropping (dlib)."""

    detector: Literal["hog", "cnn"] = Field(
        "hog", description="dlib HOG detector or the CNN (mmod) one"
    )
    upsample: int = Field(
        1, ge=0, le=4, description="times the frame is upsampled before detection"
    )
    detect_max_side: int | None = Field(
        None,
        ge=64,
        description="shrink frames so their longer side is at most this before detecting",
    )
    align: bool = Field(True, description="rotate so the eyes (5-point landmarks) are level")
    extend: float = Field(
        0.3, ge=0, le=2, description="extend the face box by this ratio (paper: 30 %)"
    )
    size: int = Field(224, ge=32, le=1024, description="side of the square face crop (paper: 224)")
    chip: Literal["extended-box", "dlib", "arcface"] = Field(
        "extended-box",
        description="extended-box: the paper's crop above; dlib: dlib.get_face_chip from the 5 "
        "landmarks (the alignment dlib's face descriptor was trained on; use with size 150); "
        "arcface: the 5 landmarks warped onto the ArcFace 112x112 template (insightface, "
        "face.evoLVe checkpoints; size a multiple of 112 or 128)",
    )
    chip_padding: float = Field(
        0.25, ge=0, le=2, description="padding of a dlib chip around the landmarks (dlib: 0.25)"
    )

    @model_validator(mode="after")
    def _chip_needs_landmarks(self) -> FaceSpec:
        if self.chip != "extended-box" and not self.align:
            raise ValueError(
                f"chip {self.chip!r} aligns on the 5-point landmarks: it needs align: true"
            )
        if self.chip == "arcface" and self.size % 112 and self.size % 128:
            raise ValueError(
                f"chip 'arcface' needs size a multiple of 112 or 128 (as insightface's "
                f"estimate_norm), got {self.size}"
            )
        return self


# What a checkpoint's training fed its network, by the name recipes use. A crop is resized to the
# input side (``interpolation``, when its side differs), its 0..1 RGB values are multiplied by
# ``scale``, then ``(x - mean) / std`` per channel (in ``channels`` order, in scaled units).
PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    # insightface arcface_torch and face.evoLVe.PyTorch: RGB, (x - 0.5) / 0.5
    "arcface": {"channels": "rgb", "scale": 1.0, "mean": (0.5,) * 3, "std": (0.5,) * 3},
    # torchvision's ImageNet models and whatever was fine-tuned from them with its transforms
    "imagenet": {
        "channels": "rgb",
        "scale": 1.0,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
    # transforms.ToTensor() alone (Emotion-FAN's ResNet-18): 0..1, no mean or std
    "unit": {"channels": "rgb", "scale": 1.0, "mean": (0.0,) * 3, "std": (1.0,) * 3},
    # Oxford VGG-Face (vgg_face_dag): RGB in 0..255 minus the training-set mean, no scaling
    "vggface": {
        "channels": "rgb",
        "scale": 255.0,
        "mean": (129.186279296875, 104.76238250732422, 93.59396362304688),
        "std": (1.0,) * 3,
    },
    # OpenAI CLIP and the OpenCLIP releases (open_clip constants.OPENAI_DATASET_MEAN/STD; its
    # pretrained._pcfg: bicubic, resize_mode 'shortest'): the shorter side resized bicubic to the
    # input side, centre-cropped (a no-op on square face crops), then mean/std
    "clip": {
        "channels": "rgb",
        "scale": 1.0,
        "mean": (0.48145466, 0.4578275, 0.40821073),
        "std": (0.26862954, 0.26130258, 0.27577711),
        "interpolation": "bicubic",
    },
    # HSEmotion (hsemotion facial_emotions.py test_transforms): Resize((224, 224)) for the B0
    # models, 260 for B2 (torchvision's default bilinear), ToTensor, ImageNet mean/std
    "hsemotion": {
        "channels": "rgb",
        "scale": 1.0,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "interpolation": "bilinear",
    },
}


class PreprocessSpec(_Section):
    """How crops are fed to a backbone: a preset name, or explicit numbers (which override a
    preset's). In YAML ``preprocess: unit`` or ``preprocess: {preset: arcface, size: 112}`` or
    ``preprocess: {channels: bgr, scale: 255, mean: [91.5, 103.9, 131.1], std: [1, 1, 1]}``."""

    preset: str | None = Field(
        None, description=f"one of {', '.join(PREPROCESS_PRESETS)}; or give every number below"
    )
    size: int | None = Field(
        None,
        ge=16,
        le=1024,
        description="input side; default the backbone's (IR nets: the checkpoint's, 112 or 224)",
    )
    interpolation: Literal["bilinear", "bicubic"] = Field(
        "bilinear",
        description="how a crop of another side is resized to the input side (antialiased; "
        "bicubic clipped to 0..1 as PIL's uint8 result is)",
    )
    channels: Literal["rgb", "bgr"] = Field(description="channel order the network expects")
    scale: float = Field(gt=0, description="crops (0..1) are multiplied by this: 1 or 255")
    mean: tuple[float, float, float] = Field(description="subtracted after scaling, per channel")
    std: tuple[float, float, float] = Field(description="divided by after the mean, per channel")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"preset": data}
        if isinstance(data, dict) and data.get("preset") is not None:
            preset = data["preset"]
            if preset not in PREPROCESS_PRESETS:
                raise ValueError(
                    f"unknown preprocess preset {preset!r}; known: {', '.join(PREPROCESS_PRESETS)}"
                )
            data = {**PREPROCESS_PRESETS[preset], **data}
        return data

    @field_validator("std")
    @classmethod
    def _nonzero(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(part <= 0 for part in value):
            raise ValueError("std must be positive")
        return value


class BackboneSpec(_Section):
    """One feature backbone, the weights it runs with and the preprocessing they were trained on."""

    name: str = Field(
        description="a registered backbone: ir50, ir-se50 (face.evoLVe), iresnet50, iresnet100 "
        "(insightface), resnet18, vggface, dlib-resnet; encoders: clip-vit-b-32, clip-vit-b-16, "
        "clip-vit-l-14, clip-vit-l-14-336 (OpenAI CLIP), openclip-vit-b-32, openclip-vit-b-16, "
        "openclip-vit-l-14 (OpenCLIP), hsemotion-b0, hsemotion-b2"
    )
    checkpoint: Path | None = Field(
        None,
        description="weights file (a state dict, possibly wrapped; .safetensors too); relative "
        "to the cwd",
    )
    preprocess: PreprocessSpec | None = Field(
        None,
        description="what the checkpoint's training fed the network (required with a "
        f"checkpoint): {', '.join(PREPROCESS_PRESETS)}, or explicit numbers",
    )
    layer: int | None = Field(
        None,
        ge=1,
        le=64,
        description="CLIP kinds: the output of transformer block N (1 = the first) instead of "
        "the image embedding (encode_image)",
    )
    token: Literal["cls", "mean"] | None = Field(
        None,
        description="with layer: the class token (cls, the default) or the mean of the patch "
        "tokens (mean)",
    )
    pretrain: str | None = Field(
        None, description="what the weights were trained on, for store.json"
    )
    allow_random_weights: bool = Field(
        False, description="run without a checkpoint (random weights); store.json records it"
    )

    @field_validator("checkpoint")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Resolved once at load time so worker processes (and store.json) see the same file.
        return None if value is None else value.expanduser().resolve()

    @model_validator(mode="after")
    def _token_needs_a_layer(self) -> BackboneSpec:
        if self.token is not None and self.layer is None:
            raise ValueError(
                "token: picks a token of layer: N; without a layer the features are the image "
                "embedding"
            )
        return self

    @model_validator(mode="after")
    def _checkpoint_names_its_preprocessing(self) -> BackboneSpec:
        # A wrong normalisation gives plausible, wrong features with no error: never guess it.
        if self.checkpoint is not None and self.preprocess is None:
            raise ValueError(
                f"backbone {self.name!r} has a checkpoint but no preprocess: name what its "
                f"training fed it ({', '.join(PREPROCESS_PRESETS)}, or explicit size, channels, "
                "scale, mean, std)"
            )
        return self
