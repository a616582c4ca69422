"""Released image encoders (CLIP through open_clip, HSEmotion through timm) through the shipped
recipes, as ``test_checkpoints.py`` does for the face CNNs.

For every layout the real package makes the network with random weights (``open_clip.create_model``
without pretrained weights; ``timm.create_model`` with HSEmotion's head) and it is saved as its
release has it (open_clip: the state dict as ``.bin`` by ``torch.save`` and as ``.safetensors``;
HSEmotion: the state dict after the one-line conversion of its pickled model). Loaded through a
shipped recipe (only the checkpoint, and for a sibling kind the backbone name, changed), its
features of real face crops (dlib's crops of the astronaut clip frames) must equal the package's
own forward on the package's own preprocessing of the same crops as PIL images (open_clip's
``create_model_and_transforms`` preprocess and ``encode_image``; HSEmotion's ``test_transforms``
and the classifier replaced by ``nn.Identity()``) to a max relative difference of 1e-4, and a
wrong preset must break that. ViT-L/14 and ViT-L/14-336 are only built (their forward takes
seconds on a CPU); ViT-B/32 stands in for the B/16 of the recipe where the package allows it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_visual_build import write_manifest
from test_visual_pipeline import face_frames, make_face_video
from torch import nn

import feature_store
from feature_store.__main__ import main
from feature_store.recipe import RecipeError, parse_recipe
from feature_store.visual.backbones import BACKBONES, make_backbone
from feature_store.visual.clip import CLIP_MODELS
from feature_store.visual.faces import FaceCropper
from feature_store.visual.hsemotion import HSEMOTION_MODELS
from feature_store.visual.specs import BackboneSpec, FaceSpec
from feature_store.weights import WeightsError

# PyPI's torchvision does not load beside a CPU torch: these run where it does (make test-encoders).
pytest.importorskip("torchvision", reason="needs torchvision: make test-encoders")
import open_clip  # noqa: E402 - with torchvision there, a missing package fails, it does not skip
import safetensors.torch  # noqa: E402
import timm  # noqa: E402
from torchvision import transforms  # noqa: E402

pytestmark = pytest.mark.torchvision

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"
TOLERANCE = 1e-4


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@pytest.fixture(scope="module")
def faces() -> dict[int, np.ndarray]:
    """side -> uint8 [3, side, side, 3]: dlib's aligned crops of three astronaut frames."""
    frames = face_frames(3)
    crops = {}
    for side in (160, 224, 260):
        cropper = FaceCropper(FaceSpec(size=side))
        found = [cropper(frame) for frame in frames]
        assert all(face is not None for _, face in found)
        crops[side] = np.stack([crop for crop, _ in found])
    return crops


def as_batch(crops: np.ndarray) -> torch.Tensor:
    """What the matrix feeds a backbone: float RGB in 0..1, [B, 3, S, S]."""
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)


def through_recipe(recipe: str, checkpoint: Path, **changes):
    """The backbone of a shipped recipe with ``checkpoint`` (and other keys) in it."""
    data = yaml.safe_load((CONF / recipe).read_text())
    data["backbones"] = [{**data["backbones"][0], "checkpoint": str(checkpoint), **changes}]
    return make_backbone(parse_recipe(data, recipe).backbones[0])


