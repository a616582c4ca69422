"""The audio CNN: AlexNet on fixed-length spectrogram segments, its weights, and ``train-audio``.

A clip's spectrogram image ``[C, H, T]`` is standardised per clip (mean and deviation of every
channel's row, as in cepstral mean-variance normalisation) and cut into segments of
``segment_frames`` frames every ``segment_hop`` frames; the last segment (and a clip shorter than
one segment) is zero-padded, zero being the clip's mean after standardising. AlexNet is
torchvision's layout in plain PyTorch, so an ImageNet AlexNet state dict loads as it is (its
first convolution summed over RGB for a one-channel spectrogram, its 1000-class head dropped).
The last pooling layer's map ``[C=256, H, W]`` of a segment becomes ``H·W`` vectors of 256 dims.

    python -m feature_store train-audio --manifest CSV --recipe conf/store/audio-spectrogram.yaml \
        --out checkpoints/audio-spectrogram.pt [--epochs N] [--workers N]

trains on the train split, reports val accuracy per epoch (a clip's prediction is the mean of its
segments' probabilities), logs the run to MLflow and keeps the best epoch's checkpoint.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from avcore.afew import CLASSES
from feature_store.devices import resolve_device
from feature_store.errors import StoreError
from feature_store.tracking import start_mlflow
from feature_store.weights import WeightsError, read_checkpoint

if TYPE_CHECKING:
    from feature_store.audio_extract import AudioRecipe

FEATURE_DIM = 256  # channels of AlexNet's last pooling map
CHECKPOINT_FORMAT = "avfusion-audio-cnn"


# -- input: standardise, segment --------------------------------------------------------------


def standardize(image: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Per-clip mean-variance normalisation of every channel's row (``[C, H, T]``, float32).

    A (nearly) constant row, as in silence, becomes zeros rather than amplified rounding noise.
    """
    image = image.astype(np.float64)
    mean = image.mean(axis=2, keepdims=True)
    std = image.std(axis=2, keepdims=True)
    scale = np.where(std > eps, 1.0 / np.maximum(std, eps), 0.0)
    return ((image - mean) * scale).astype(np.float32)


