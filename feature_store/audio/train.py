"""``train-audio``: train the recipe's AlexNet on a manifest's train split.

    python -m feature_store train-audio --manifest CSV --recipe conf/store/audio-spectrogram.yaml \
        --out checkpoints/audio-spectrogram.pt [--epochs N] [--workers N]

trains with Adam (or SGD) and a cosine learning rate, reports val accuracy per epoch (a clip's
prediction is the mean of its segments' probabilities), logs the run to MLflow through
``feature_store.tracking`` and keeps the best epoch's checkpoint.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avcore.progress import progress as show_progress
from feature_store.audio.checkpoint import checkpoint_config, load_weights, save_checkpoint
from feature_store.audio.cnn import AlexNet
from feature_store.audio.plots import plot_curves
from feature_store.audio.segments import SegmentSet, load_segments
from feature_store.devices import resolve_device
from feature_store.errors import StoreError
from feature_store.manifest import read_manifest
from feature_store.recipe import load_recipe
from feature_store.tracking import start_mlflow, training_run


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
        batches = show_progress(
            steps, desc=f"epoch {epoch}", unit="batch", leave=False, enabled=progress
        )
        for start in batches:
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


def train_audio(
    manifest: str | os.PathLike[str],
    recipe_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    epochs: int | None = None,
    workers: int = 1,
    progress: bool = True,
    log=print,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train the recipe's AlexNet on the train split, keep the best-val-accuracy checkpoint at
    ``out``; returns ``{best_val_acc, best_epoch, run_id, history}``."""
    recipe = load_recipe(recipe_path)
    if recipe.modality != "audio":
        raise StoreError(f"{recipe_path}: train-audio needs an audio recipe, got {recipe.modality}")
    if recipe.encoder is not None:
        raise StoreError(
            f"{recipe_path}: encoder {recipe.encoder.kind} is used as released; train-audio trains "
            "the AlexNet of spectrogram recipes (build this store directly)"
        )
    spec = recipe.train
    epochs = spec.epochs if epochs is None else epochs
    if epochs < 1:
        raise StoreError(f"--epochs must be at least 1, got {epochs}")
    out = Path(out)
    clips = read_manifest(manifest, classes=classes)
    classes = clips.attrs["spec"].classes
    train_clips, val_clips = clips[clips["split"] == "train"], clips[clips["split"] == "val"]
    if train_clips.empty or val_clips.empty:
        raise StoreError(
            f"{manifest}: train-audio needs train and val clips (labels); a fold protocol's "
            "manifest lists every clip as train: write one with the val clips you choose"
        )
    tracking = start_mlflow(spec.experiment)  # a dead server stops us before any work
    train, train_silent = load_segments(train_clips, recipe, workers=workers, desc="train clips")
    val, val_silent = load_segments(val_clips, recipe, workers=workers, desc="val clips")
    if train is None or val is None:
        raise StoreError(f"{manifest}: no train or no val clip has an audio track")
    if train_silent or val_silent:
        log(f"left out {len(train_silent) + len(val_silent)} clip(s) without an audio track")
    torch.manual_seed(spec.seed)
    device = resolve_device(recipe.device)
    model = AlexNet(train.segments.shape[1], num_classes=len(classes), fc_dim=recipe.fc_dim).to(
        device
    )
    if spec.init_weights is not None:
        load_weights(model, spec.init_weights, head=False)
    best: dict[str, Any] = {"best_val_acc": -1.0, "best_epoch": 0}
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    with training_run(tracking, name=f"train-audio {recipe.name}", kind="train-audio") as run:
        run.log_params(
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
            run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
            improved = row["val_acc"] > best["best_val_acc"]
            if improved:
                best = {"best_val_acc": row["val_acc"], "best_epoch": epoch}
                save_checkpoint(
                    out,
                    model,
                    config=checkpoint_config(recipe),
                    in_channels=int(train.segments.shape[1]),
                    classes=list(classes),
                    epoch=epoch,
                    val_acc=float(row["val_acc"]),
                    recipe=recipe.name,
                    mlflow_run_id=run.run_id,
                )
            log(
                f"epoch {epoch}/{epochs}: train loss {row['train_loss']:.4f} acc "
                f"{row['train_acc']:.3f} | val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f}"
                f"{'  (best, saved)' if improved else ''}"
            )
        run.log_metrics({**best, "train_seconds": time.perf_counter() - started})
        plot = out.with_suffix(".curves.png")
        plot_curves(history, plot)
        run.log_file(plot)
        run.log_json(history, "history.json")
    return {**best, "run_id": run.run_id, "history": history, "curves": str(plot)}
