"""The trial function: train one configuration on a pair of stores (or one store) and score it.

    from trainables import train_trial, load_trial_config
    result = train_trial(load_trial_config("conf/trial/paper-best.yaml"), feature_store.pair(v, a))
    result.save_scores("scores.npz")

Usable by Ray Tune (``report`` is called once per epoch) and on its own. All clips of every split
are padded once per trial and moved to the device (the GPU when there is one); batches are then
indexed out of those tensors, so there is no per-batch Python collation. With
``frame_sampling=segments`` each training clip contributes one random frame from each of K equal
segments of its real frames (the Frame Attention Network scheme), sampled on the device.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor

import feature_store
from avcore.metrics import uar
from avcore.results import write_scores
from feature_store.devices import resolve_device as feature_store_device
from feature_store.errors import StoreError
from trainables.config import TrialConfig, validate_config
from trainables.errors import ConfigError, TrialDataError
from trainables.model import EmotionModel, build_model

MODALITIES: tuple[str, ...] = ("visual", "audio")
ATTENTION_CLIPS = 4  # validation clips whose attention weights a result keeps for plotting


@dataclass
class TrialResult:
    """What one trial produced: its per-epoch history, final metrics and the scores.npz arrays."""

    config: TrialConfig
    history: list[dict[str, Any]]
    metrics: dict[str, Any]
    scores: dict[str, np.ndarray]
    attention: dict[str, Any]
    timing: dict[str, float] = field(default_factory=dict)

    def save_scores(self, path: str | os.PathLike[str]) -> Path:
        """Write the DESIGN.md ``scores.npz`` (readable with ``allow_pickle=False``)."""
        return write_scores(path, self.scores)

    def save_config(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.config.model_dump(), sort_keys=False))
        return path


@dataclass
class SplitTensors:
    """One split on the device: per-modality padded frames and masks, labels, clip ids."""

    clip_ids: list[str]
    labels: Tensor  # (N,) int64, -1 where unknown (test)
    x: dict[str, Tensor]  # modality -> (N, T, D) float32
    mask: dict[str, Tensor]  # modality -> (N, T) bool
    lengths: dict[str, Tensor]  # modality -> (N,) int64

    def __len__(self) -> int:
        return len(self.clip_ids)


def resolve_device(name: str) -> torch.device:
    try:
        return feature_store_device(name)
    except StoreError as exc:
        raise ConfigError(f"device: {exc}") from None


def stores_of(
    data: feature_store.StorePair | feature_store.Store,
) -> dict[str, feature_store.Store]:
    """modality -> store, for a pair or a single store."""
    if isinstance(data, feature_store.StorePair):
        return {"visual": data.visual, "audio": data.audio}
    if isinstance(data, feature_store.Store):
        return {data.modality: data}
    raise TrialDataError(f"train_trial needs a StorePair or a Store, got {type(data).__name__}")


def build_split(
    stores: Mapping[str, feature_store.Store],
    clip_ids: list[str],
    labels: np.ndarray,
    device: torch.device,
) -> SplitTensors:
    """Pad every clip of a split in one vectorised pass per modality and move it to ``device``."""
    x, mask, lengths = {}, {}, {}
    for modality, store in stores.items():
        padded = store.padded(clip_ids)
        _check_finite(store, clip_ids, padded.x)
        x[modality] = torch.from_numpy(padded.x).to(device)
        mask[modality] = torch.from_numpy(padded.mask).to(device)
        lengths[modality] = torch.from_numpy(padded.lengths.astype(np.int64)).to(device)
    return SplitTensors(clip_ids, torch.from_numpy(labels).to(device), x, mask, lengths)


def sample_segments(
    x: Tensor, lengths: Tensor, segments: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One random real frame from each of ``segments`` equal parts of every clip.

    x: (B, T, D), lengths: (B,) -> frames (B, K, D) and mask (B, K). A clip shorter than K repeats
    frames (each segment still gets one); a clip with no frames gets an all-False mask.
    """
    batch = x.shape[0]
    part = torch.arange(segments, device=x.device)[None, :]  # (1, K)
    length = lengths[:, None]  # (B, 1)
    start = part * length // segments  # (B, K) first frame of each segment
    end = torch.maximum((part + 1) * length // segments, start + 1)  # at least one frame wide
    offset = torch.rand(batch, segments, generator=generator, device=x.device)
    index = start + (offset * (end - start)).long()
    index = torch.minimum(index, (length - 1).clamp(min=0))  # empty clips: index 0, masked out
    frames = x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))
    return frames, (length > 0).expand(batch, segments)


