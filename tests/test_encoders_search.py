"""Today's encoders into a search, as issue 23 asks: one ``feature_store build`` with the shipped
``clip-vitb16-basic``, ``clip-vitb16-f-mean`` and ``wavlm-base-l6`` recipes (their weights
user-supplied: here random models made by open_clip and transformers and saved as their releases
are) over real video clips with a face and a voice writes three stores; a smoke search pairs the
CLIP stores with the WavLM store and trains on them. Runs where torchvision loads
(``make test-encoders``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_dataset_cremad import write_flv
from test_search_support import run_cli, search_args
from test_visual_build import write_manifest
from test_visual_pipeline import face_frames

import feature_store
from avcore.afew import CLASSES
from feature_store.__main__ import main
from feature_store.audio.signal import decode_audio

pytestmark = [pytest.mark.torchvision, pytest.mark.slow]
CONF = Path(__file__).resolve().parents[1] / "conf" / "store"


def clip_weights(folder: Path) -> Path:
    """A random ViT-B/16 (OpenAI's QuickGELU layout) saved as open_clip's releases are."""
    import open_clip
    import safetensors.torch

    torch.manual_seed(0)
    path = folder / "open_clip_model.safetensors"
    safetensors.torch.save_file(open_clip.create_model("ViT-B-16-quickgelu").state_dict(), path)
    return path


def wavlm_folder(folder: Path) -> Path:
    """A random WavLM with the base model's 12 layers and CNN, 32 wide, saved as the Hub has it."""
    import transformers

    torch.manual_seed(0)
    config = transformers.WavLMConfig(
        hidden_size=32, num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )  # fmt: skip
    transformers.WavLMModel(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=False).save_pretrained(folder)
    return folder


def recipe(tmp_path: Path, stem: str, change) -> Path:
    data = yaml.safe_load((CONF / f"{stem}.yaml").read_text())
    data["device"] = "cpu"
    change(data)
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_clip_and_wavlm_stores_from_one_build_pair_and_train_in_a_search(tmp_path):
    rng = np.random.default_rng(0)
    rate, seconds = 16000, 1.0
    time = np.arange(int(seconds * rate)) / rate
    rows = []
    for index in range(8):  # two classes, 3 train clips and 1 val clip each
        label = index % 2
        frames = [np.clip(f.astype(int) + 30 * label - 15, 0, 255).astype(np.uint8)
                  for f in face_frames(2, absent=())]  # fmt: skip
        voice = 0.3 * np.sin(2 * np.pi * (150 + 90 * label) * time) + 0.01 * rng.standard_normal(
            len(time)
        )
        path = write_flv(tmp_path / f"clip{index:02d}.flv", frames, voice)
        rows.append((path.stem, str(path), "val" if index >= 6 else "train", CLASSES[label]))
    manifest = write_manifest(tmp_path / "manifest.csv", rows)

    weights = clip_weights(tmp_path)
    wavlm = wavlm_folder(tmp_path / "wavlm")

    def clip_change(data):
        data["backbones"][0]["checkpoint"] = str(weights)
        data["sampling"]["max_frames"] = 1  # ViT-B/16 on 18 copies a frame: slow on a CPU

    def wavlm_change(data):
        data["encoder"]["model"] = str(wavlm)

    recipes = [
        recipe(tmp_path, "clip-vitb16-basic", clip_change),
        recipe(tmp_path, "clip-vitb16-f-mean", clip_change),
        recipe(tmp_path, "wavlm-base-l6", wavlm_change),
    ]
    stores = tmp_path / "stores"
    argv = ["build", "--manifest", str(manifest), "--out", str(stores / "built")]
    assert main([*argv, *(arg for r in recipes for arg in ("--recipe", str(r)))]) == 0
    root = tmp_path / "root"
    for modality, stem in (
        ("visual", "clip-vitb16-basic"),
        ("visual", "clip-vitb16-f-mean"),
        ("audio", "wavlm-base-l6"),
    ):
        (root / modality).mkdir(parents=True, exist_ok=True)
        (root / modality / stem).symlink_to(stores / "built" / stem)
    audio = feature_store.open_store(root / "audio" / "wavlm-base-l6")
    # One vector per 20 ms: (samples - 400) // 320 + 1 of the clip as decoded (AAC pads a little).
    samples = decode_audio(Path(rows[0][1]))
    assert audio.dim == 32 and audio.lengths()[0] == (len(samples) - 400) // 320 + 1
    for stem in ("clip-vitb16-basic", "clip-vitb16-f-mean"):
        visual = feature_store.open_store(root / "visual" / stem)
        assert visual.dim == 512 and set(visual.lengths()) == {1}
        feature_store.pair(visual, audio)

    result = run_cli(
        "search",
        search_args(
            root, tmp_path,
            "--set", "name=encoders",
            "--set", "stores.visual_feature=[clip-vitb16-basic,clip-vitb16-f-mean]",
            "--set", "stores.audio_feature=[wavlm-base-l6]",
        ),
        tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4/4 trials done" in result.stdout and "finished" in result.stdout
