"""Audio pipeline throughput, each figure beside its limit measured in the same run.

1. Spectrograms: seconds of audio turned into speech spectrograms / log-Mel stacks per second,
   beside librosa's STFT alone (same window, shift and signal) as the limit.
2. Audio-CNN feature extraction: seconds of audio per second through the whole extractor (decode
   a real clip with PyAV, spectrogram, segments, AlexNet's convolutional part, reshape), beside
   the CNN's forward pass alone over the same segments as the limit.
3. Released encoders (WavLM, HuBERT, wav2vec 2.0, CLAP): seconds of audio per second through the
   whole extractor of each shipped recipe (decode, the release's feature extractor, the model),
   for a tiny model (the tests' size) and for the base size (the transformers config classes'
   defaults, random weights: the cost depends on the size, not the weights), each beside the
   AlexNet speech-spectrogram extractor of part 2 (ratio = encoder / AlexNet).

    .venv/bin/python benchmarks/bench_audio.py [--seconds 60] [--repeats 5] [--threads N] \
        [--sizes tiny base] [--encoders wavlm hubert wav2vec2 clap]
"""

from __future__ import annotations

import argparse
import shutil
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

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"


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


# The shipped recipe of each encoder kind.
RECIPES = {
    "wavlm": "wavlm-base-l6.yaml",
    "hubert": "hubert-base-l9.yaml",
    "wav2vec2": "wav2vec2-base-weighted.yaml",
    "clap": "clap-htsat.yaml",
}
# Config arguments per size: "base" is the config classes' defaults, the released base models'
# shapes (768 wide, 12 layers, the 512-channel CNN; CLAP's HTSAT-base, 512-d projection).
SIZES = {
    "tiny": {
        "speech": {
            "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
            "conv_dim": (32,) * 7, "num_conv_pos_embeddings": 16,
            "num_conv_pos_embedding_groups": 2,
        },
        "clap": {
            "depths": [1, 1], "num_attention_heads": [1, 2], "patch_embeds_hidden_size": 8,
            "hidden_size": 16, "projection_dim": 12,
        },
    },
    "base": {"speech": {}, "clap": {}},
}  # fmt: skip
SPEECH_CLASSES = {"wavlm": "WavLM", "hubert": "Hubert", "wav2vec2": "Wav2Vec2"}


def random_model_folder(folder: Path, kind: str, size: str) -> Path:
    """A model folder as the Hub has it, random weights of the given size."""
    import transformers

    out = folder / f"{kind}-{size}"
    torch.manual_seed(0)
    if kind == "clap":
        config = transformers.ClapAudioConfig(**SIZES[size]["clap"])
        model = transformers.ClapAudioModelWithProjection(config)
        extractor = transformers.ClapFeatureExtractor(truncation="rand_trunc")
    else:
        name = SPEECH_CLASSES[kind]
        config = getattr(transformers, f"{name}Config")(**SIZES[size]["speech"])
        model = getattr(transformers, f"{name}Model")(config)
        extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=kind != "wavlm")
    model.save_pretrained(out)
    extractor.save_pretrained(out)
    return out


def encoder_seconds(
    folder: Path, clip: Path, kind: str, size: str, args: argparse.Namespace
) -> tuple[float, np.ndarray]:
    """Best time of the shipped recipe's extractor on ``clip``, and its vectors."""
    model = random_model_folder(folder, kind, size)
    recipe = yaml.safe_load((CONF / RECIPES[kind]).read_text())
    recipe = {**recipe, "device": "cpu", "encoder": {**recipe["encoder"], "model": str(model)}}
    recipe_path = folder / f"{kind}-{size}.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe))
    extractor = make_extractor(load_recipe(recipe_path))
    # The base models take seconds per run: one timed run after the warm-up.
    repeats = args.repeats if size == "tiny" else 1
    took = best_seconds(lambda: extractor.extract("c", clip), repeats)
    vectors, _ = extractor.extract("c", clip)
    shutil.rmtree(model)
    return took, vectors


def row(name: str, seconds_of_audio: float, took: float, limit_took: float, limit: str) -> None:
    ours, best = seconds_of_audio / took, seconds_of_audio / limit_took
    print(f"{name:<34} {ours:>10.1f} s/s   {limit:<26} {best:>10.1f} s/s   ratio {ours / best:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of audio")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--encoders", nargs="*", default=list(RECIPES), choices=list(RECIPES))
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

    alexnet = 0.0
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
            if kind == "speech":
                alexnet = took  # the baseline of the encoders below
        print()
        for size in args.sizes:
            for kind in args.encoders:
                took, vectors = encoder_seconds(Path(folder), clip, kind, size, args)
                row(
                    f"{kind} {size} ({len(vectors)} vec of {vectors.shape[1]})",
                    args.seconds,
                    took,
                    alexnet,
                    "AlexNet speech extract",
                )


if __name__ == "__main__":
    main()
