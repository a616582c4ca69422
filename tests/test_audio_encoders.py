"""Released audio encoders (WavLM, HuBERT, wav2vec 2.0, CLAP) through the shipped recipes.

For every layout a small random model is made by the real transformers class (narrow, but with the
released layer count and convolution geometry, so the shipped recipes' layers and 20 ms frames
exist) and saved as the Hub has it (``save_pretrained``: config.json, model.safetensors, the
feature extractor's preprocessor_config.json). Loaded through a shipped recipe (only ``model:``
changed) it runs on real speech (espeak-ng muxed into an MP4's AAC track, decoded by the project's
decoder); its vectors must equal the package's own forward on the package's own preprocessing
(``feature_extractor(samples, sampling_rate=..., return_tensors="pt")``, then the model with
``output_hidden_states=True``; for CLAP ``ClapModel.get_audio_features``) to a max relative
difference of 1e-4, and a wrong preprocessing (the other normalisation; 22.05 kHz audio for CLAP)
must break that. Bad folders are one line naming the file; a pickle that would run code never runs.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
import yaml
from test_audio_pipeline import SENTENCES, _speech_wav, make_clip, write_manifest
from test_checkpoints import CodeRunner

import feature_store
from feature_store.__main__ import main
from feature_store.audio.encoder_specs import ENCODER_KINDS
from feature_store.audio.encoders import load_encoder_kinds
from feature_store.audio.signal import decode_audio
from feature_store.extractor import make_extractor
from feature_store.recipe import RecipeError, load_recipe
from feature_store.weights import WeightsError

# The references pass the feature extractor's attention mask, which torch's attention warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"
TOLERANCE = 1e-4


@dataclass(frozen=True)
class Layout:
    name: str
    kind: str
    recipe: str  # the shipped recipe it is loaded through
    make: Callable[[], tuple]  # () -> (model, feature extractor), random weights


def speech_model(model_class: str, extractor: dict, **config) -> Callable[[], tuple]:
    """The released layer count (12) and CNN (seven convolutions, 20 ms frames), 32 wide."""

    def make():
        config_class = getattr(transformers, model_class.replace("Model", "Config"))
        narrow = {
            "hidden_size": 32,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "conv_dim": (32,) * 7,
            "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2,
        }
        model = getattr(transformers, model_class)(config_class(**narrow, **config))
        return model, transformers.Wav2Vec2FeatureExtractor(**extractor)

    return make


def clap_model(enable_fusion: bool, truncation: str) -> Callable[[], tuple]:
    def make():
        audio = transformers.ClapAudioConfig(
            depths=[1, 1],
            num_attention_heads=[1, 2],
            patch_embeds_hidden_size=8,
            hidden_size=16,
            projection_dim=12,
            enable_fusion=enable_fusion,
        )
        text = transformers.ClapTextConfig(
            vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=32, projection_dim=12, max_position_embeddings=40,
        )  # fmt: skip
        config = transformers.ClapConfig(
            text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=12
        )
        extractor = transformers.ClapFeatureExtractor(truncation=truncation, frequency_min=50)
        return transformers.ClapModel(config), extractor

    return make


LAYOUTS = [
    # microsoft/wavlm-base-plus's preprocessor_config.json: do_normalize false, attention mask
    Layout("wavlm-base", "wavlm", "wavlm-base-l6.yaml",
           speech_model("WavLMModel", {"do_normalize": False, "return_attention_mask": True})),
    # the large models' layout: LayerNorm convolutions, "stable" pre-norm layers, normalised input
    Layout("wavlm-large", "wavlm", "wavlm-base-l6.yaml",
           speech_model("WavLMModel", {"do_normalize": True, "return_attention_mask": True},
                        do_stable_layer_norm=True, feat_extract_norm="layer", conv_bias=True)),
    Layout("hubert-base", "hubert", "hubert-base-l9.yaml",
           speech_model("HubertModel", {"do_normalize": True})),
    Layout("wav2vec2-base", "wav2vec2", "wav2vec2-base-weighted.yaml",
           speech_model("Wav2Vec2Model", {"do_normalize": True})),
    Layout("clap-unfused", "clap", "clap-htsat.yaml", clap_model(False, "rand_trunc")),
    Layout("clap-fused", "clap", "clap-htsat.yaml", clap_model(True, "fusion")),
]  # fmt: skip
BY_NAME = {layout.name: layout for layout in LAYOUTS}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("encoder_clips")
    made = {
        clip_id: make_clip(
            folder / f"{clip_id}.mp4",
            wav=_speech_wav(text, folder / f"{clip_id}.wav", pitch=30 + 20 * index),
        )
        for index, (clip_id, (text, _, _)) in enumerate(SENTENCES.items())
    }
    made["mute_test"] = make_clip(folder / "mute_test.mp4")
    made["silent_test"] = make_clip(folder / "silent_test.mp4", samples=np.zeros(8000))
    return made


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Callable[[str], Path]:
    """``saved(name)``: the layout's model folder (made once per module, seeded)."""
    folders: dict[str, Path] = {}

    def save(name: str) -> Path:
        if name not in folders:
            torch.manual_seed(0)
            model, extractor = BY_NAME[name].make()
            folder = tmp_path_factory.mktemp(name)
            model.save_pretrained(folder)
            extractor.save_pretrained(folder)
            folders[name] = folder
        return folders[name]

    return save


