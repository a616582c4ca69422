"""Spectrogram math, segmenting, the AlexNet's map reshape and weights, and a tiny training run."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from feature_store.audio.checkpoint import load_weights, save_checkpoint
from feature_store.audio.cnn import (
    FEATURE_DIM,
    AlexNet,
    map_vectors,
    segment,
    segment_vectors,
    standardize,
)
from feature_store.audio.segments import SegmentSet
from feature_store.audio.signal import (
    LOG_FLOOR,
    SAMPLE_RATE,
    logmel_deltas,
    spectrogram_image,
    speech_spectrogram,
)
from feature_store.audio.train import evaluate, fit
from feature_store.errors import StoreError
from feature_store.weights import WeightsError

HZ_PER_BIN = SAMPLE_RATE / 640  # FFT length = the 40 ms window


def tone(hz: float, seconds: float = 1.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("hz", [250.0, 1000.0, 2525.0, 4900.0])
def test_pure_tone_peaks_in_its_bin(hz):
    spec = speech_spectrogram(tone(hz))
    assert spec.dtype == np.float32
    peaks = spec.argmax(axis=0)
    assert np.all(peaks == round(hz / HZ_PER_BIN))


def test_tone_at_another_sample_rate_is_resampled_by_decode_only():
    # At 8 kHz the window is still 40 ms (320 samples, 25 Hz per bin): 1 kHz is still bin 40.
    spec = speech_spectrogram(tone(1000.0, sample_rate=8000), 8000, bins=100)
    assert spec.shape[0] == 100
    assert np.all(spec.argmax(axis=0) == 40)


@pytest.mark.parametrize(
    ("samples", "frames"),
    [(16000, 97), (16000 + 159, 97), (16000 + 160, 98), (640, 1), (100, 1), (48000, 297)],
)
def test_frame_count_follows_the_10ms_shift(samples, frames):
    x = np.random.default_rng(0).standard_normal(samples).astype(np.float32)
    assert speech_spectrogram(x).shape == (200, frames)
    # 1 + (n - window) // hop frames for the 640-sample window and 160-sample shift
    if samples >= 640:
        assert frames == 1 + (samples - 640) // 160


def test_the_200_bin_cut():
    x = tone(1000.0) + tone(6000.0)  # 6 kHz is bin 240, above the cut
    spec = speech_spectrogram(x)
    full = np.abs(librosa.stft(x, n_fft=640, hop_length=160, window="hamming", center=False))
    assert full.shape[0] == 321 and spec.shape[0] == 200
    np.testing.assert_allclose(spec, np.log(full[:200] + LOG_FLOOR), rtol=1e-5, atol=1e-4)
    assert full[240].mean() > 100 * full[199].mean()  # the 6 kHz tone exists, but was cut off


def test_silence_is_finite():
    silence = np.zeros(SAMPLE_RATE, np.float32)
    assert np.isfinite(speech_spectrogram(silence)).all()
    assert np.isfinite(logmel_deltas(silence)).all()
    assert np.all(standardize(spectrogram_image("speech", silence)) == 0)


def _delta_by_hand(c: np.ndarray) -> np.ndarray:
    """First-order regression over +-4 frames: sum n (c[t+n] - c[t-n]) / (2 sum n^2)."""
    out = np.zeros_like(c)
    for t in range(4, c.shape[1] - 4):
        out[:, t] = sum(n * (c[:, t + n] - c[:, t - n]) for n in range(1, 5)) / 60.0
    return out


def _delta2_by_hand(c: np.ndarray) -> np.ndarray:
    """Second derivative of a least-squares parabola over 9 frames: 2 * sum (n^2 - m) c / S."""
    offsets = np.arange(-4, 5)
    weights = offsets**2 - np.mean(offsets**2)
    weights = 2 * weights / np.sum(weights**2)
    out = np.zeros_like(c)
    for t in range(4, c.shape[1] - 4):
        out[:, t] = c[:, t - 4 : t + 5] @ weights
    return out


def test_logmel_deltas_match_librosas_definition():
    rng = np.random.default_rng(1)
    x = (tone(440.0, 1.5) * np.linspace(0, 1, int(1.5 * SAMPLE_RATE))).astype(np.float32)
    x += 0.01 * rng.standard_normal(len(x)).astype(np.float32)
    stack = logmel_deltas(x, n_mels=40)
    assert stack.shape == (3, 40, 1 + (len(x) - 640) // 160)
    mel = librosa.feature.melspectrogram(
        y=x, sr=SAMPLE_RATE, n_fft=640, hop_length=160, window="hamming", center=False, n_mels=40
    )
    log_mel = np.log(mel + LOG_FLOOR)
    np.testing.assert_allclose(stack[0], log_mel, rtol=1e-4, atol=1e-3)
    inner = slice(4, -4)
    np.testing.assert_allclose(stack[1][:, inner], _delta_by_hand(log_mel)[:, inner], atol=1e-3)
    np.testing.assert_allclose(stack[2][:, inner], _delta2_by_hand(log_mel)[:, inner], atol=1e-3)
    # edges too: librosa's interpolating Savitzky-Golay filter
    np.testing.assert_allclose(stack[1], librosa.feature.delta(log_mel), atol=1e-3)
    np.testing.assert_allclose(stack[2], librosa.feature.delta(log_mel, order=2), atol=1e-3)


def test_short_clip_is_padded_to_enough_frames_for_deltas():
    stack = logmel_deltas(np.ones(50, np.float32), n_mels=32)
    assert stack.shape == (3, 32, 9) and np.isfinite(stack).all()


def test_unknown_spectrogram_names_the_known_ones():
    with pytest.raises(StoreError, match="logmel, speech"):
        spectrogram_image("mfcc", np.zeros(1000, np.float32))


def test_segments_cover_every_frame_and_pad_the_last():
    image = np.arange(2 * 3 * 250, dtype=np.float32).reshape(2, 3, 250) + 1
    segments = segment(image, 100, 100)
    assert segments.shape == (3, 2, 3, 100)
    np.testing.assert_array_equal(segments[1], image[:, :, 100:200])
    np.testing.assert_array_equal(segments[2, :, :, :50], image[:, :, 200:])
    assert np.all(segments[2, :, :, 50:] == 0)
    overlapping = segment(image, 100, 50)
    assert overlapping.shape[0] == 4  # starts 0, 50, 100, 150: the last one ends at frame 250
    np.testing.assert_array_equal(overlapping[3], image[:, :, 150:250])
    short = segment(image[:, :, :30], 100, 100)
    assert short.shape == (1, 2, 3, 100) and np.all(short[0, :, :, 30:] == 0)


def test_map_reshape_keeps_hw_by_c_order():
    maps = torch.randn(2, 5, 3, 4)  # (S, C, H, W)
    vectors = map_vectors(maps)
    assert vectors.shape == (2 * 3 * 4, 5)
    for s in range(2):
        for h in range(3):
            for w in range(4):
                torch.testing.assert_close(vectors[s * 12 + h * 4 + w], maps[s, :, h, w])


@pytest.mark.parametrize(
    ("kind", "height", "map_hw"), [("speech", 200, (5, 2)), ("logmel", 128, (3, 2))]
)
def test_alexnet_last_pooling_map(kind, height, map_hw):
    channels = 1 if kind == "speech" else 3
    model = AlexNet(channels, fc_dim=16)
    x = torch.randn(3, channels, height, 100)
    assert model.features(x).shape == (3, FEATURE_DIM, *map_hw)
    assert model(x).shape == (3, 7)
    vectors = segment_vectors(model, x.numpy(), batch_size=2)
    assert vectors.shape == (3 * map_hw[0] * map_hw[1], FEATURE_DIM)


def test_weights_round_trip_prefixes_and_imagenet_head(tmp_path):
    model = AlexNet(1, fc_dim=16)
    save_checkpoint(tmp_path / "ck.pt", model, epoch=3)
    fresh = AlexNet(1, fc_dim=16)
    extra = load_weights(fresh, tmp_path / "ck.pt", head=True)
    assert extra["epoch"] == 3
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)
    # An ImageNet-style file: DataParallel prefix, RGB first layer, 1000-class head.
    imagenet = AlexNet(3, num_classes=1000, fc_dim=16)
    torch.save({f"module.{k}": v for k, v in imagenet.state_dict().items()}, tmp_path / "in.pth")
    target = AlexNet(1, fc_dim=16)
    load_weights(target, tmp_path / "in.pth", head=False)
    torch.testing.assert_close(
        target.features[0].weight, imagenet.features[0].weight.sum(1, keepdim=True)
    )
    torch.testing.assert_close(target.classifier[4].weight, imagenet.classifier[4].weight)
    with pytest.raises(WeightsError, match="shape mismatches: classifier.6.bias"):
        load_weights(AlexNet(1, fc_dim=16), tmp_path / "in.pth", head=True)


def test_weights_that_do_not_fit_are_one_line(tmp_path):
    model = AlexNet(1, fc_dim=16)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("features.3")}
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(WeightsError) as info:
        load_weights(AlexNet(1, fc_dim=16), tmp_path / "bad.pt", head=True)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "bad.pt") in message
    assert "missing keys: features.3.bias, features.3.weight" in message
    assert "unexpected keys: extra.weight" in message
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    with pytest.raises(
        WeightsError, match=r"pickled Python objects \(torch.nn.modules.linear.Linear\)"
    ):
        load_weights(AlexNet(1, fc_dim=16), tmp_path / "pickled.pt", head=True)
    (tmp_path / "text.pt").write_text("not weights")
    with pytest.raises(WeightsError, match="not a readable PyTorch weights file"):
        load_weights(AlexNet(1, fc_dim=16), tmp_path / "text.pt", head=True)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(AlexNet(1, fc_dim=16), tmp_path / "absent.pt", head=True)


@pytest.fixture
def one_thread():
    """One torch thread: on a shared 2-core machine two threads spin against each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_cnn_fits_a_tiny_set(one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    clips, labels = [], []
    for label in range(7):
        image = 0.5 * rng.standard_normal((1, 64, 128)).astype(np.float32)
        image[0, 4 + 8 * label : 12 + 8 * label] += 4.0  # a class's own "formant" band
        clips.append(segment(image, 64, 64))
        labels.append(label)
    data = SegmentSet.from_clips(clips, labels)
    assert len(data) == 7 * 2 and len(data.clip_labels) == 7
    model = AlexNet(1, fc_dim=64, dropout=0.0)
    before, _ = evaluate(model, data, batch_size=14)
    history = list(fit(model, data, None, epochs=30, batch_size=14, lr=5e-4, seed=0))
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    loss, accuracy = evaluate(model, data, batch_size=14)
    assert accuracy == 1.0 and loss < 0.5 * before
