"""Checkpoints as researchers have them, loaded through the shipped recipes and fed as trained.

For every layout: the upstream network (``tests/upstream_nets.py``, transcribed from its
project's source) gets seeded random weights, is saved the way its users have it (plain, wrapped,
``module.``-prefixed, with heads, pre-1.6 serialisation where that era's files are), and is
loaded through a shipped recipe (only the checkpoint path, and for a sibling layout the backbone
name, changed). Its features of 0..1 RGB crops must equal the upstream network's fed with the
upstream preprocessing (max difference ≤ 1e-4 of the largest feature), and a recipe with a wrong
preprocess preset must break that. Bad weights files are one line naming the file, and a pickle
that would run code never runs.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import upstream_nets as up
import yaml
from PIL import Image
from torch import nn

from feature_store.audio.checkpoint import read_weights
from feature_store.recipe import RecipeError, load_recipe, parse_recipe
from feature_store.visual.backbones import BACKBONES, WeightsError, make_backbone
from feature_store.visual.clip import CLIP_MODELS
from feature_store.visual.hsemotion import HSEMOTION_MODELS
from feature_store.visual.specs import BackboneSpec

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"
ENCODERS = {*CLIP_MODELS, *HSEMOTION_MODELS}
LEGACY = {"_use_new_zipfile_serialization": False}  # torch.save as before PyTorch 1.6
TOLERANCE = 1e-4


def _normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """``torchvision.transforms.Normalize`` on a batch."""
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def evolve_features(net, crops):
    # face.evoLVe train.py: ToTensor() then Normalize(RGB_MEAN=[0.5]*3, RGB_STD=[0.5]*3)
    return net(_normalize(crops, [0.5] * 3, [0.5] * 3))


def insightface_features(net, crops):
    # arcface_torch inference.py: uint8 RGB image, img.div_(255).sub_(0.5).div_(0.5)
    img = crops * 255
    return net(img.div_(255).sub_(0.5).div_(0.5))


def to_tensor_features(net, crops):
    # Emotion-FAN load_materials.py: transforms.Compose([transforms.ToTensor()]) only
    return net.features(crops) if hasattr(net, "features") else net(crops)[0]


def vgg_face_features(net, crops):
    # pytorch-mcn: RGB image in 0..255 minus meta['mean'], meta['std'] = [1, 1, 1]
    return net.fc7_features(_normalize(crops * 255, VGG_FACE_MEAN, [1, 1, 1]))


VGG_FACE_MEAN = [129.186279296875, 104.76238250732422, 93.59396362304688]  # vgg_face_dag meta


@dataclass(frozen=True)
class Layout:
    id: str
    backbone: str  # registry name the recipe uses for it
    recipe: str  # the shipped recipe it is loaded through
    build: Callable[[], nn.Module]
    save: Callable[[nn.Module, Path], None]
    features: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    side: int
    wrong_preset: str
    heads: tuple[str, ...] = ()  # checkpoint keys that must be ignored (and reported)


def _plain(net, path, **kwargs):
    torch.save(net.state_dict(), path, **kwargs)


def _data_parallel(state):
    return {f"module.{key}": value for key, value in state.items()}


def _emotion_fan_ferplus(net, path):
    # Resnet18_FER+_pytorch.pth.tar: {'epoch', 'arch', 'state_dict': {'module.…', 'module.fc'}, ...}
    checkpoint = {
        "epoch": 20,
        "arch": "resnet18",
        "state_dict": _data_parallel(net.state_dict()),
        "best_prec1": torch.tensor(87.3),
    }
    torch.save(checkpoint, path, **LEGACY)


def _emotion_fan_at(net, path):
    # fan_afew_traintest.py save_checkpoint: {'epoch', 'state_dict' (DataParallel), 'prec1'}
    state = {"epoch": 180, "state_dict": _data_parallel(net.state_dict()), "prec1": 51.2}
    torch.save(state, path, **LEGACY)


def _ferplus_upstream() -> nn.Module:
    """The network that wrote the FER+ file: a ResNet-18 with an 8-class ``fc``. Its features are
    then taken as Emotion-FAN uses that file: ``LoadParameter`` into ``ResNet_AT`` (``saved``)."""
    return up.TorchvisionResNet(num_classes=8)


LAYOUTS = [
    Layout("evolve-ir50-112", "ir50", "ir50-affectnet-basic.yaml",
           lambda: up.IR_50([112, 112]), lambda n, p: _plain(n, p, **LEGACY),
           evolve_features, 112, "imagenet"),
    Layout("evolve-ir50-224", "ir50", "ir50-rafdb-basic.yaml",
           lambda: up.IR_50([224, 224]),
           lambda n, p: torch.save(_data_parallel(n.state_dict()), p),
           evolve_features, 224, "unit"),
    Layout("evolve-ir-se50-112", "ir-se50", "ir50-ferplus-basic.yaml",
           lambda: up.IR_SE_50([112, 112]), lambda n, p: _plain(n, p, **LEGACY),
           evolve_features, 112, "imagenet"),
    Layout("insightface-iresnet50", "iresnet50", "ir50-affectnet-basic.yaml",
           up.iresnet50, _plain, insightface_features, 112, "unit"),
    Layout("insightface-iresnet100", "iresnet100", "ir50-rafdb-basic.yaml",
           up.iresnet100, _plain, insightface_features, 112, "imagenet"),
    Layout("torchvision-resnet18", "resnet18", "resnet18-affectnet-basic.yaml",
           lambda: up.TorchvisionResNet(num_classes=7), _plain, to_tensor_features, 224,
           "imagenet", heads=("fc.weight", "fc.bias")),
    Layout("emotion-fan-ferplus", "resnet18", "resnet18-ferplus-basic.yaml",
           _ferplus_upstream, _emotion_fan_ferplus, to_tensor_features, 224, "imagenet",
           heads=("fc.weight", "fc.bias")),
    Layout("emotion-fan-resnet-at", "resnet18", "resnet18-rafdb-basic.yaml",
           up.ResNetAT, _emotion_fan_at, to_tensor_features, 224, "arcface",
           heads=("alpha.0.weight", "alpha.0.bias", "beta.0.weight", "beta.0.bias",
                  "pred_fc1.weight", "pred_fc1.bias", "pred_fc2.weight", "pred_fc2.bias")),
    Layout("vgg-face-dag", "vggface", "vggface-ferplus-basic.yaml",
           up.VggFaceDag, lambda n, p: _plain(n, p, **LEGACY), vgg_face_features, 224,
           "imagenet", heads=("fc8.weight", "fc8.bias")),
    Layout("torchvision-vgg16", "vggface", "vggface-rafdb-basic.yaml",
           lambda: up.TorchvisionVGG16(num_classes=7), _plain, vgg_face_features, 224, "unit",
           heads=("classifier.6.weight", "classifier.6.bias")),
]  # fmt: skip
HEAVY = {"insightface-iresnet100", "vgg-face-dag", "torchvision-vgg16"}


def _params(layouts):
    return [
        pytest.param(layout, id=layout.id, marks=[pytest.mark.slow] if layout.id in HEAVY else [])
        for layout in layouts
    ]


def randomize(net: nn.Module, seed: int) -> nn.Module:
    """Seeded weights everywhere, BatchNorm statistics and PReLU slopes included."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_((torch.rand(tensor.shape, generator=generator) - 0.5) * 0.2)
            elif tensor.dim() == 1:  # BatchNorm scales, PReLU slopes
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in**0.5)
    return net.eval()