# -- CLIP ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """(architecture, form) -> one random model of the architecture (open_clip's, with OpenAI's
    QuickGELU: the state dict's layout is the same with GELU) saved as open_clip's releases are:
    ``open_clip_pytorch_model.bin`` by ``torch.save``, ``open_clip_model.safetensors``."""
    models: dict[str, dict[str, torch.Tensor]] = {}
    files: dict[tuple[str, str], Path] = {}

    def get(architecture: str, form: str = "safetensors") -> Path:
        if architecture not in models:
            torch.manual_seed(len(models))
            models[architecture] = open_clip.create_model(f"{architecture}-quickgelu").state_dict()
        if (architecture, form) not in files:
            state = models[architecture]
            folder = tmp_path_factory.mktemp(architecture)
            if form == "bin":
                files[architecture, form] = folder / "open_clip_pytorch_model.bin"
                torch.save(state, files[architecture, form])
            else:
                files[architecture, form] = folder / "open_clip_model.safetensors"
                safetensors.torch.save_file(state, files[architecture, form])
        return files[architecture, form]

    return get


@pytest.fixture(scope="module")
def open_clip_reference(clip_files):
    """(config, form) -> the package's own: ``create_model_and_transforms`` with the file, and a
    function giving ``encode_image`` of its preprocess of the crops as PIL images."""
    cache = {}

    def get(config: str, form: str = "safetensors"):
        if (config, form) not in cache:
            path = clip_files(config.removesuffix("-quickgelu"), form)
            model, _, preprocess = open_clip.create_model_and_transforms(
                config, pretrained=str(path)
            )
            cache[config, form] = (model.eval(), preprocess)
        model, preprocess = cache[config, form]

        def features(crops: np.ndarray) -> torch.Tensor:
            pixels = torch.stack([preprocess(Image.fromarray(crop)) for crop in crops])
            with torch.no_grad():
                return model.encode_image(pixels)

        return model, preprocess, features

    return get


@pytest.fixture(scope="module")
def ours(clip_files):
    """(kind, config, form, changes...) -> our backbone through the shipped B/16 recipe, built once."""
    cache = {}

    def get(kind: str, config: str, form: str = "safetensors", **changes):
        key = (kind, config, form, repr(sorted(changes.items())))
        if key not in cache:
            path = clip_files(config.removesuffix("-quickgelu"), form)
            cache[key] = through_recipe("clip-vitb16-basic.yaml", path, name=kind, **changes)
        return cache[key]

    return get


CLIP_LAYOUTS = [
    ("clip-vit-b-32", "ViT-B-32-quickgelu", "bin"),
    ("clip-vit-b-32", "ViT-B-32-quickgelu", "safetensors"),
    ("openclip-vit-b-32", "ViT-B-32", "safetensors"),  # the same file in a GELU tower
    ("clip-vit-b-16", "ViT-B-16-quickgelu", "safetensors"),
]


@pytest.mark.parametrize(
    "kind, config, form", CLIP_LAYOUTS, ids=["-".join(p[::2]) for p in CLIP_LAYOUTS]
)
def test_clip_loads_as_open_clip_runs_it(
    kind, config, form, clip_files, open_clip_reference, ours, faces, capsys
):
    expected = open_clip_reference(config, form)[2](faces[224])
    backbone = ours(kind, config, form)
    result = backbone(as_batch(faces[224]))
    assert result.shape == expected.shape == (3, backbone.dim)
    assert relative_difference(result, expected) <= TOLERANCE
    described = backbone.describe()
    assert described["network"] == {"package": f"open_clip {open_clip.__version__}",
                                    "model": config, "features": "encode_image"}  # fmt: skip
    assert described["checkpoint"]["path"] == str(
        clip_files(config.removesuffix("-quickgelu"), form)
    )
    assert len(described["checkpoint"]["sha256"]) == 64
    assert described["preprocess"]["interpolation"] == "bicubic"
    assert described["ignored_keys"] == []  # the text tower is not the image tower's extra
    assert "notice:" not in capsys.readouterr().err


def test_the_activation_is_the_kinds(ours, faces):
    """OpenAI's towers use QuickGELU, OpenCLIP's GELU: the same weights give other features (by
    0.7 % on these random weights)."""
    crops = as_batch(faces[224])
    quick = ours("clip-vit-b-32", "ViT-B-32-quickgelu")(crops)
    gelu = ours("openclip-vit-b-32", "ViT-B-32")(crops)
    assert relative_difference(gelu, quick) > 10 * TOLERANCE


@pytest.mark.parametrize("token", ["cls", "mean"])
def test_clip_layer_n_is_that_blocks_token(token, open_clip_reference, ours, faces):
    config, layer = "ViT-B-32-quickgelu", 6
    model, preprocess, _ = open_clip_reference(config)
    pixels = torch.stack([preprocess(Image.fromarray(crop)) for crop in faces[224]])
    visual = model.visual
    assert visual.transformer.batch_first
    with torch.no_grad():
        x = visual._embeds(pixels)  # (B, 1 + grid², width): class token, then the patches
        for block in visual.transformer.resblocks[:layer]:
            x = block(x)
    expected = x[:, 0] if token == "cls" else x[:, 1:].mean(dim=1)
    backbone = ours("clip-vit-b-32", config, layer=layer, token=token)
    assert backbone.dim == 768
    assert relative_difference(backbone(as_batch(faces[224])), expected) <= TOLERANCE
    assert backbone.describe()["network"]["features"] == f"block {layer} {token}"


def test_a_wrong_clip_preset_or_resize_breaks_the_features(open_clip_reference, ours, faces):
    config = "ViT-B-32-quickgelu"
    reference = open_clip_reference(config)[2]
    # (1.8e-2 here: a random tower's embedding leans on its biases, a trained one's on the image)
    wrong = ours("clip-vit-b-32", config, preprocess="imagenet")
    assert relative_difference(wrong(as_batch(faces[224])), reference(faces[224])) > 50 * TOLERANCE
    # 160 px crops resized to 224: bicubic is what open_clip does (on PIL's uint8 image, so not to
    # 1e-4), bilinear measurably further from it.
    smaller = reference(faces[160])
    bicubic = ours("clip-vit-b-32", config)
    bilinear = ours(
        "clip-vit-b-32", config, preprocess={"preset": "clip", "interpolation": "bilinear"}
    )
    near = relative_difference(bicubic(as_batch(faces[160])), smaller)
    far = relative_difference(bilinear(as_batch(faces[160])), smaller)
    assert near < 0.05 and far > 1.5 * near


def test_openai_torchscript_is_refused_with_its_conversion(tmp_path):
    path = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(nn.Linear(3, 4)), path)
    with pytest.raises(WeightsError) as info:
        through_recipe("clip-vitb16-basic.yaml", path)
    message = str(info.value)
    assert message.startswith(f"{path}: a TorchScript archive") and "\n" not in message
    assert "torch.jit.load" in message and "open_clip_model.safetensors" in message


def test_clip_checks_its_layer_and_size(clip_files):
    path = clip_files("ViT-B-32")
    with pytest.raises(WeightsError, match=r"has 12 transformer blocks; layer is 13"):
        through_recipe("clip-vitb16-basic.yaml", path, name="clip-vit-b-32", layer=13)
    with pytest.raises(WeightsError, match=r"takes 224x224 input \(as trained\)"):
        through_recipe("clip-vitb16-basic.yaml", path, preprocess={"preset": "clip", "size": 336})
    with pytest.raises(WeightsError, match=r"wrong shapes .*visual.conv1.weight"):
        through_recipe("clip-vitb16-basic.yaml", path)  # a B/32 file for the B/16 tower


# -- HSEmotion -----------------------------------------------------------------------------------


def hsemotion_transforms(size: int) -> transforms.Compose:
    """HSEmotion's ``test_transforms`` (``facial_emotions.py``)."""
    return transforms.Compose([
        transforms.Resize((size, size)),
        transforms.ToTensor(),
        transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    ])  # fmt: skip


