"""The ``finetune`` driver: image set -> face-crop cache -> Ray Train ``TorchTrainer`` -> the
fine-tuned backbone's checkpoint in the backbone's own layout.

The output file is ``{"state_dict": backbone weights (the names the backbone's loader reads),
"head": the 7-way layer, "avfusion": preprocessing, classes, pretraining, test accuracy, ...}``:
``weights.read_checkpoint`` unwraps ``state_dict``, so a recipe naming the file loads it as it
is. Ray Train keeps its per-epoch checkpoints under ``OUT.ray/`` (``--storage``); running the
same command again after a lost driver resumes from the latest one with the same MLflow run.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from avcore.tracking import resolve_uri
from feature_store.errors import StoreError
from feature_store.finetune.data import Augment, prepare_crops
from feature_store.finetune.loop import STATE_FILE, FaceClassifier, epoch_line, train_loop
from feature_store.image_sets import CLASSES, describe, read_image_set
from feature_store.recipe import load_recipe
from feature_store.tracking import start_mlflow
from feature_store.visual.backbone_base import TorchBackbone
from feature_store.visual.backbones import make_backbone

CHECKPOINT_FORMAT = "avfusion-finetuned-backbone"
EXPERIMENT = "finetune"
DEFAULT_AUGMENT = Augment()
_STATE = "finetune.json"


def finetune(
    images: str | os.PathLike[str],
    recipe_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    epochs: int = 10,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    batch_size: int = 64,
    lr: float = 0.01,
    optimizer: str = "sgd",
    weight_decay: float = 5e-4,
    balanced: bool = False,
    augment: Augment | None = DEFAULT_AUGMENT,
    seed: int = 0,
    val_fraction: float = 0.1,
    storage: str | os.PathLike[str] | None = None,
    cache: str | os.PathLike[str] | None = None,
    crop_workers: int = 1,
    max_failures: int = 3,
    experiment: str = EXPERIMENT,
    force: bool = False,
    progress: bool = True,
    log=print,
) -> dict[str, Any]:
    """Fine-tune the recipe's first backbone on ``images``; returns the output's metadata."""
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    recipe = load_recipe(recipe_path)
    if recipe.modality != "visual":
        raise StoreError(f"{recipe_path}: finetune needs a visual recipe, got {recipe.modality}")
    if epochs < 1 or workers < 1 or batch_size < 1 or gpus_per_worker < 0:
        raise StoreError(
            "--epochs, --workers and --batch-size must be at least 1, --gpus-per-worker at least 0"
        )
    if batch_size % workers:
        raise StoreError(f"--batch-size {batch_size} must split evenly over {workers} workers")
    spec = recipe.backbones[0]
    backbone = make_backbone(spec, "cpu")
    if not isinstance(backbone, TorchBackbone):
        raise StoreError(
            f"{recipe_path}: backbone {spec.name!r} is not a PyTorch network and cannot be "
            "fine-tuned; use a recipe with ir50, resnet18 or vggface"
        )
    out = Path(out).expanduser().resolve()
    storage = Path(storage or out.with_name(out.name + ".ray")).expanduser().resolve()
    found = read_image_set(images, val_fraction=val_fraction)
    log(describe(found))
    counts = found.counts()
    if counts["train"] < batch_size:
        raise StoreError(f"{images}: {counts['train']} train images, fewer than one batch")
    crops = prepare_crops(
        found, recipe.faces, Path(cache or storage / "crops"), workers=crop_workers,
        progress=progress,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = FaceClassifier(backbone.module, backbone.dim, backbone.preprocess)
    settings = {
        "images": str(Path(images).resolve()), "recipe": str(Path(recipe_path).resolve()),
        "backbone": spec.name, "start_checkpoint": str(spec.checkpoint), "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay,
        "balanced": balanced, "augment": None if augment is None else augment.__dict__,
        "seed": seed, "val_fraction": val_fraction, "faces": recipe.faces.model_dump(mode="json"),
    }  # fmt: skip
    if not ray.is_initialized():
        ray.init()  # no address: a submitted job joins its cluster, otherwise a local one starts
    _check_resources(ray.cluster_resources(), workers, gpus_per_worker)
    mlflow, experiment_id = start_mlflow(experiment)
    run_id = _run_id(storage, settings, force, lambda: _open_run(mlflow, experiment_id, settings))
    config = {
        **settings, "model": model, "input_size": backbone.input_size, "crops": str(crops.crops),
        "labels": crops.labels.tolist(), "mlflow_uri": resolve_uri(), "mlflow_run_id": run_id,
        **{split: crops.indices(split).tolist() for split in ("train", "val", "test")},
    }  # fmt: skip
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers,
            use_gpu=gpus_per_worker > 0,
            resources_per_worker={
                "CPU": 1,
                **({"GPU": gpus_per_worker} if gpus_per_worker else {}),
            },
        ),
        run_config=ray.train.RunConfig(
            name="run",
            storage_path=str(storage),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as exc:
        mlflow.tracking.MlflowClient().set_terminated(run_id, "FAILED")
        raise StoreError(f"finetune failed on the Ray workers: {_first_line(exc)}") from None
    with result.checkpoint.as_directory() as folder:
        state = torch.load(os.path.join(folder, STATE_FILE), weights_only=True)
    meta = _write_output(out, state, backbone, spec, found, settings, run_id)
    client = mlflow.tracking.MlflowClient()
    client.log_dict(run_id, meta, "checkpoint.json")
    client.set_terminated(run_id)
    for row in state["history"]:
        log(epoch_line(row, epochs))
    return {**meta, "history": state["history"], "run_id": run_id}


def _check_resources(resources: dict[str, float], workers: int, gpus: float) -> None:
    """Refuse at once what the cluster cannot hold (Ray Train would wait for it forever)."""
    wanted = {"CPU": float(workers), "GPU": workers * gpus}
    short = [f"{need:g} {kind} (it has {resources.get(kind, 0):g})" for kind, need in wanted.items()
             if need > resources.get(kind, 0)]  # fmt: skip
    if short:
        raise StoreError(
            f"{workers} worker(s) need {' and '.join(short)} on the Ray cluster; "
            "lower --workers or --gpus-per-worker"
        )


def _open_run(mlflow, experiment_id: str, settings: dict[str, Any]) -> str:
    client = mlflow.tracking.MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"finetune {settings['backbone']} {Path(settings['images']).name}",
        tags={"avfusion.kind": "finetune"},
    )
    for key, value in settings.items():
        client.log_param(
            run.info.run_id, key, json.dumps(value) if isinstance(value, dict) else value
        )
    return run.info.run_id


def _run_id(storage: Path, settings: dict[str, Any], force: bool, open_run) -> str:
    """The MLflow run of this output: a new one, or (same settings) the interrupted one."""
    state = storage / _STATE
    if state.is_file():
        previous = json.loads(state.read_text())
        if force:
            # Only what finetune wrote: its state file and Ray Train's run folder.
            shutil.rmtree(storage / "run", ignore_errors=True)
            state.unlink()
        elif previous["settings"] != settings:
            changed = sorted(k for k in settings if previous["settings"].get(k) != settings[k])
            raise StoreError(
                f"{storage}: holds a fine-tuning run with other settings ({', '.join(changed)}); "
                "pass --force to start over"
            )
        else:
            return previous["mlflow_run_id"]
    storage.mkdir(parents=True, exist_ok=True)
    run_id = open_run()
    state.write_text(json.dumps({"settings": settings, "mlflow_run_id": run_id}, indent=1))
    return run_id


def _write_output(out, state, backbone, spec, found, settings, run_id) -> dict[str, Any]:
    """The backbone's weights under its own names, the head and the metadata, atomically."""
    weights = {
        k[len("backbone.") :]: v for k, v in state["model"].items() if k.startswith("backbone.")
    }
    last = state["history"][-1]
    meta = {
        "format": CHECKPOINT_FORMAT,
        "backbone": spec.name,
        # what a recipe's `preprocess:` must say to feed these weights as they were trained
        "preprocessing": {
            **backbone.preprocess.describe(),
            "faces": settings["faces"],
            "image_faces": found.faces,
        },  # fmt: skip
        "classes": list(CLASSES),
        "pretrain": f"{spec.pretrain or spec.checkpoint} + {found.layout}",
        "image_set": {
            "layout": found.layout,
            "path": str(found.source),
            **found.counts(),
            "dropped": found.dropped,
        },  # fmt: skip
        "epochs": int(last["epoch"]),
        "val_acc": last.get("val_acc"),
        "test_acc": last.get("test_acc"),
        "test_confusion": state["confusion"].get("test"),
        "mlflow_run_id": run_id,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    head = {k[len("head.") :]: v for k, v in state["model"].items() if k.startswith("head.")}
    torch.save({"state_dict": weights, "head": head, "avfusion": meta}, tmp)
    os.replace(tmp, out)
    return meta


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.splitlines()[-1:]) if text else type(exc).__name__