def recipe_copy(path: Path, layout: Layout, folder: Path, **encoder) -> Path:
    """The shipped recipe with ``model:`` (and any ``encoder`` key given) changed, on the CPU
    (where the references run)."""
    data = yaml.safe_load((CONF / layout.recipe).read_text())
    data["encoder"] = {**data["encoder"], "model": str(folder), **encoder}
    data["device"] = "cpu"
    path.write_text(yaml.safe_dump(data))
    return path


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@torch.inference_mode()
def speech_reference(folder: Path, samples: np.ndarray, spec, **extractor) -> np.ndarray:
    """transformers' own pipeline: the release's feature extractor, the whole model, then the
    recipe's layer (or weighted mean) and average pooling (PyTorch's, the last window short)."""
    model_class = {"wavlm": "WavLMModel", "hubert": "HubertModel", "wav2vec2": "Wav2Vec2Model"}
    model = getattr(transformers, model_class[spec.kind]).from_pretrained(folder).eval()
    feature_extractor = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder, **extractor)
    inputs = feature_extractor(samples, sampling_rate=16000, return_tensors="pt")
    states = model(**inputs, output_hidden_states=True).hidden_states
    if spec.layer is not None:
        chosen = states[spec.layer][0]
    else:
        chosen = sum(w * state[0] for w, state in zip(spec.weights, states))
    frames = 1 if spec.pool_ms is None else spec.pool_ms // 20
    pooled = torch.nn.functional.avg_pool1d(chosen.T[None], frames, frames, ceil_mode=True)
    return pooled[0].T.numpy()


@torch.inference_mode()
def clap_reference(folder: Path, samples: np.ndarray, spec) -> np.ndarray:
    """``ClapModel.get_audio_features`` (or its pooler_output) of each window as one input."""
    model = transformers.ClapModel.from_pretrained(folder, local_files_only=True).eval()
    feature_extractor = transformers.ClapFeatureExtractor.from_pretrained(folder)
    window, hop = round(spec.window_seconds * 48000), round(spec.hop_seconds * 48000)
    out = []
    for start in range(0, max(len(samples) - window, 0) + hop, hop):  # the last one may be short
        inputs = feature_extractor(
            samples[start : start + window], sampling_rate=48000, return_tensors="pt"
        )
        if spec.embedding == "projected":
            out.append(model.get_audio_features(**inputs).pooler_output)
        else:
            out.append(model.audio_model(**inputs).pooler_output)
    return torch.cat(out).numpy()