def model_inputs(
    split: SplitTensors,
    index: Tensor,
    config: TrialConfig,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Keyword arguments of ``EmotionModel.forward`` for the clips at ``index``."""
    inputs: dict[str, Tensor] = {}
    for modality in split.x:
        x, mask = split.x[modality][index], split.mask[modality][index]
        if generator is not None and config.frame_sampling == "segments":
            x, mask = sample_segments(
                x, split.lengths[modality][index], config.frame_segments, generator
            )
        inputs[modality] = x
        inputs[f"{modality}_mask"] = mask
    return inputs


def make_optimizer(model: torch.nn.Module, config: TrialConfig) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrialConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=max(1, config.epochs // 3), gamma=0.1
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Inverse class frequency, ``N / (C · n_c)``; a class absent from train gets weight 0."""
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float32)
    weights = len(labels) / (num_classes * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


@torch.no_grad()
def predict_logits(
    model: EmotionModel, split: SplitTensors, config: TrialConfig, batch: int
) -> Tensor:
    """Logits ``[N, classes]`` of a whole split over all frames, in eval mode."""
    model.eval()
    device = split.labels.device
    chunks = [
        model(
            **model_inputs(
                split, torch.arange(start, min(start + batch, len(split)), device=device), config
            )
        )
        for start in range(0, len(split), batch)
    ]
    if not chunks:
        return torch.zeros(0, model.classifier.out_features, device=device)
    return torch.cat(chunks)


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the trial's duration, restoring the caller's setting afterwards."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cuda":
        # Only effective before cuBLAS starts; a later trial in the same process inherits it.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _check_finite(store: feature_store.Store, clip_ids: list[str], x: np.ndarray) -> None:
    """NaN/Inf would train to NaN scores silently: refuse them, naming the first such clip."""
    if x.dtype.kind != "f":
        return
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        clip = clip_ids[int(np.argmin(finite))]
        raise TrialDataError(
            f"{store.path}: clip {clip!r} has NaN or Inf features; refusing to train "
            f"(check with `python -m feature_store validate --deep {store.path}`)"
        )


def train_trial(
    config: TrialConfig | Mapping[str, Any],
    data: feature_store.StorePair | feature_store.Store,
    report: Callable[[dict[str, Any]], None] | None = None,
    *,
    fit_on: tuple[str, ...] = ("train",),
) -> TrialResult:
    """Train one configuration; ``report`` gets ``epoch, train_loss, val_loss, val_acc, val_uar``
    after every epoch. Returns the history, final metrics, val/test probabilities and a few
    validation clips' attention weights. ``fit_on=("train", "val")`` refits on both splits (the
    paper's submissions 1-3); its val figures are then in-sample."""
    if fit_on not in (("train",), ("train", "val")):
        raise TrialDataError(f"fit_on must be ('train',) or ('train', 'val'), got {fit_on}")
    config = validate_config(config)
    device = resolve_device(config.device)
    stores = stores_of(data)
    num_classes = len(next(iter(stores.values())).classes)
    owner = data if isinstance(data, feature_store.StorePair) else next(iter(stores.values()))
    clip_ids = {split: owner.clip_ids(split) for split in feature_store.SPLITS}
    for split in ("train", "val"):
        if not clip_ids[split]:
            where = ", ".join(str(store.path) for store in stores.values())
            raise TrialDataError(
                f"{where}: no {split} clips, so nothing to {'fit' if split == 'train' else 'score'}"
            )

    started = time.perf_counter()
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        deterministic(device),
    ):
        torch.manual_seed(config.seed)
        generator = torch.Generator(device=device).manual_seed(config.seed)
        splits = {
            split: build_split(stores, ids, owner.labels(split), device)
            for split, ids in clip_ids.items()
        }
        train, val, test = splits["train"], splits["val"], splits["test"]
        if fit_on == ("train", "val"):
            train = build_split(
                stores,
                clip_ids["train"] + clip_ids["val"],
                np.concatenate([owner.labels("train"), owner.labels("val")]),
                device,
            )
        model = build_model(
            config,
            visual_dim=stores["visual"].dim if "visual" in stores else None,
            audio_dim=stores["audio"].dim if "audio" in stores else None,
            num_classes=num_classes,
        ).to(device)
        optimizer = make_optimizer(model, config)
        schedule = make_schedule(optimizer, config)
        loss_weights = class_weights(train.labels, num_classes) if config.class_balanced else None
        eval_batch = max(config.batch_size, 256)
        labels_val = val.labels.cpu().numpy()
        _sync(device)
        timing = {"setup_s": time.perf_counter() - started, "train_s": 0.0, "eval_s": 0.0}

        history: list[dict[str, Any]] = []
        for epoch in range(1, config.epochs + 1):
            tick = time.perf_counter()
            model.train()
            order = torch.randperm(len(train), generator=generator, device=device)
            loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per batch
            for start in range(0, len(train), config.batch_size):
                index = order[start : start + config.batch_size]
                logits = model(**model_inputs(train, index, config, generator))
                loss = F.cross_entropy(
                    logits,
                    train.labels[index],
                    weight=loss_weights,
                    label_smoothing=config.label_smoothing,
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach() * len(index)
            schedule.step()
            train_loss = float(loss_sum) / len(train)
            tock = time.perf_counter()
            timing["train_s"] += tock - tick

            val_logits = predict_logits(model, val, config, eval_batch)
            # Plain cross-entropy (no smoothing, no class weights), so val_loss compares across trials.
            val_loss = float(F.cross_entropy(val_logits, val.labels))
            predicted = val_logits.argmax(dim=1).cpu().numpy()
            metrics = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_acc": float((predicted == labels_val).mean()),
                "val_uar": uar(predicted, labels_val, num_classes),
            }
            timing["eval_s"] += time.perf_counter() - tock
            history.append(metrics)
            if report is not None:
                report(dict(metrics))

        val_probs = torch.softmax(val_logits, dim=1)
        test_probs = torch.softmax(predict_logits(model, test, config, eval_batch), dim=1)
        attention = attention_sample(model, val, config)

    final = {key: value for key, value in history[-1].items() if key != "epoch"}
    final["epochs"] = config.epochs
    scores = {
        "clip_ids_val": np.array(val.clip_ids, dtype=str),
        "val": val_probs.cpu().numpy().astype(np.float32),
        "labels_val": labels_val.astype(np.int64),
        "clip_ids_test": np.array(test.clip_ids, dtype=str),
        "test": test_probs.cpu().numpy().astype(np.float32),
    }
    return TrialResult(config, history, final, scores, attention, timing)


@torch.no_grad()
def attention_sample(model: EmotionModel, val: SplitTensors, config: TrialConfig) -> dict[str, Any]:
    """Per-frame attention weights of the first few validation clips (trimmed to their lengths),
    with the clips' true and predicted classes and each modality's attention kind."""
    model.eval()
    count = min(ATTENTION_CLIPS, len(val))
    index = torch.arange(count, device=val.labels.device)
    predicted = model(**model_inputs(val, index, config)).argmax(dim=1)
    sample: dict[str, Any] = {
        "clip_ids": val.clip_ids[:count],
        "labels": val.labels[:count].tolist(),
        "predicted": predicted.tolist(),
        "kinds": {"visual": config.visual_attention, "audio": config.audio_attention},
        "visual": [],
        "audio": [],
    }
    for modality, pool in (("visual", model.visual_pool), ("audio", model.audio_pool)):
        if pool is None or pool.weights is None:
            continue
        lengths = val.lengths[modality][:count].tolist()
        weights = pool.weights.cpu().numpy()
        sample[modality] = [weights[i, : lengths[i]].copy() for i in range(count)]
    return sample
