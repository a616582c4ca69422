"""The visual modality: video clips -> face crops -> frozen backbones -> enhanced per-frame vectors.

Importing the package registers the visual recipe (``modality: visual``) and its extractor with the
build engine (``feature_store.recipe.import_modality`` imports it on first use, so ``--help`` and
audio-only work never load it). Its jobs:

- ``specs``: the recipe's sections (sampling, faces, backbones and their preprocessing presets);
- ``recipe``: the visual recipe, checked against the backbone and enhancement registries;
- ``video``: decoding and frame sampling (PyAV);
- ``faces``: dlib detection, 5-point alignment and the crops (extended box, dlib chip, ArcFace);
- ``tracks``: a clip's sampled frames, faces and crops, and their cache;
- ``backbone_base``, ``weights``, ``nets``, ``backbones``: the backbone contract, checkpoints
  fitted into networks, the face CNNs, and the registry of backbone kinds;
- ``clip``, ``hsemotion``: today's released image encoders as backbone kinds (CLIP through
  open_clip, HSEmotion's EfficientNets through timm; imported when one is built);
- ``enhance``: the paper's feature enhancements (F-Mean, F-MeanStd, F-NormFFT, F-AR-Mean);
- ``matrix``: many recipes over one clip, each stage once per distinct setting;
- ``matrix_build``: ``build --recipe A --recipe B --out ROOT`` in one pass over the videos;
- ``gpu_consumers``: on CUDA, one thread per GPU running every backbone on batches across clips;
- ``extractor``: the one-recipe extractor ``build`` runs on every clip.
"""

from __future__ import annotations

from feature_store.visual.extractor import VisualExtractor
from feature_store.visual.recipe import VisualRecipe

__all__ = ["VisualExtractor", "VisualRecipe"]
