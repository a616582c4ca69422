"""The audio pipeline on real speech: espeak-ng speech muxed with PyAV into video clips (video +
audio stream), decoded, trained on with ``train-audio`` and built into stores by ``build_store``;
plus a clip without an audio track, a silent one and a corrupt audio stream."""

from __future__ import annotations

import csv
import fractions
import subprocess
from pathlib import Path

import av
import librosa
import numpy as np
import pytest
import torch
import yaml
from conftest import require_tool, slide_png

from feature_store.__main__ import main
from feature_store.audio.checkpoint import read_weights
from feature_store.audio.cnn import AlexNet, segment, segment_vectors, standardize
from feature_store.audio.signal import AudioDecodeError, decode_audio, speech_spectrogram
from feature_store.build import build_store
from feature_store.extractor import ClipError
from feature_store.recipe import load_recipe

SENTENCES = {
    "happy_train": ("I am so happy to see you again, what a wonderful day.", "Happy", "train"),
    "angry_train": ("Get out of my house right now and never come back.", "Angry", "train"),
    "happy_val": ("This is the best news I have heard all year.", "Happy", "val"),
    "angry_val": ("I told you a hundred times, stop doing that.", "Angry", "val"),
}


def _speech_wav(text: str, path: Path, pitch: int) -> Path:
    espeak = require_tool("espeak-ng")
    subprocess.run([espeak, "-p", str(pitch), "-w", str(path), text], check=True)
    return path


def make_clip(path: Path, *, wav: Path | None = None, samples: np.ndarray | None = None) -> Path:
    """An MP4 with a 2 s MPEG-4 video stream and, if given, an AAC audio stream from a WAV file
    or from float samples at 16 kHz."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = None
        if wav is not None or samples is not None:
            rate = 22050 if wav is not None else 16000
            audio = out.add_stream("aac", rate=rate, layout="mono")
        for i in range(20):
            image = np.full((48, 64, 3), i * 12, np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if wav is not None:
            with av.open(str(wav)) as source:
                for frame in source.decode(audio=0):
                    frame.pts = None
                    for packet in audio.encode(frame):
                        out.mux(packet)
        elif samples is not None:
            frame = av.AudioFrame.from_ndarray(samples[None].astype(np.float32), "fltp", "mono")
            frame.sample_rate = 16000
            for packet in audio.encode(frame):
                out.mux(packet)
        if audio is not None:
            for packet in audio.encode():
                out.mux(packet)
    return path


def make_corrupt_clip(path: Path) -> Path:
    """A Matroska file whose AAC stream holds random bytes: opens fine, fails to decode."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=22050, layout="mono")
        for i in range(40):
            packet = av.Packet(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
            packet.stream = stream
            packet.pts = packet.dts = i * 1024
            packet.time_base = fractions.Fraction(1, 22050)
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio_clips")
    made = {}
    for index, (clip_id, (text, _, _)) in enumerate(SENTENCES.items()):
        wav = _speech_wav(text, folder / f"{clip_id}.wav", pitch=30 + 20 * index)
        made[clip_id] = make_clip(folder / f"{clip_id}.mp4", wav=wav)
    made["mute_test"] = make_clip(folder / "mute_test.mp4")
    made["silent_test"] = make_clip(folder / "silent_test.mp4", samples=np.zeros(8000))
    return made


def write_manifest(path: Path, clips: dict[str, Path], *, extra: dict[str, Path] | None = None):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "path", "split", "label"])
        for clip_id, (_, label, split) in SENTENCES.items():
            writer.writerow([clip_id, clips[clip_id], split, label])
        for clip_id in ("mute_test", "silent_test"):
            writer.writerow([clip_id, clips[clip_id], "test", ""])
        for clip_id, clip_path in (extra or {}).items():
            writer.writerow([clip_id, clip_path, "test", ""])
    return path


