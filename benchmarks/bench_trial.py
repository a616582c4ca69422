"""Figures of the trial function (issue 3), each printed beside its baseline and the ratio.

    .venv/bin/python benchmarks/bench_trial.py [--demo data/demo] [--device auto] [--threads 1]
        [--scales 1,4] [--skip-throughput]

1. Epoch throughput (training clips/s) of ``train_trial`` against a bare PyTorch loop over the same
   model, optimiser and pre-built device tensors, on the AFEW-sized planted stores (773 train
   clips). Target: >= 0.9. Two ratios: the training phase alone (what the bare loop does) and
   end to end (``train_trial``'s wall time, including building the tensors and scoring val every
   epoch, which the bare loop does not do). Runs alternate and the median is kept, because other
   jobs share the machine.
2. Validation accuracy of ``conf/trial/paper-best.yaml`` and of mean pooling + concatenation on the
   planted demo pairs, as a fraction of the exact oracle accuracy in the stores' ``store.json``.

The planted stores are written with ``python -m feature_store synth`` when ``--demo`` lacks them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import feature_store
from trainables import TrialConfig, build_model, load_trial_config, train_trial
from trainables.device import resolve_device
from trainables.optim import make_optimizer
from trainables.tensors import build_split

ROOT = Path(__file__).resolve().parent.parent
PAPER_BEST = ROOT / "conf" / "trial" / "paper-best.yaml"
BASELINE_MODEL = ["visual_attention=mean", "audio_attention=mean", "fusion=concat"]


def ensure_demo(demo: Path, scale: float = 1.0) -> None:
    command = [sys.executable, "-m", "feature_store", "synth", "--out", str(demo)]
    command += ["--scale", str(scale), "--skip-existing"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def scaled_demo(demo: Path, scale: float) -> Path:
    """The planted stores at ``scale`` × AFEW's clip counts (``--demo`` itself at 1)."""
    folder = demo if scale == 1 else demo.parent / f"{demo.name}-x{scale:g}"
    ensure_demo(folder, scale)
    return folder


def bare_loop_seconds(config: TrialConfig, data: feature_store.StorePair) -> float:
    """The same model, optimiser and device tensors, trained by the plainest loop; setup untimed."""
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    stores = {"visual": data.visual, "audio": data.audio}
    train = build_split(stores, data.clip_ids("train"), data.labels("train"), device)
    model = build_model(
        config,
        visual_dim=data.visual.dim,
        audio_dim=data.audio.dim,
        num_classes=len(data.classes),
    ).to(device)
    optimizer = make_optimizer(model, config)
    x_v, m_v, x_a, m_a = (
        train.x["visual"],
        train.mask["visual"],
        train.x["audio"],
        train.mask["audio"],
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), device=device)
        for first in range(0, len(train), config.batch_size):
            index = order[first : first + config.batch_size]
            logits = model(x_v[index], m_v[index], x_a[index], m_a[index])
            loss = F.cross_entropy(logits, train.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    float(loss.detach())  # wait for the device
    return time.perf_counter() - start


def throughput(config: TrialConfig, data: feature_store.StorePair, repeats: int) -> None:
    clips = len(data.clip_ids("train")) * config.epochs
    bare, phase, whole = [], [], []
    for _ in range(repeats):  # alternate, so load from other jobs hits both sides alike
        bare.append(clips / bare_loop_seconds(config, data))
        start = time.perf_counter()
        result = train_trial(config, data)
        whole.append(clips / (time.perf_counter() - start))
        phase.append(clips / result.timing["train_s"])
    bare_clips, phase_clips, whole_clips = (statistics.median(v) for v in (bare, phase, whole))
    print(
        f"epoch throughput, {config.epochs} epochs x {clips // config.epochs} train clips, "
        f"device {resolve_device(config.device)}, {torch.get_num_threads()} thread(s), median of {repeats}:"
    )
    print(f"  bare PyTorch loop            {bare_clips:10.0f} clips/s   (baseline)")
    print(
        f"  train_trial, training phase  {phase_clips:10.0f} clips/s   ratio {phase_clips / bare_clips:.3f}  (target >= 0.9)"
    )
    print(
        f"  train_trial, end to end      {whole_clips:10.0f} clips/s   ratio {whole_clips / bare_clips:.3f}  "
        "(also pads the stores and scores val each epoch)"
    )


def accuracy_vs_oracle(
    demo: Path, pairs: list[tuple[str, str]], device: str, overrides: list[str]
) -> None:
    clips = len(feature_store.open_store(demo / "visual" / pairs[0][0]).clip_ids("train"))
    print(
        f"val accuracy on the planted stores in {demo} ({clips} train clips), as a fraction of "
        "the oracle (store.json):"
    )
    print(f"  {'visual x audio':28} {'oracle':>7} {'paper-best':>18} {'mean+concat':>18}")
    for visual, audio in pairs:
        data = feature_store.pair(demo / "visual" / visual, demo / "audio" / audio).load()
        oracle = data.visual.meta["planted"]["oracle"]["paired"][audio]["val"]
        cells = []
        for model in ([], BASELINE_MODEL):
            config = load_trial_config(PAPER_BEST, [f"device={device}", *overrides, *model])
            accuracy = train_trial(config, data).metrics["val_acc"]
            cells.append(f"{accuracy:.3f} ({accuracy / oracle:5.1%})")
        print(
            f"  {visual + ' x ' + audio:28} {oracle:7.3f} {cells[0]:>18} {cells[1]:>18}", flush=True
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--demo", type=Path, default=ROOT / "data" / "demo", help="planted stores folder"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs per throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating throughput runs")
    parser.add_argument(
        "--pairs",
        default="basic:spectrogram,f-meanstd:spectrogram",
        help="visual:audio variants for the accuracy figures",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="extra key=value for the accuracy runs",
    )
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--scales",
        default="1",
        help="accuracy figures at these multiples of AFEW's size, e.g. 1,4: a gap to the oracle "
        "that shrinks with more clips is data, not a bug",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ensure_demo(args.demo)
    data = feature_store.pair(
        args.demo / "visual" / "basic", args.demo / "audio" / "spectrogram"
    ).load()
    config = load_trial_config(PAPER_BEST, [f"epochs={args.epochs}", f"device={args.device}"])
    if not args.skip_throughput:
        throughput(config, data, args.repeats)
    if not args.skip_accuracy:
        pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
        for scale in (float(s) for s in args.scales.split(",")):
            accuracy_vs_oracle(scaled_demo(args.demo, scale), pairs, args.device, args.overrides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