def reference(layout: Layout, folder: Path, clip: Path, spec, *, wrong: str | None = None):
    """The package's features of ``clip``; ``wrong``: "rate" feeds 22.05 kHz audio as if it were
    at the model's rate, "normalisation" flips the release's ``do_normalize``."""
    rate = 48000 if layout.kind == "clap" else 16000
    samples = decode_audio(clip, sample_rate=22050 if wrong == "rate" else rate)
    if layout.kind == "clap":
        return clap_reference(folder, samples, spec)
    released = json.loads((folder / "preprocessor_config.json").read_text())["do_normalize"]
    return speech_reference(
        folder, samples, spec, do_normalize=released != (wrong == "normalisation")
    )


def test_every_registered_kind_has_a_layout():
    assert set(load_encoder_kinds()) == set(ENCODER_KINDS)
    assert set(ENCODER_KINDS) == {layout.kind for layout in LAYOUTS}


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda layout: layout.name)
def test_layout_matches_the_release_pipeline(layout, saved, clips, tmp_path):
    folder = saved(layout.name)
    recipe = load_recipe(recipe_copy(tmp_path / "recipe.yaml", layout, folder))
    extractor = make_extractor(recipe)
    clip = clips["happy_train"]
    ours, _ = extractor.extract("happy_train", clip)
    expected = reference(layout, folder, clip, recipe.encoder)
    assert relative_difference(ours, expected) <= TOLERANCE
    if layout.kind != "clap":  # shorter than one chunk: the unchunked forward, bit for bit
        assert np.array_equal(ours, expected)
    samples = decode_audio(clip, sample_rate=extractor.encoder.sample_rate)
    assert len(ours) == extractor.encoder.count(len(samples))
    wrong = reference(layout, folder, clip, recipe.encoder, wrong="rate")
    assert relative_difference(ours, wrong[: len(ours)]) > 100 * TOLERANCE
    if layout.name == "wavlm-large":
        # The base models' first convolution is GroupNorm'ed over time, which undoes most of
        # the input's standardisation (about 0.6 % here); the large layout's LayerNorm does not.
        wrong = reference(layout, folder, clip, recipe.encoder, wrong="normalisation")
        assert relative_difference(ours, wrong) > 100 * TOLERANCE
    encoder = extractor.meta["encoder"]
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert encoder["weights"] == {"model.safetensors": digest}
    assert encoder["model"] == str(folder) and encoder["kind"] == layout.kind