def write_recipe(path: Path, **fields) -> Path:
    recipe = {
        "modality": "audio",
        "spectrogram": "speech",
        "fc_dim": 32,
        "batch_size": 8,
        "allow_random_weights": True,
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-4},
        **fields,
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_decode_real_speech_to_mono_16k(clips):
    wav = clips["happy_train"].with_suffix(".wav")
    with av.open(str(wav)) as source:
        stream = source.streams.audio[0]
        seconds = stream.duration * stream.time_base
    samples = decode_audio(clips["happy_train"])
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) / 16000 - float(seconds)) < 0.15  # AAC adds a little priming
    assert np.sqrt(np.mean(samples**2)) > 0.01
    spectrum = np.exp(speech_spectrogram(samples)).mean(axis=1)
    voiced_band = spectrum[2:40].sum()  # 50 Hz - 1 kHz: pitch and first formant
    assert voiced_band > spectrum[120:200].sum()  # 3 - 5 kHz
    assert decode_audio(clips["mute_test"]) is None
    silent = decode_audio(clips["silent_test"])
    assert len(silent) > 0 and np.abs(silent).max() < 1e-3


def test_corrupt_audio_stream_is_one_line(tmp_path):
    bad = make_corrupt_clip(tmp_path / "bad.mkv")
    with pytest.raises(AudioDecodeError, match="bad.mkv: corrupt audio stream") as info:
        decode_audio(bad)
    assert "\n" not in str(info.value)


def test_shipped_recipes(tmp_path):
    for name, channels, height, per_segment in (("spectrogram", 1, 200, 10), ("logmel", 3, 128, 6)):
        recipe = load_recipe(Path("conf/store") / f"audio-{name}.yaml")
        assert recipe.modality == "audio" and recipe.checkpoint is not None
        maps = AlexNet(channels, fc_dim=8).features(torch.zeros(1, channels, height, 100))
        assert maps.shape[2] * maps.shape[3] == per_segment


def test_build_store_from_real_speech(clips, tmp_path, drawn):
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    recipe_path = write_recipe(tmp_path / "speech.yaml")
    store = build_store(manifest, recipe_path, tmp_path / "store", progress=False)
    assert store.modality == "audio" and store.dim == 256
    assert store.meta["backbone"] == "alexnet" and store.meta["enhancement"] == "speech"
    assert store.meta["random_weights"] is True
    rows = store.clips.set_index("clip_id")
    assert not rows.loc["mute_test", "has_audio"] and rows.loc["mute_test", "length"] == 0
    assert rows.loc["silent_test", "has_audio"] and rows.loc["silent_test", "length"] == 10
    assert np.isfinite(store.features("silent_test")).all()
    # The clip's vectors are its segments' 5x2 maps, segment after segment, in time order.
    torch.manual_seed(0)  # the extractor seeds its random weights with train.seed
    extractor_model = AlexNet(1, fc_dim=32)
    samples = decode_audio(clips["happy_train"])
    image = standardize(speech_spectrogram(samples)[None])
    segments = segment(image, 100, 100)
    expected = segment_vectors(extractor_model, segments, batch_size=8)
    got = store.features("happy_train")
    assert rows.loc["happy_train", "segments"] == len(segments) >= 2
    assert got.shape == (10 * len(segments), 256)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    first_alone = segment_vectors(extractor_model, segments[:1], batch_size=1)
    np.testing.assert_allclose(got[:10], first_alone, rtol=1e-4, atol=1e-5)
    # The preview: each clip with audio, time in s, frequency in Hz, one colour bar in dB.
    fig = drawn["spectrograms.png"]
    slide_png(store.path / "spectrograms.png", fig)
    panels = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in panels] == [*SENTENCES, "silent_test"]
    assert {ax.get_xlabel() for ax in panels[-2:]} == {"time (s)"}
    assert panels[0].get_ylabel() == "frequency (Hz)" and panels[0].get_ylim()[1] == 199.5 * 25
    first = speech_spectrogram(samples)[:, :400] * (20 / np.log(10))
    np.testing.assert_allclose(panels[0].images[0].get_array(), first, rtol=1e-5)
    assert panels[0].images[0].get_extent()[:2] == [0, pytest.approx(first.shape[1] / 100)]
    (bar,) = [ax for ax in fig.axes if ax.get_ylabel() == "magnitude (dB)"]
    low, high = panels[0].images[0].get_clim()
    assert high - low == 80 and bar.get_ylim() == (low, high)


