"""``train_trial``: train one configuration on a pair of stores (or one store) and score it.

    from trainables import train_trial, load_trial_config
    result = train_trial(load_trial_config("conf/trial/paper-best.yaml"), feature_store.pair(v, a))
    result.save_scores("scores.npz")

This module is the epoch loop and its setup; the splits as device tensors are
``trainables.tensors``, the optimiser and loss weights ``trainables.optim``, the validation
figures ``trainables.evaluate`` and the returned ``TrialResult`` ``trainables.result``. Ray Tune
runs it through ``search.trial`` (``report`` is called once per epoch); it runs as well on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import feature_store
from trainables.config import TrialConfig, validate_config
from trainables.device import deterministic, resolve_device, sync
from trainables.errors import TrialDataError
from trainables.evaluate import attention_sample, predict_logits, val_figures
from trainables.model import EmotionModel, build_model
from trainables.optim import loss_weights, make_optimizer, make_schedule
from trainables.result import TrialResult, final_metrics, score_arrays, test_figures
from trainables.tensors import SplitTensors, build_split, model_inputs, stores_of

FIT_ON = (("train",), ("train", "val"))


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
    if fit_on not in FIT_ON:
        raise TrialDataError(f"fit_on must be ('train',) or ('train', 'val'), got {fit_on}")
    config = validate_config(config)
    device = resolve_device(config.device)
    stores = stores_of(data, config.modality)
    owner = data if isinstance(data, feature_store.StorePair) else next(iter(stores.values()))
    clip_ids = {split: owner.clip_ids(split) for split in feature_store.SPLITS}
    for split in ("train", "val"):
        if not clip_ids[split]:
            where = ", ".join(str(store.path) for store in stores.values())
            raise TrialDataError(
                f"{where}: no {split} clips, so nothing to {'fit' if split == 'train' else 'score'}"
            )
    classes = next(iter(stores.values())).classes
    num_classes = len(classes)

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
        epoch = _Epoch(model, train, config, generator, num_classes)
        eval_batch = max(config.batch_size, 256)
        labels_val = val.labels.cpu().numpy()
        sync(device)
        timing = {"setup_s": time.perf_counter() - started, "train_s": 0.0, "eval_s": 0.0}

        history: list[dict[str, Any]] = []
        for number in range(1, config.epochs + 1):
            tick = time.perf_counter()
            train_loss = epoch.run()
            tock = time.perf_counter()
            timing["train_s"] += tock - tick
            val_logits = predict_logits(model, val, config, eval_batch)
            metrics = {
                "epoch": number,
                "train_loss": train_loss,
                **val_figures(val_logits, val, labels_val),
            }
            timing["eval_s"] += time.perf_counter() - tock
            history.append(metrics)
            if report is not None:
                report(dict(metrics))

        val_probs = torch.softmax(val_logits, dim=1)
        test_probs = torch.softmax(predict_logits(model, test, config, eval_batch), dim=1)
        attention = attention_sample(model, val, config)

    scores = score_arrays(
        val, val_probs, test, test_probs, classes=classes, train_labels=train.labels
    )
    metrics = {**final_metrics(history, config.epochs), **test_figures(scores, num_classes)}
    return TrialResult(config, history, metrics, scores, attention, timing)


class _Epoch:
    """One pass over the training split in shuffled batches, then one step of the schedule."""

    def __init__(
        self,
        model: EmotionModel,
        train: SplitTensors,
        config: TrialConfig,
        generator: torch.Generator,
        num_classes: int,
    ) -> None:
        self.model, self.train, self.config, self.generator = model, train, config, generator
        self.optimizer = make_optimizer(model, config)
        self.schedule = make_schedule(self.optimizer, config)
        self.loss_weights = loss_weights(train.labels, num_classes, config)

    def run(self) -> float:
        """Train one epoch; the mean training loss over its clips."""
        model, train, config = self.model, self.train, self.config
        device = train.labels.device
        model.train()
        order = torch.randperm(len(train), generator=self.generator, device=device)
        loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per batch
        for start in range(0, len(train), config.batch_size):
            index = order[start : start + config.batch_size]
            logits = model(**model_inputs(train, index, config, self.generator))
            loss = F.cross_entropy(
                logits,
                train.labels[index],
                weight=self.loss_weights,
                label_smoothing=config.label_smoothing,
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * len(index)
        self.schedule.step()
        return float(loss_sum) / len(train)