def test_a_long_clip_runs_in_chunks(saved, clips, tmp_path):
    """Chunks of 1 s: the same frames as the whole clip's CNN gives, each chunk's vectors those
    of that chunk alone (the transformer's context is the chunk, so they differ from the whole
    clip's), and every chunk reads 80 samples past its second so no frame is lost."""
    layout = BY_NAME["wavlm-large"]
    folder = saved(layout.name)
    whole = make_extractor(load_recipe(recipe_copy(tmp_path / "r.yaml", layout, folder)))
    chunked = make_extractor(
        load_recipe(recipe_copy(tmp_path / "c.yaml", layout, folder, chunk_seconds=1))
    )
    samples = decode_audio(clips["angry_train"], sample_rate=16000)
    assert len(samples) > 2.5 * 16000
    ours, full = chunked.encoder.encode(samples), whole.encoder.encode(samples)
    assert ours.shape == full.shape == ((len(samples) - 400) // 320 + 1, 32)
    assert chunked.meta["encoder"]["chunk_samples_read"] == 16000 + 80
    # What the chunks saw: the whole clip standardised once, then cut.
    values = transformers.Wav2Vec2FeatureExtractor.from_pretrained(folder)(
        samples, sampling_rate=16000
    )["input_values"][0]
    spec = chunked.recipe.encoder
    second = speech_reference(folder, values[16000 : 32000 + 80], spec, do_normalize=False)
    assert relative_difference(ours[50:100], second) <= TOLERANCE
    assert relative_difference(ours[50:100], full[50:100]) > 100 * TOLERANCE


@pytest.mark.parametrize("embedding", ["projected", "pooled"])
def test_clap_slides_its_window(saved, clips, tmp_path, embedding):
    layout = BY_NAME["clap-fused"]
    folder = saved(layout.name)
    recipe = load_recipe(
        recipe_copy(
            tmp_path / "r.yaml", layout, folder, window_seconds=2, hop_seconds=1,
            embedding=embedding, batch_size=2,
        )
    )  # fmt: skip
    extractor = make_extractor(recipe)
    samples = decode_audio(clips["happy_val"], sample_rate=48000)
    ours = extractor.encoder.encode(samples)
    windows = 1 + int(np.ceil((len(samples) - 96000) / 48000))
    assert windows >= 2 and ours.shape == (windows, 12 if embedding == "projected" else 16)
    assert relative_difference(ours, clap_reference(folder, samples, recipe.encoder)) <= TOLERANCE
    assert extractor.meta["encoder"]["preprocessing"]["truncation"] == "fusion"


def test_a_hub_bin_folder_loads_like_safetensors(saved, clips, tmp_path):
    """pytorch_model.bin as the Hub's older uploads have it: the position convolution's weight
    norm as weight_g / weight_v, which transformers renames on loading."""
    layout = BY_NAME["wav2vec2-base"]
    folder = saved(layout.name)
    legacy = tmp_path / "wav2vec2-bin"
    legacy.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(folder / name, legacy / name)
    state = transformers.Wav2Vec2Model.from_pretrained(folder).state_dict()
    old = {
        key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): value
        for key, value in state.items()
    }
    assert "encoder.pos_conv_embed.conv.weight_g" in old
    torch.save(old, legacy / "pytorch_model.bin")
    vectors = {}
    for name, where in (("safetensors", folder), ("bin", legacy)):
        recipe = load_recipe(recipe_copy(tmp_path / f"{name}.yaml", layout, where))
        extractor = make_extractor(recipe)
        vectors[name] = extractor.extract("c", clips["angry_val"])[0]
    assert np.array_equal(vectors["bin"], vectors["safetensors"])
    assert list(extractor.meta["encoder"]["weights"]) == ["pytorch_model.bin"]


def _build_error(tmp_path: Path, recipe: Path, clips, capsys) -> str:
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    assert main(["build", "--manifest", str(manifest), "--recipe", str(recipe),
                 "--out", str(tmp_path / "store")]) == 2  # fmt: skip
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_bin_holding_code_is_refused_in_one_line(saved, clips, tmp_path, capsys):
    layout = BY_NAME["hubert-base"]
    folder = tmp_path / "hubert-evil"
    shutil.copytree(saved(layout.name), folder)
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": CodeRunner(marker)}, folder / "pytorch_model.bin")
    recipe = recipe_copy(tmp_path / "r.yaml", layout, folder)
    error = _build_error(tmp_path, recipe, clips, capsys)
    assert f"{folder / 'pytorch_model.bin'}: holds pickled Python objects" in error
    assert "it was not loaded (loading it could run code)" in error
    assert not marker.exists()


def _without(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).unlink()


