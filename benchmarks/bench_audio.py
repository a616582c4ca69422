"""Audio pipeline throughput, each figure beside its limit measured in the same run.

1. Spectrograms: seconds of audio turned into speech spectrograms / log-Mel stacks per second,
   beside librosa's STFT alone (same window, shift and signal) as the limit.
2. Audio-CNN feature extraction: seconds of audio per second through the whole extractor (decode
   a real clip with PyAV, spectrogram, segments, AlexNet's convolutional part, reshape), beside
   the CNN's forward pass alone over the same segments as the limit.

    .venv/bin/python benchmarks/bench_audio.py [--seconds 60] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import librosa
import numpy as np
import torch
import yaml

from feature_store.audio.cnn import segment, standardize
from feature_store.audio.signal import SAMPLE_RATE, logmel_deltas, speech_spectrogram
from feature_store.extractor import make_extractor
from feature_store.recipe import load_recipe


def best_seconds(function: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs (after one warm-up): the least disturbed by other load."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def speech_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A gliding harmonic tone in noise: what the pipeline costs does not depend on the words."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    return (0.2 * voice + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def write_clip(path: Path, samples: np.ndarray) -> Path:
    """An MP4 (MPEG-4 video, AAC audio) holding ``samples`` as its audio track."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=5)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for _ in range(int(len(samples) / SAMPLE_RATE * 5)):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        frame = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*audio.encode(frame), *audio.encode()]:
            out.mux(packet)
    return path


def row(name: str, seconds_of_audio: float, took: float, limit_took: float, limit: str) -> None:
    ours, best = seconds_of_audio / took, seconds_of_audio / limit_took
    print(f"{name:<34} {ours:>10.1f} s/s   {limit:<26} {best:>10.1f} s/s   ratio {ours / best:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of audio")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    samples = speech_like(args.seconds, rng)
    print(f"{args.seconds:.0f} s of 16 kHz audio, torch threads {torch.get_num_threads()}")
    print("throughput in seconds of audio per second (s/s); ratio = ours / limit\n")

    def stft_alone() -> np.ndarray:
        return librosa.stft(samples, n_fft=640, hop_length=160, window="hamming", center=False)

    limit = best_seconds(stft_alone, args.repeats)
    row(
        "speech spectrogram [200, T]",
        args.seconds,
        best_seconds(lambda: speech_spectrogram(samples), args.repeats),
        limit,
        "librosa STFT alone",
    )
    row(
        "log-Mel + deltas [3, 128, T]",
        args.seconds,
        best_seconds(lambda: logmel_deltas(samples, n_mels=128), args.repeats),
        limit,
        "librosa STFT alone",
    )

    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder) / "clip.mp4", samples)
        for kind in ("speech", "logmel"):
            recipe_path = Path(folder) / f"{kind}.yaml"
            recipe_path.write_text(
                yaml.safe_dump(
                    {
                        "modality": "audio",
                        "spectrogram": kind,
                        "allow_random_weights": True,  # weights do not change the cost
                        "device": "cpu",
                    }
                )
            )
            recipe = load_recipe(recipe_path)
            extractor = make_extractor(recipe)
            image = speech_spectrogram(samples)[None] if kind == "speech" else None
            if image is None:
                image = logmel_deltas(samples, n_mels=recipe.n_mels)
            segments = torch.from_numpy(
                segment(standardize(image), recipe.segment_frames, recipe.hop)
            )
            model = extractor.model

            @torch.inference_mode()
            def forward_alone(model=model, segments=segments, batch=recipe.batch_size) -> None:
                for start in range(0, len(segments), batch):
                    model.features(segments[start : start + batch])

            limit = best_seconds(forward_alone, args.repeats)
            took = best_seconds(
                lambda extractor=extractor: extractor.extract("c", clip), args.repeats
            )
            vectors, _ = extractor.extract("c", clip)
            row(
                f"audio-CNN extract ({kind}, {len(vectors)} vec)",
                args.seconds,
                took,
                limit,
                "CNN forward pass alone",
            )


if __name__ == "__main__":
    main()
