"""What every Ray Train worker runs: data-parallel fine-tuning of a backbone with a 7-way head.

The global batch is split evenly over the workers; every worker computes the same epoch plan
(``data.epoch_plan``) and takes its slice of each global batch, so 1 worker and N workers see
the same samples per step and DDP's mean of the per-worker gradients equals the 1-worker
gradient. The backbone's BatchNorm layers stay in eval mode (running statistics frozen, affine
parameters trained) and dropout is off: per-worker batch statistics would make the result
depend on the worker count (and on a GPU batch of a few faces they are noisy), gloo has no
SyncBatchNorm on CPU, and the stores extract features with exactly these frozen statistics.

Rank 0 writes a checkpoint every epoch (model, optimizer, schedule, history) and logs the epoch
to MLflow; after a lost worker Ray Train restarts the group from the latest checkpoint, and
after a lost driver a new ``finetune`` with the same output resumes it the same way.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from feature_store.finetune.data import Augment, batch_input, epoch_plan
from feature_store.image_sets import CLASSES
from feature_store.visual.backbone_base import Preprocessing

STATE_FILE = "state.pt"


class FaceClassifier(nn.Module):
    """``head(backbone(preprocessed x))`` with the recipe's preprocessing (channel order, then
    ``x * scale / std - mean / std``, exactly as ``backbone_base.Preprocessing`` feeds a store's
    crops; ``x`` is already at the input size); ``train()`` leaves the backbone in eval mode."""

    def __init__(self, backbone: nn.Module, dim: int, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(dim, len(CLASSES))
        self.bgr = preprocessing.bgr
        self.register_buffer("weight", preprocessing.weight.detach().float().cpu().clone())
        self.register_buffer("bias", preprocessing.bias.detach().float().cpu().clone())

    def train(self, mode: bool = True) -> FaceClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen BN statistics, no dropout: see the module docstring
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return self.backbone(torch.addcmul(self.bias, x, self.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_optimizer(model: nn.Module, config: dict[str, Any]):
    if config["optimizer"] == "adam":
        step = torch.optim.Adam(
            model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"]
        )
    else:
        step = torch.optim.SGD(
            model.parameters(), lr=config["lr"], momentum=0.9, weight_decay=config["weight_decay"]
        )
    return step, torch.optim.lr_scheduler.CosineAnnealingLR(step, T_max=config["epochs"])


def _all_sum(tensor: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


@torch.no_grad()
def confusion(
    model: nn.Module, crops: np.ndarray, labels: np.ndarray, positions: np.ndarray, **shard: Any
) -> torch.Tensor:
    """Counts ``[true, predicted]`` over ``positions``, each worker taking every W-th one."""
    model.eval()
    device = next(model.parameters()).device
    mine = positions[shard["rank"] :: shard["world"]]
    counts = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.float64)
    for start in range(0, len(mine), shard["batch"]):
        chunk = mine[start : start + shard["batch"]]
        logits = model(batch_input(crops, chunk, shard["input_size"]).to(device))
        predicted = logits.argmax(1).cpu()
        truth = torch.from_numpy(labels[chunk])
        counts.index_put_((truth, predicted), torch.ones(len(chunk), dtype=torch.float64), True)
    return _all_sum(counts.to(device)).cpu()


def _accuracy(counts: torch.Tensor) -> float:
    total = float(counts.sum())
    return float(counts.trace()) / total if total else float("nan")


def train_epoch(
    model: nn.Module,
    step: torch.optim.Optimizer,
    crops: np.ndarray,
    labels: np.ndarray,
    train_at: np.ndarray,
    order: torch.Tensor,
    theta: torch.Tensor | None,
    *,
    rank: int = 0,
    world: int = 1,
    batch: int,
    input_size: int,
    status: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """One epoch of this worker's share of every global batch; returns ``[loss sum, images]``
    of this worker (``rank 0, world 1`` is the whole batch: the bare single-process loop).
    ``status`` gets a progress line at most every 30 seconds."""
    device = next(model.parameters()).device
    local = batch // world
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    model.train()
    total = torch.zeros(2, dtype=torch.float64)
    steps, shown = len(order) // batch, time.monotonic()
    for first in range(0, len(order) - batch + 1, batch):
        mine = order[first + rank * local : first + (rank + 1) * local]
        at = train_at[mine.numpy()]
        x = batch_input(crops, at, input_size, None if theta is None else theta[mine]).to(device)
        y = torch.from_numpy(labels[at]).to(device)
        loss = loss_fn(model(x), y)
        step.zero_grad(set_to_none=True)
        # DDP averages gradients over workers: sum / local batch, averaged, is the global mean.
        (loss / local).backward()
        step.step()
        total += torch.tensor([float(loss.detach()), len(mine)], dtype=torch.float64)
        if status is not None and time.monotonic() - shown > 30:
            shown = time.monotonic()
            status(f"step {first // batch + 1}/{steps}, loss {float(total[0] / total[1]):.4f}")
    return total


def train_loop(config: dict[str, Any]) -> None:
    """The Ray Train worker function (``TorchTrainer(train_loop_per_worker=...)``)."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(config["seed"])
    model: FaceClassifier = config["model"]
    start_epoch, history = 1, []
    step, schedule = make_optimizer(model, config)
    resumed = ray.train.get_checkpoint()
    if resumed is not None:
        with resumed.as_directory() as folder:
            state = torch.load(os.path.join(folder, STATE_FILE), weights_only=True)
        model.load_state_dict(state["model"])
        step.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_epoch, history = state["epoch"] + 1, state["history"]
    model = ray.train.torch.prepare_model(model)
    device = next(model.parameters()).device
    plain = model.module if hasattr(model, "module") else model
    crops = np.load(config["crops"], mmap_mode="r")
    labels = np.asarray(config["labels"])
    train_at, val_at, test_at = (np.asarray(config[key]) for key in ("train", "val", "test"))
    batch, local = config["batch_size"], config["batch_size"] // world
    augment = Augment(**config["augment"]) if config["augment"] is not None else None
    shard = {"rank": rank, "world": world, "batch": local, "input_size": config["input_size"]}
    for epoch in range(start_epoch, config["epochs"] + 1):
        started = time.perf_counter()
        order, theta = epoch_plan(
            labels[train_at], epoch, config["seed"], balanced=config["balanced"], augment=augment
        )
        total = train_epoch(
            model, step, crops, labels, train_at, order, theta,
            rank=rank, world=world, batch=batch, input_size=config["input_size"],
            status=(lambda line, e=epoch: print(f"epoch {e}: {line}", flush=True)) if rank == 0 else None,
        )  # fmt: skip
        schedule.step()
        train_seconds = time.perf_counter() - started
        total = _all_sum(total.to(device)).cpu()
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": float(total[0] / total[1]),
            "lr": schedule.get_last_lr()[0],
        }
        matrices = {}
        for split, positions in (("val", val_at), ("test", test_at)):
            if len(positions):
                matrices[split] = confusion(model, crops, labels, positions, **shard)
                row[f"{split}_acc"] = _accuracy(matrices[split])
        row["epoch_seconds"] = time.perf_counter() - started
        # Training steps only (all workers together): the figure bench_finetune compares.
        row["images_per_second"] = float(total[1]) / train_seconds
        row["torch_threads"] = float(torch.get_num_threads())
        row["resumed"] = resumed is not None and epoch == start_epoch
        history.append(row)
        metrics = {key: value for key, value in row.items() if isinstance(value, float)}
        if rank == 0:
            print(epoch_line(row, config["epochs"]), flush=True)
            _log_epoch(config, row, matrices)
            with tempfile.TemporaryDirectory() as folder:
                torch.save(
                    {
                        "model": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
                        "optimizer": step.state_dict(),
                        "schedule": schedule.state_dict(),
                        "epoch": epoch,
                        "history": history,
                        "confusion": {k: v.tolist() for k, v in matrices.items()},
                    },
                    os.path.join(folder, STATE_FILE),
                )
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f}"]
    parts += [f"{k.split('_')[0]} acc {row[k]:.3f}" for k in ("val_acc", "test_acc") if k in row]
    parts.append(f"{row['images_per_second']:.1f} images/s")
    return " | ".join(parts) + ("  (resumed from a checkpoint)" if row.get("resumed") else "")


def _log_epoch(config: dict[str, Any], row: dict[str, Any], matrices: dict) -> None:
    """The epoch's metrics and confusion matrices into the run the driver opened."""
    if config.get("mlflow_run_id") is None:
        return
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=config["mlflow_uri"])
    run_id, epoch = config["mlflow_run_id"], int(row["epoch"])
    for key, value in row.items():
        if isinstance(value, float):
            client.log_metric(run_id, key, value, step=epoch)
    for split, counts in matrices.items():
        client.log_dict(
            run_id,
            {"classes": list(CLASSES), "rows_true_columns_predicted": counts.long().tolist()},
            f"confusion/{split}_epoch_{epoch:03d}.json",
        )