def segment(image: np.ndarray, frames: int, hop: int) -> np.ndarray:
    """Cut ``[C, H, T]`` into ``[S, C, H, frames]`` segments starting every ``hop`` frames.

    ``S = 1 + ceil(max(T - frames, 0) / hop)``; the last segment is zero-padded, so every frame is
    in some segment and a clip shorter than one segment gives exactly one.
    """
    channels, height, total = image.shape
    count = 1 + -(-max(total - frames, 0) // hop)
    padded_length = (count - 1) * hop + frames
    padded = np.zeros((channels, height, padded_length), dtype=np.float32)
    padded[:, :, :total] = image
    # (C, H, S, frames) view, then segments first.
    windows = np.lib.stride_tricks.sliding_window_view(padded, frames, axis=2)[:, :, ::hop]
    return windows.transpose(2, 0, 1, 3).copy()  # a writable array of its own


# -- the model --------------------------------------------------------------------------------


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012, torchvision's single-tower layout) for spectrograms.

    ``in_channels`` is 1 for the speech spectrogram, 3 for log-Mel + deltas; ``fc_dim`` is the
    width of the two hidden fully connected layers (4096 in the original).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = len(CLASSES),
        *,
        fc_dim: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, FEATURE_DIM, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # the last pooling layer: the stored map
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(FEATURE_DIM * 6 * 6, fc_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(fc_dim, fc_dim),
            nn.ReLU(inplace=True),
            nn.Linear(fc_dim, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.features(x)  # (S, 256, h, w)
        return self.classifier(torch.flatten(self.avgpool(maps), 1))  # (S, classes)


def map_vectors(maps: torch.Tensor) -> torch.Tensor:
    """Last-pooling maps ``[S, C, H, W]`` -> ``[S·H·W, C]``: segment by segment, each segment's
    positions in row-major (H, then W) order, one C-dim vector per position."""
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])


@torch.inference_mode()
def segment_vectors(model: AlexNet, segments: np.ndarray, *, batch_size: int) -> np.ndarray:
    """``[S, C, H, frames]`` segments -> ``[S·h·w, 256]`` float32 vectors, in time order."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        map_vectors(model.features(torch.from_numpy(segments[i : i + batch_size]).to(device)))
        for i in range(0, len(segments), batch_size)
    ]
    return torch.cat(out).float().cpu().numpy()


# -- weights ----------------------------------------------------------------------------------


def _summary(keys: Iterable[str], limit: int = 4) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, extra)`` from a weights file: a bare state dict, or a dict holding one under
    ``state_dict``/``model`` (``extra`` = the other entries), read by the shared safe loader
    (``feature_store.weights``): ``weights_only=True``, prefixes stripped, one ``WeightsError``
    line naming the file for anything else.
    """
    checkpoint = read_checkpoint(path)
    return checkpoint.state, checkpoint.extra


def load_weights(
    model: AlexNet, path: str | os.PathLike[str], *, head: bool, features_only: bool = False
) -> dict[str, Any]:
    """Load a weights file into ``model``; returns the file's extra entries.

    ``head=False`` ignores a final layer whose class count differs (an ImageNet checkpoint's 1000
    classes); ``features_only`` loads and requires just the convolutional part (feature
    extraction). A 3-channel first convolution is summed over its channels for a 1-channel model.
    Anything that does not fit is one ``WeightsError`` naming the file and the keys.
    """
    state, extra = read_weights(path)
    own = model.state_dict()
    first = "features.0.weight"
    if first in state and first in own and (state[first].shape[1], own[first].shape[1]) == (3, 1):
        state = {**state, first: state[first].sum(dim=1, keepdim=True)}
    if not head:
        last = [k for k in ("classifier.6.weight", "classifier.6.bias") if k in state]
        if last and state[last[0]].shape != own[last[0]].shape:
            state = {k: v for k, v in state.items() if k not in last}
    wanted = {k for k in own if k.startswith("features.")} if features_only else set(own)
    if not head and not features_only:
        wanted -= {k for k in ("classifier.6.weight", "classifier.6.bias") if k not in state}
    missing = wanted - state.keys()
    unexpected = state.keys() - own.keys()
    mismatched = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in sorted(wanted & state.keys())
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"missing keys: {_summary(missing)}" if missing else "",
            f"unexpected keys: {_summary(unexpected)}" if unexpected else "",
            f"shape mismatches: {_summary(mismatched)}" if mismatched else "",
        ]
        raise WeightsError(
            f"{path}: does not fit the audio AlexNet; " + "; ".join(p for p in parts if p)
        )
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)
    return extra


def checkpoint_config(recipe: AudioRecipe) -> dict[str, Any]:
    """What a checkpoint must agree on with the recipe that builds a store from it."""
    return {
        "spectrogram": recipe.spectrogram,
        "n_mels": recipe.n_mels if recipe.spectrogram == "logmel" else None,
        "segment_frames": recipe.segment_frames,
        "fc_dim": recipe.fc_dim,
    }


def save_checkpoint(path: Path, model: AlexNet, **extra: Any) -> None:
    """``{"format", "state_dict", **extra}`` written atomically (tmp file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": state, **extra}, tmp)
    os.replace(tmp, path)


# -- training ---------------------------------------------------------------------------------


@dataclass
class SegmentSet:
    """Every segment of some clips, with its label and the index of the clip it came from."""

    segments: torch.Tensor  # (S, C, H, frames)
    labels: torch.Tensor  # (S,) label of the segment's clip
    clip_index: torch.Tensor  # (S,) 0..clips-1
    clip_labels: torch.Tensor  # (clips,)

    @classmethod
    def from_clips(cls, clips: list[np.ndarray], labels: list[int]) -> SegmentSet:
        counts = [len(c) for c in clips]
        clip_index = torch.repeat_interleave(torch.arange(len(clips)), torch.tensor(counts))
        clip_labels = torch.tensor(labels, dtype=torch.long)
        return cls(
            torch.from_numpy(np.concatenate(clips)),
            clip_labels[clip_index],
            clip_index,
            clip_labels,
        )

    def __len__(self) -> int:
        return len(self.segments)


@torch.inference_mode()
def evaluate(model: AlexNet, data: SegmentSet, *, batch_size: int) -> tuple[float, float]:
    """``(loss, accuracy)`` per clip: a clip's probabilities are the mean over its segments."""
    model.eval()
    device = next(model.parameters()).device
    probs = torch.cat(
        [
            torch.softmax(model(data.segments[i : i + batch_size].to(device)), dim=1).cpu()
            for i in range(0, len(data), batch_size)
        ]
    )
    clips = len(data.clip_labels)
    summed = torch.zeros(clips, probs.shape[1]).index_add_(0, data.clip_index, probs)
    counts = torch.bincount(data.clip_index, minlength=clips).clamp(min=1)
    clip_probs = summed / counts[:, None]
    loss = nn.functional.nll_loss(torch.log(clip_probs.clamp(min=1e-8)), data.clip_labels)
    accuracy = (clip_probs.argmax(1) == data.clip_labels).float().mean()
    return float(loss), float(accuracy)