def _model_type(model_type: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": model_type}))

    return change


@pytest.mark.parametrize(
    ("layout_name", "change", "encoder", "message"),
    [
        ("wavlm-base", _without("config.json"), {}, r"/config.json: missing; a model folder as"),
        ("wavlm-base", _model_type("hubert"), {},
         r"/config.json: model_type 'hubert' is not a wavlm model"),
        ("hubert-base", _without("preprocessor_config.json"), {},
         r"/preprocessor_config.json: missing; the feature extractor's settings"),
        ("hubert-base", _without("model.safetensors"), {},
         r": no model.safetensors or pytorch_model.bin"),
        ("wavlm-base", None, {"layer": 13}, r"/config.json: 12 layers, so layer is 0..12, not 13"),
        ("wav2vec2-base", None, {"layer_weights": [1.0] * 12},
         r"/config.json: 12 layers give 13 hidden states .* layer_weights has 12"),
        ("wavlm-base", None, {"pool_ms": 30}, r"pool_ms must be a multiple of it, not 30"),
        ("clap-unfused", None, {"window_seconds": 12}, r"max_length_s is 10 s; a window of 12 s"),
    ],
)  # fmt: skip
def test_a_bad_folder_or_setting_is_one_line(
    saved, tmp_path, layout_name, change, encoder, message
):
    layout = BY_NAME[layout_name]
    folder = tmp_path / "model"
    shutil.copytree(saved(layout_name), folder)
    if change is not None:
        change(folder)
    recipe = recipe_copy(tmp_path / "r.yaml", layout, folder, **encoder)
    with pytest.raises(WeightsError, match=message) as info:
        make_extractor(load_recipe(recipe))
    assert "\n" not in str(info.value) and str(folder) in str(info.value)


def test_encoder_recipes_take_no_alexnet_settings(tmp_path, clips, capsys):
    data = yaml.safe_load((CONF / "wavlm-base-l6.yaml").read_text())
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump({**data, "spectrogram": "speech"}))
    with pytest.raises(RecipeError, match=r"mixed.yaml: .*spectrogram: an AlexNet setting"):
        load_recipe(path)
    path.write_text(yaml.safe_dump({**data, "encoder": {**data["encoder"], "layers": "weighted"}}))
    with pytest.raises(RecipeError, match="either layer: N or layers: weighted"):
        load_recipe(path)
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    args = ["--manifest", str(manifest), "--recipe", str(CONF / "wavlm-base-l6.yaml")]
    assert main(["train-audio", *args, "--out", str(tmp_path / "x.pt")]) == 2
    assert "encoder wavlm is used as released" in capsys.readouterr().err


def test_build_pair_and_train_end_to_end(saved, clips, tmp_path, monkeypatch):
    """build on real clips (speech, no audio track, silence) with the WavLM recipe pooled to
    40 ms, then pair with a visual store of the same clips and train one epoch on the pair."""
    from trainables import train_trial

    layout = BY_NAME["wavlm-base"]
    folder = saved(layout.name)
    recipe = recipe_copy(tmp_path / "wavlm.yaml", layout, folder, pool_ms=40)
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    out = tmp_path / "stores" / "wavlm"
    args = ["build", "--manifest", str(manifest), "--recipe", str(recipe), "--out", str(out)]
    assert main(args) == 0
    audio = feature_store.open_store(out)
    assert audio.modality == "audio" and audio.dim == 32
    assert audio.meta["backbone"] == "wavlm" and audio.meta["enhancement"] == "layer 6"
    encoder = audio.meta["encoder"]
    assert encoder["model_class"] == "WavLMModel" and encoder["layer"] == 6
    assert encoder["pool_ms"] == 40 and encoder["preprocessing"]["do_normalize"] is False
    rows = audio.clips.set_index("clip_id")
    for clip_id in [*SENTENCES, "silent_test"]:
        samples = len(decode_audio(clips[clip_id], sample_rate=16000))
        frames = (samples - 400) // 320 + 1  # 25 ms windows every 20 ms
        length = int(rows.loc[clip_id, "length"])
        assert length == -(-frames // 2), (clip_id, length, samples)  # pooled to 40 ms
        assert abs(length - rows.loc[clip_id, "audio_seconds"] / 0.040) <= 1
    assert not rows.loc["mute_test", "has_audio"] and rows.loc["mute_test", "length"] == 0
    assert (out / "spectrograms.png").is_file()

    visual_clips = audio.clips[["clip_id", "split", "label"]].assign(length=2)
    rng = np.random.default_rng(0)
    visual = feature_store.write_store(
        tmp_path / "stores" / "faces", pd.DataFrame(visual_clips),
        rng.standard_normal((2 * len(visual_clips), 6)).astype(np.float32),
        name="faces", modality="visual", classes=audio.classes,
    )  # fmt: skip
    pair = feature_store.pair(visual, audio)
    config = {"epochs": 1, "batch_size": 4, "fbp_out": 8, "transformer_hidden": 4, "device": "cpu"}
    result = train_trial(config, pair)
    assert [row["epoch"] for row in result.history] == [1]
    assert result.scores["val"].shape == (2, len(audio.classes))