def hsemotion_model(architecture: str, head: nn.Module, crops: np.ndarray, seed: int) -> nn.Module:
    """The network as HSEmotion trains it: timm's EfficientNet (timm's random weights) with its
    own classifier. Its BatchNorm statistics are then measured on the face crops (and their
    mirrors), as training on faces would: timm's initial ones leave the network so ill-conditioned
    that a change of 1e-6 in the input changes the features by more than the tolerance."""
    torch.manual_seed(seed)
    model = timm.create_model(architecture, pretrained=False)
    model.classifier = head
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the batches seen
    pixels = torch.stack([hsemotion_transforms(len(crops[0]))(Image.fromarray(c)) for c in crops])
    with torch.no_grad():
        model.train()(torch.cat([pixels, pixels.flip(-1)]))
    return model.eval()


def hsemotion_features(model: nn.Module, size: int, crops: np.ndarray) -> torch.Tensor:
    """``HSEmotionRecognizer.extract_multi_features``: its test_transforms on PIL images, the
    classifier replaced by ``nn.Identity()``."""
    model.classifier = nn.Identity()
    pixels = torch.stack([hsemotion_transforms(size)(Image.fromarray(c)) for c in crops])
    with torch.no_grad():
        return model.eval()(pixels)


HSEMOTION_LAYOUTS = [
    ("hsemotion-b0", "enet_b0_8", lambda: nn.Sequential(nn.Linear(1280, 8)), 224),
    ("hsemotion-b0", "enet_b0_8_va_mtl", lambda: nn.Linear(1280, 10), 224),
    ("hsemotion-b2", "enet_b2_7", lambda: nn.Sequential(nn.Linear(1408, 7)), 260),
]


@pytest.mark.parametrize(
    "kind, release, head, size", HSEMOTION_LAYOUTS, ids=[p[1] for p in HSEMOTION_LAYOUTS]
)
def test_hsemotion_loads_as_hsemotion_runs_it(kind, release, head, size, faces, tmp_path, capsys):
    architecture = HSEMOTION_MODELS[kind][0]
    model = hsemotion_model(architecture, head(), faces[size], seed=len(release))
    path = tmp_path / f"{release}.state.pt"
    torch.save(model.state_dict(), path)
    heads = [key for key in model.state_dict() if key.startswith("classifier.")]
    expected = hsemotion_features(model, size, faces[size])
    backbone = through_recipe("hsemotion-b0-basic.yaml", path, name=kind)
    assert backbone.input_size == size
    ours = backbone(as_batch(faces[size]))
    assert relative_difference(ours, expected) <= TOLERANCE
    assert sorted(backbone.describe()["ignored_keys"]) == sorted(heads)
    assert "notice:" in capsys.readouterr().err
    wrong = through_recipe("hsemotion-b0-basic.yaml", path, name=kind, preprocess="clip")
    assert relative_difference(wrong(as_batch(faces[size])), expected) > 100 * TOLERANCE