def fit(
    model: AlexNet,
    train: SegmentSet,
    val: SegmentSet | None,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> Iterable[dict[str, float]]:
    """Train with Adam (or SGD + momentum) and a cosine learning rate, yielding
    ``{epoch, train_loss, train_acc[, val_loss, val_acc]}`` after every epoch."""
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    # AlexNet has no normalisation layers: from scratch, plain SGD at the usual 0.01 stalls at
    # chance on spectrograms, Adam at 1e-4 starts learning at once.
    if optimizer == "adam":
        step = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        step = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    else:
        raise StoreError(f"unknown optimizer {optimizer!r}; known: adam, sgd")
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(step, T_max=max(epochs, 1))
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total_loss, correct = 0.0, 0
        steps = range(0, len(order), batch_size)
        for start in tqdm(steps, desc=f"epoch {epoch}", leave=False, disable=not progress):
            batch = order[start : start + batch_size]
            x, y = train.segments[batch].to(device), train.labels[batch].to(device)
            logits = model(x)
            loss = loss_fn(logits, y)
            step.zero_grad(set_to_none=True)
            loss.backward()
            step.step()
            total_loss += loss.item() * len(batch)
            correct += int((logits.argmax(1) == y).sum())
        schedule.step()
        row = {
            "epoch": epoch,
            "train_loss": total_loss / len(train),
            "train_acc": correct / len(train),
        }
        if val is not None:
            row["val_loss"], row["val_acc"] = evaluate(model, val, batch_size=batch_size)
        yield row


def _clip_segments(item: tuple[str, str, Any]) -> tuple[str, np.ndarray | None]:
    """One clip's standardised segments (None without an audio track); runs in worker processes."""
    # Imported here: feature_store.audio registers the audio recipe, whose module imports this one.
    from feature_store.audio import AudioDecodeError, clip_image

    clip_id, path, recipe = item
    try:
        image = clip_image(path, recipe.spectrogram, n_mels=recipe.n_mels)
    except AudioDecodeError as exc:
        raise StoreError(f"clip {clip_id!r}: {exc}") from None
    if image is None:
        return clip_id, None
    return clip_id, segment(standardize(image), recipe.segment_frames, recipe.hop)


def load_segments(
    clips: Any, recipe: AudioRecipe, *, workers: int = 1, desc: str = "spectrograms"
) -> tuple[SegmentSet | None, list[str]]:
    """Segments of the manifest rows ``clips`` (clip_id, path, label); also the clip ids that
    have no audio track and so are left out. A missing file or corrupt stream names the clip."""
    items = []
    for row in clips.itertuples(index=False):
        if not Path(row.path).is_file():
            raise StoreError(f"clip {row.clip_id!r}: {row.path}: no such file")
        items.append((row.clip_id, row.path, recipe))
    if workers > 1 and len(items) > 1:
        import concurrent.futures as futures
        import multiprocessing

        with futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            results = list(
                tqdm(pool.map(_clip_segments, items, chunksize=4), total=len(items), desc=desc)
            )
    else:
        results = [_clip_segments(item) for item in tqdm(items, desc=desc)]
    labels = dict(zip(clips["clip_id"], clips["label"]))
    kept = [(clip_id, segs) for clip_id, segs in results if segs is not None]
    silent = [clip_id for clip_id, segs in results if segs is None]
    if not kept:
        return None, silent
    return SegmentSet.from_clips([s for _, s in kept], [int(labels[c]) for c, _ in kept]), silent


def _plot_curves(history: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "val_loss"):
        loss_axis.plot(epochs, [row[key] for row in history], label=key)
    for key in ("train_acc", "val_acc"):
        acc_axis.plot(epochs, [row[key] for row in history], label=key)
    loss_axis.set_xlabel("epoch")
    acc_axis.set_xlabel("epoch")
    loss_axis.legend()
    acc_axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def train_audio(
    manifest: str | os.PathLike[str],
    recipe_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    epochs: int | None = None,
    workers: int = 1,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Train the recipe's AlexNet on the train split, keep the best-val-accuracy checkpoint at
    ``out``; returns ``{best_val_acc, best_epoch, run_id, history}``."""
    from feature_store.manifest import read_manifest
    from feature_store.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    if recipe.modality != "audio":
        raise StoreError(f"{recipe_path}: train-audio needs an audio recipe, got {recipe.modality}")
    spec = recipe.train
    epochs = spec.epochs if epochs is None else epochs
    if epochs < 1:
        raise StoreError(f"--epochs must be at least 1, got {epochs}")
    out = Path(out)
    clips = read_manifest(manifest)
    train_clips, val_clips = clips[clips["split"] == "train"], clips[clips["split"] == "val"]
    if train_clips.empty or val_clips.empty:
        raise StoreError(f"{manifest}: train-audio needs train and val clips (labels)")
    mlflow, experiment_id = start_mlflow(spec.experiment)  # a dead server stops us before work
    train, train_silent = load_segments(train_clips, recipe, workers=workers, desc="train clips")
    val, val_silent = load_segments(val_clips, recipe, workers=workers, desc="val clips")
    if train is None or val is None:
        raise StoreError(f"{manifest}: no train or no val clip has an audio track")
    if train_silent or val_silent:
        log(f"left out {len(train_silent) + len(val_silent)} clip(s) without an audio track")
    torch.manual_seed(spec.seed)
    device = resolve_device(recipe.device)
    model = AlexNet(train.segments.shape[1], fc_dim=recipe.fc_dim).to(device)
    if spec.init_weights is not None:
        load_weights(model, spec.init_weights, head=False)
    best: dict[str, Any] = {"best_val_acc": -1.0, "best_epoch": 0}
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"train-audio {recipe.name}"
    ) as run:
        mlflow.set_tag("avfusion.kind", "train-audio")
        mlflow.log_params(
            {
                **{k: v for k, v in checkpoint_config(recipe).items()},
                **{f"train.{k}": v for k, v in spec.model_dump(mode="json").items()},
                "epochs": epochs,
                "segment_hop": recipe.hop,
                "train_clips": len(train.clip_labels),
                "train_segments": len(train),
                "val_clips": len(val.clip_labels),
                "manifest": str(Path(manifest).resolve()),
                "checkpoint": str(out.resolve()),
            }
        )
        rows = fit(
            model,
            train,
            val,
            epochs=epochs,
            batch_size=spec.batch_size,
            lr=spec.lr,
            optimizer=spec.optimizer,
            momentum=spec.momentum,
            weight_decay=spec.weight_decay,
            seed=spec.seed,
            progress=progress,
        )
        for row in rows:
            history.append(row)
            epoch = int(row["epoch"])
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            improved = row["val_acc"] > best["best_val_acc"]
            if improved:
                best = {"best_val_acc": row["val_acc"], "best_epoch": epoch}
                save_checkpoint(
                    out,
                    model,
                    config=checkpoint_config(recipe),
                    in_channels=int(train.segments.shape[1]),
                    classes=list(CLASSES),
                    epoch=epoch,
                    val_acc=float(row["val_acc"]),
                    recipe=recipe.name,
                    mlflow_run_id=run.info.run_id,
                )
            log(
                f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.3f} | val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}"
                f"{'  (best, saved)' if improved else ''}"
            )
        mlflow.log_metrics({"best_val_acc": best["best_val_acc"], "best_epoch": best["best_epoch"]})
        mlflow.log_metric("train_seconds", time.perf_counter() - started)
        plot = out.with_suffix(".curves.png")
        _plot_curves(history, plot)
        mlflow.log_artifact(str(plot))
        mlflow.log_text(json.dumps(history, indent=1), "history.json")
    return {**best, "run_id": run.info.run_id, "history": history, "curves": str(plot)}