def test_corrupt_clip_stops_the_build_or_is_skipped(clips, tmp_path, drawn):
    bad = make_corrupt_clip(tmp_path / "broken.mkv")
    manifest = write_manifest(tmp_path / "manifest.csv", clips, extra={"broken": bad})
    recipe_path = write_recipe(tmp_path / "speech.yaml", spectrogram="logmel", n_mels=64)
    with pytest.raises(ClipError, match="clip 'broken'.*corrupt audio stream"):
        build_store(manifest, recipe_path, tmp_path / "store", progress=False)
    store = build_store(manifest, recipe_path, tmp_path / "store", skip_bad=True, progress=False)
    assert "broken" not in store and len(store) == 6
    assert store.meta["enhancement"] == "logmel"
    assert "corrupt audio stream" in (store.path / "rejected.csv").read_text()
    # Its preview counts Mel bands, labelled with their centre frequencies (librosa's filters).
    fig = drawn["spectrograms.png"]
    slide_png(store.path / "spectrograms.png", fig)
    panel = fig.axes[0]
    assert panel.get_ylabel() == "Mel band (centre Hz)" and panel.get_ylim() == (-0.5, 63.5)
    centres = librosa.mel_frequencies(66, fmax=8000)[1:-1]
    ticks = [int(t) for t in panel.get_yticks()]
    assert ticks == [0, 16, 32, 47, 63]
    assert [t.get_text() for t in panel.get_yticklabels()] == [f"{centres[t]:.0f}" for t in ticks]
    assert any(ax.get_ylabel() == "Mel power (dB)" for ax in fig.axes)


def test_train_audio_then_build_from_its_checkpoint(clips, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    recipe_path = write_recipe(tmp_path / "speech.yaml", allow_random_weights=False)
    checkpoint = tmp_path / "ck" / "audio.pt"
    args = ["train-audio", "--manifest", str(manifest), "--recipe", str(recipe_path)]
    assert main([*args, "--out", str(checkpoint)]) == 0
    out = capsys.readouterr()
    assert "epoch 1/2" in out.out and "epoch 2/2" in out.out and "best val accuracy" in out.out
    state, extra = read_weights(checkpoint)
    assert extra["config"]["spectrogram"] == "speech" and 0.0 <= extra["val_acc"] <= 1.0
    assert (tmp_path / "ck" / "audio.curves.png").is_file()

    import mlflow

    run = mlflow.get_run(extra["mlflow_run_id"])
    assert run.data.metrics["best_val_acc"] == pytest.approx(extra["val_acc"])
    assert run.data.tags["avfusion.kind"] == "train-audio"

    recipe_path = write_recipe(
        tmp_path / "trained.yaml", allow_random_weights=False, checkpoint=str(checkpoint)
    )
    store = build_store(manifest, recipe_path, tmp_path / "store", progress=False)
    assert store.meta["random_weights"] is False and "train-audio" in store.meta["pretrain"]
    # The same checkpoint cannot serve a log-Mel recipe: one line naming the file.
    wrong = write_recipe(
        tmp_path / "wrong.yaml",
        allow_random_weights=False,
        checkpoint=str(checkpoint),
        spectrogram="logmel",
    )
    build = ["build", "--manifest", str(manifest), "--recipe", str(wrong)]
    assert main([*build, "--out", str(tmp_path / "wrong")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(checkpoint) in error
    assert "features.0.weight" in error


def test_an_audio_recipe_builds_alongside_visual_ones(clips, tmp_path):
    # build --recipe V.yaml --recipe A.yaml --out ROOT: the visual store through the matrix, the
    # audio one by its own engine, each in ROOT/<stem>/ and equal to building it alone.
    from feature_store.visual.matrix_build import build_stores

    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    audio = write_recipe(tmp_path / "speech.yaml")
    visual = tmp_path / "faces.yaml"
    visual.write_text(
        yaml.safe_dump(
            {"modality": "visual", "backbones": [{"name": "dlib-resnet"}],
             "sampling": {"max_frames": 2}, "faces": {"chip": "dlib", "size": 150}}
        )
    )  # fmt: skip
    stores = build_stores(manifest, [visual, audio], tmp_path / "root", progress=False)
    assert sorted(stores) == ["faces", "speech"]
    assert stores["faces"].path == tmp_path / "root" / "faces" and stores["faces"].dim == 128
    alone = build_store(manifest, audio, tmp_path / "alone", progress=False)
    assert stores["speech"].clip_ids() == alone.clip_ids()
    np.testing.assert_allclose(np.asarray(stores["speech"].array), np.asarray(alone.array))