def face_crops(side: int) -> torch.Tensor:
    """Two 0..1 RGB crops at the network's input side: the astronaut's face and its mirror."""
    face = np.asarray(
        Image.fromarray(skimage.data.astronaut()[20:240, 120:330]).resize((side,) * 2)
    )
    crops = np.stack([face, face[:, ::-1]]).astype(np.float32) / 255
    return torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """layout id -> (checkpoint path, upstream features of the crops); built once per layout."""
    cache: dict[str, tuple[Path, torch.Tensor]] = {}

    def get(layout: Layout) -> tuple[Path, torch.Tensor]:
        if layout.id not in cache:
            torch.manual_seed(LAYOUTS.index(layout))
            net = randomize(layout.build(), seed=LAYOUTS.index(layout))
            path = tmp_path_factory.mktemp(layout.id) / f"{layout.id}.pth"
            layout.save(net, path)
            if layout.id == "emotion-fan-ferplus":  # Emotion-FAN's way of using that file
                state = torch.load(path, weights_only=True)["state_dict"]
                net = up.load_parameter(up.ResNetAT(), state).eval()
            with torch.no_grad():
                cache[layout.id] = (path, layout.features(net, face_crops(layout.side)))
            del net
        return cache[layout.id]

    return get


def through_recipe(layout: Layout, checkpoint: Path, preset: str | None = None):
    """The backbone of the layout's shipped recipe with ``checkpoint`` (and ``preset``) in it."""
    data = yaml.safe_load((CONF / layout.recipe).read_text())
    spec = {**data["backbones"][0], "name": layout.backbone, "checkpoint": str(checkpoint)}
    if preset is not None:
        spec["preprocess"] = preset
    data["backbones"] = [spec]
    return make_backbone(parse_recipe(data, layout.recipe).backbones[0])


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max())


