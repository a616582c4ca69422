"""The audio modality: clips' audio tracks -> spectrograms -> the trained AlexNet's vectors, or ->
a released encoder's vectors (WavLM, HuBERT, wav2vec 2.0, CLAP).

Importing the package registers the audio recipe (``modality: audio``) and its extractor with the
build engine (``feature_store.recipe.import_modality`` imports it on first use). Its jobs:

- ``signal``: decoding (PyAV, mono 16 kHz) and the paper's two spectrogram kinds;
- ``recipe``: the audio recipe and ``train-audio``'s settings;
- ``cnn``: per-clip standardising, segmenting, and the AlexNet;
- ``checkpoint``: the AlexNet's weights in and out;
- ``segments``: a manifest split as training segments;
- ``train``: ``python -m feature_store train-audio`` (MLflow through ``feature_store.tracking``);
- ``plots``: training curves and the spectrogram contact sheet;
- ``extract``: the extractor ``build`` runs on every clip;
- ``encoder_specs``: a recipe's ``encoder:`` section; ``encoders``: the encoder contract and
  registry; ``pretrained``: a released model's folder read offline and safely;
  ``speech_encoders`` (WavLM, HuBERT, wav2vec 2.0) and ``clap_encoder``: the kinds;
  ``encoder_extract``: the extractor of encoder recipes.
"""

from __future__ import annotations

from feature_store.audio.extract import AudioExtractor
from feature_store.audio.recipe import AudioRecipe, AudioTrainSpec

__all__ = ["AudioExtractor", "AudioRecipe", "AudioTrainSpec"]