def test_hsemotions_pickled_model_is_refused_and_its_conversion_works(faces, tmp_path):
    model = hsemotion_model("tf_efficientnet_b0", nn.Sequential(nn.Linear(1280, 8)), faces[224], 3)
    path = tmp_path / "enet_b0_8_best_afew.pt"
    torch.save(model, path)  # as HSEmotion distributes it
    with pytest.raises(WeightsError) as info:
        through_recipe("hsemotion-b0-basic.yaml", path)
    message = str(info.value)
    assert (
        "\n" not in message
        and "whole pickled model (timm.models.efficientnet.EfficientNet)" in message
    )
    command = message.split("python -c ", 1)[1].strip('"')
    exec(command, {})  # the printed conversion, run on our own (trusted) file
    converted = tmp_path / "enet_b0_8_best_afew.state.pt"
    expected = hsemotion_features(model, 224, faces[224])
    ours = through_recipe("hsemotion-b0-basic.yaml", converted)(as_batch(faces[224]))
    assert relative_difference(ours, expected) <= TOLERANCE


# -- every kind, recipes -------------------------------------------------------------------------

TESTED = {kind for kind, *_ in CLIP_LAYOUTS} | {kind for kind, *_ in HSEMOTION_LAYOUTS}
BUILT_ONLY = {"clip-vit-l-14": (768, 224), "clip-vit-l-14-336": (768, 336),
              "openclip-vit-l-14": (768, 224), "openclip-vit-b-16": (512, 224)}  # fmt: skip


@pytest.mark.parametrize("kind", sorted({*CLIP_MODELS, *HSEMOTION_MODELS}))
def test_every_encoder_kind_is_registered_and_tested(kind):
    assert kind in BACKBONES and (kind in TESTED or kind in BUILT_ONLY)


@pytest.mark.parametrize("kind", sorted(BUILT_ONLY))
def test_the_large_towers_build(kind):
    backbone = make_backbone(BackboneSpec(name=kind, allow_random_weights=True))
    assert (backbone.dim, backbone.input_size) == BUILT_ONLY[kind]
    assert backbone.random_weights and backbone.describe()["preprocess"]["preset"] == "clip"


def test_recipe_options_are_checked():
    data = yaml.safe_load((CONF / "hsemotion-b0-basic.yaml").read_text())
    data["backbones"][0]["layer"] = 3
    with pytest.raises(RecipeError, match=r"'hsemotion-b0' gives one embedding; layer: is for"):
        parse_recipe(data, "r.yaml")
    data = yaml.safe_load((CONF / "clip-vitb16-basic.yaml").read_text())
    data["backbones"][0]["token"] = "mean"
    with pytest.raises(RecipeError, match=r"token: picks a token of layer: N"):
        parse_recipe(data, "r.yaml")


# -- end to end ------------------------------------------------------------------------------------


def test_build_clip_basic_and_f_mean_in_one_pass(clip_files, tmp_path, capsys):
    weights = clip_files("ViT-B-16")
    recipes = []
    for stem in ("clip-vitb16-basic", "clip-vitb16-f-mean"):
        data = yaml.safe_load((CONF / f"{stem}.yaml").read_text())
        data["backbones"][0]["checkpoint"] = str(weights)
        data["sampling"]["max_frames"] = 1
        recipes.append(tmp_path / f"{stem}.yaml")
        recipes[-1].write_text(yaml.safe_dump(data))
    clips = [make_face_video(tmp_path / f"{name}.mp4", count=3, absent=()) for name in ("a", "b")]
    manifest = write_manifest(tmp_path / "manifest.csv",
                              [(c.stem, str(c), "train", "Happy") for c in clips])  # fmt: skip
    argv = ["build", "--manifest", str(manifest), "--out", str(tmp_path / "stores")]
    assert main([*argv, *(arg for r in recipes for arg in ("--recipe", str(r)))]) == 0
    stores = {
        s: feature_store.open_store(tmp_path / "stores" / s)
        for s in ("clip-vitb16-basic", "clip-vitb16-f-mean")
    }
    for store in stores.values():
        assert store.dim == 512 and len(store.clip_ids("train")) == 2
        (described,) = store.meta["backbones"]
        assert described["network"]["model"] == "ViT-B-16-quickgelu"
        assert described["checkpoint"]["sha256"] == feature_store.store.sha256_file(weights)
        assert described["preprocess"]["preset"] == "clip"
    basic, mean = (stores[s].features("a") for s in ("clip-vitb16-basic", "clip-vitb16-f-mean"))
    assert basic.shape == mean.shape == (1, 512) and not np.allclose(basic, mean)
    assert os.path.isdir(tmp_path / ".stores.work" / "tracks")  # one detection for both