@pytest.mark.parametrize("layout", _params(LAYOUTS))
def test_layout_loads_as_trained(layout, saved, capsys):
    path, expected = saved(layout)
    assert torch.isfinite(expected).all() and expected.abs().max() > 0
    backbone = through_recipe(layout, path)
    ours = backbone(face_crops(layout.side))
    assert relative_difference(ours, expected) <= TOLERANCE
    described = backbone.describe()
    assert described["preprocess"]["size"] == layout.side
    assert sorted(described["ignored_keys"]) == sorted(layout.heads)
    notices = [line for line in capsys.readouterr().err.splitlines() if line.startswith("notice:")]
    if layout.heads:
        assert len(notices) == 1 and str(path) in notices[0]
        assert all(key in notices[0] for key in layout.heads)
    else:
        assert notices == []


@pytest.mark.parametrize("layout", _params(LAYOUTS))
def test_a_wrong_preset_breaks_the_features(layout, saved):
    path, expected = saved(layout)
    assert through_recipe(layout, path).preprocess.spec.preset != layout.wrong_preset
    wrong = through_recipe(layout, path, preset=layout.wrong_preset)
    assert relative_difference(wrong(face_crops(layout.side)), expected) > 100 * TOLERANCE


@pytest.mark.parametrize("name", sorted(set(BACKBONES) - {"dlib-resnet", *ENCODERS}))
def test_every_registered_backbone_has_a_layout_test(name):
    """A new registry entry needs its upstream layout in LAYOUTS (dlib-resnet has its own test,
    the released encoders theirs in test_encoders_visual.py)."""
    assert name in {layout.backbone for layout in LAYOUTS}


def test_every_shipped_checkpoint_recipe_names_its_preprocessing():
    for path in CONF.glob("*.yaml"):
        text = path.read_text()
        recipe = load_recipe(path)
        for spec in getattr(recipe, "backbones", []):
            if spec.checkpoint is not None:
                assert spec.preprocess is not None and spec.preprocess.preset, path.name
                line = next(line for line in text.splitlines() if "preprocess:" in line)
                assert "#" in line, f"{path.name}: say where such checkpoints come from"


def test_ir50_input_side_comes_from_the_checkpoint(saved):
    path, _ = saved(LAYOUTS[1])  # trained at 224
    with pytest.raises(WeightsError, match=r"takes 224x224 input \(as trained\).* size is 112"):
        through_recipe(LAYOUTS[1], path, preset={"preset": "arcface", "size": 112})


def test_explicit_numbers_and_bgr(saved):
    layout = LAYOUTS[0]
    path, expected = saved(layout)
    explicit = {"channels": "rgb", "scale": 255, "mean": [127.5] * 3, "std": [127.5] * 3}
    crops = face_crops(112)
    assert relative_difference(through_recipe(layout, path, explicit)(crops), expected) <= TOLERANCE
    bgr = through_recipe(layout, path, {**explicit, "channels": "bgr"})
    assert relative_difference(bgr(crops.flip(1)), expected) <= TOLERANCE


