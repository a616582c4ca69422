"""HSEmotion's facial-expression EfficientNets (Savchenko; ``hsemotion``, face-emotion-recognition)
through ``timm``, as backbones of the visual recipe.

HSEmotion trains timm's ``tf_efficientnet_b0_ns`` / ``tf_efficientnet_b2_ns`` (the architectures
``tf_efficientnet_b0`` / ``_b2``: TF "same" padding, BatchNorm eps 1e-3) on VGGFace2 and then
AffectNet, with the head ``classifier = nn.Sequential(nn.Linear(1280, 8 or 7))`` (``enet_b0_8_*``,
``enet_b2_8``, ``enet_b0_7``, ``enet_b2_7``; ``enet_b0_8_va_mtl``: ``nn.Linear(1280, 10)``).
``HSEmotionRecognizer.extract_features`` replaces the classifier by ``nn.Identity()``: the
features are the pooled ones before it (1280-d for B0, 1408-d for B2), which is what these kinds
give; the head's keys are ignored and listed. Preprocessing: the ``hsemotion`` preset (ImageNet
mean/std, bilinear) at 224 for B0 and 260 for B2, as ``facial_emotions.py`` resizes.

HSEmotion distributes whole pickled models (``torch.save(model)``), which the safe loader refuses:
the error says how to convert one to a state dict once. ``timm`` is imported when a backbone is
built.
"""

from __future__ import annotations

import torch

from feature_store.visual.backbone_base import Backbone, preprocessing_for
from feature_store.visual.specs import BackboneSpec
from feature_store.visual.weights import read_backbone_checkpoint, torch_backbone
from feature_store.weights import PickledObjectsError, WeightsError

#: kind -> (timm architecture, the input side HSEmotion feeds it)
HSEMOTION_MODELS = {
    "hsemotion-b0": ("tf_efficientnet_b0", 224),
    "hsemotion-b2": ("tf_efficientnet_b2", 260),
}


def conversion(path: str) -> str:
    """The one command that turns HSEmotion's pickled model into a state dict beside it."""
    target = path.removesuffix(".pt") + ".state.pt"
    return (
        f"python -c \"import torch; model = torch.load('{path}', map_location='cpu', "
        f"weights_only=False); torch.save(model.state_dict(), '{target}')\""
    )


def hsemotion_backbone(
    spec: BackboneSpec, device: torch.device, *, architecture: str, size: int
) -> Backbone:
    try:
        checkpoint = read_backbone_checkpoint(spec)
    except PickledObjectsError as exc:
        if not exc.global_name.startswith("timm."):
            raise
        raise WeightsError(
            f"{spec.checkpoint}: a whole pickled model ({exc.global_name}), as HSEmotion "
            "distributes it; it was not loaded (loading it could run code). Convert it once, in "
            f"a Python you trust the file in: {conversion(str(spec.checkpoint))}"
        ) from None
    try:
        import timm
    except ImportError as exc:
        raise WeightsError(f"the HSEmotion backbones need timm (pip install timm): {exc}") from None
    module = timm.create_model(architecture, pretrained=False, num_classes=0)  # classifier: none
    preprocessing = preprocessing_for(spec, device, default="hsemotion", size=size, fixed=False)
    network = {
        "package": f"timm {timm.__version__}",
        "model": architecture,
        "features": "pooled, before the classifier",
    }
    return torch_backbone(
        spec, device, module, checkpoint, dim=module.num_features, preprocessing=preprocessing,
        network=network,
    )  # fmt: skip