def test_missing_and_misshaped_backbone_keys_stay_errors(tmp_path):
    net = up.TorchvisionResNet(num_classes=7)
    state = net.state_dict()
    state.pop("layer4.1.bn2.running_var")
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as info:
        through_recipe(LAYOUTS[5], path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "missing keys (1): layer4.1.bn2.running_var" in message
    assert "wrong shapes (1): conv1.weight [64, 3, 3, 3] vs [64, 3, 7, 7]" in message


def test_a_wrong_backbone_name_hints_at_the_layout(tmp_path):
    path = tmp_path / "evolve.pth"
    torch.save(up.IR_50([112, 112]).state_dict(), path)
    with pytest.raises(WeightsError, match=r"look like face.evoLVe IR_50 \(backbone ir50\)"):
        through_recipe(LAYOUTS[3], path)  # the iresnet50 layout's recipe


def test_a_checkpoint_needs_its_preprocessing_named(tmp_path):
    data = yaml.safe_load((CONF / "resnet18-ferplus-basic.yaml").read_text())
    del data["backbones"][0]["preprocess"]
    with pytest.raises(RecipeError, match=r"has a checkpoint but no preprocess: name what"):
        parse_recipe(data, "r.yaml")
    data["backbones"][0]["preprocess"] = "tensorflow"
    with pytest.raises(
        RecipeError, match=r"unknown preprocess preset 'tensorflow'; known: arcface"
    ):
        parse_recipe(data, "r.yaml")


# -- bad weights files -------------------------------------------------------------------------


class CodeRunner:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _resnet18_loader(path: Path):
    return through_recipe(LAYOUTS[5], path)


@pytest.fixture()
def bad_files(tmp_path):
    marker = tmp_path / "code-ran"
    files = {"text": tmp_path / "notes.pth", "truncated-zip": tmp_path / "cut.pth"}
    files["text"].write_text("epoch 20, best_prec1 87.3\nthese are not weights\n")
    whole = tmp_path / "whole.pth"
    torch.save({"state_dict": {"conv1.weight": torch.rand(64, 3, 7, 7)}}, whole)
    files["truncated-zip"].write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    legacy = tmp_path / "legacy.pth"
    torch.save({"conv1.weight": torch.rand(64, 3, 7, 7)}, legacy, **LEGACY)
    files["truncated-legacy"] = tmp_path / "cut-legacy.pth"
    files["truncated-legacy"].write_bytes(legacy.read_bytes()[: legacy.stat().st_size // 2])
    files["code-pickle"] = tmp_path / "evil.pkl"
    files["code-pickle"].write_bytes(pickle.dumps({"state_dict": CodeRunner(marker)}, 2))
    files["code-pickle-4"] = tmp_path / "evil4.pkl"
    files["code-pickle-4"].write_bytes(pickle.dumps({"state_dict": CodeRunner(marker)}, 4))
    files["code-zip"] = tmp_path / "evil.pth"
    torch.save({"state_dict": CodeRunner(marker)}, files["code-zip"])
    files["code-numpy"] = tmp_path / "evil-numpy.pth"
    hidden = np.array([CodeRunner(marker)], dtype=object)  # inside an allowed NumPy array
    torch.save({"state_dict": {"w": torch.zeros(1)}, "history": hidden}, files["code-numpy"])
    files["code-legacy"] = tmp_path / "evil-legacy.pth"
    torch.save({"state_dict": CodeRunner(marker)}, files["code-legacy"], **LEGACY)
    return files, marker


@pytest.mark.parametrize("loader", [_resnet18_loader, read_weights], ids=["visual", "audio"])
@pytest.mark.parametrize(
    "kind",
    [
        "text",
        "truncated-zip",
        "truncated-legacy",
        "code-pickle",
        "code-pickle-4",
        "code-zip",
        "code-numpy",
        "code-legacy",
    ],
)
def test_bad_weights_files_are_one_line_and_never_run(bad_files, kind, loader):
    files, marker = bad_files
    with pytest.raises(WeightsError) as info:
        loader(files[kind])
    message = str(info.value)
    assert message.startswith(f"{files[kind]}: ") and "\n" not in message
    assert "weights_only=False" not in message and "weights_only = False" not in message
    if kind.startswith("code"):
        assert "it was not loaded (loading it could run code)" in message
        assert kind == "code-pickle-4" or "pickled Python objects (posix.system)" in message
    else:
        assert "not a readable PyTorch weights file" in message
    assert not marker.exists()


def test_the_code_payload_is_real(bad_files):
    """The control: unpickled without ``weights_only`` the payload does run (so the test above
    would notice if our loader ran it)."""
    files, marker = bad_files
    for kind in ("code-pickle", "code-pickle-4"):
        marker.unlink(missing_ok=True)
        pickle.loads(files[kind].read_bytes())
        assert marker.exists()
    marker.unlink()
    torch.load(files["code-legacy"], weights_only=False)
    assert marker.exists()


def test_absent_and_non_state_dict_files(tmp_path):
    with pytest.raises(WeightsError, match="absent.pth: no such weights file"):
        _resnet18_loader(tmp_path / "absent.pth")
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(WeightsError, match="expected a state dict .* got list"):
        read_weights(listed)


def test_dlib_resnet_takes_no_preprocess():
    with pytest.raises(WeightsError, match="feeds dlib's own input.*remove 'preprocess'"):
        make_backbone(BackboneSpec(name="dlib-resnet", preprocess="unit"))


def test_numpy_metrics_in_a_wrapper_load(tmp_path):
    """Training scripts keep metrics as NumPy scalars and arrays beside the state dict."""
    net = up.TorchvisionResNet(num_classes=7)
    path = tmp_path / "with-numpy.pth.tar"
    wrapper = {
        "epoch": 12,
        "state_dict": _data_parallel(net.state_dict()),
        "best_prec1": np.float64(61.5),
        "history": np.array([0.1, 0.2], dtype=np.float32),
    }
    torch.save(wrapper, path, **LEGACY)
    backbone = through_recipe(LAYOUTS[5], path)
    assert backbone.ignored_keys == ["fc.weight", "fc.bias"]
    assert read_weights(path)[1]["best_prec1"] == 61.5
