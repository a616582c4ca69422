"""The paper's Table 1 measurement: how well a backbone's features separate emotions when only a
softmax classifier is trained on them (the "probe"), side by side for several pretrainings.

For each recipe (one pretraining each):

- ``finetuned test``: the test-split accuracy ``finetune`` measured for the checkpoint the
  recipe names (its head on its image set), read from the checkpoint's ``avfusion`` record;
- ``image probe``: with ``--images``, a softmax classifier on the backbone's features of the
  set's train faces, scored on its test faces (crops cut as ``finetune`` cuts them);
- ``clips probe``: with ``--clips``, the store the recipe builds from a clips manifest (under
  ``--stores``; reused when present), one mean feature per clip, a softmax classifier on the
  train clips scored on the val clips (the paper's Table 1 protocol on AFEW).

    python -m feature_store probe --recipe conf/store/ir50-rafdb-basic.yaml \
        --recipe conf/store/ir50-affectnet-basic.yaml --clips data/afew/manifest.csv \
        --stores stores/table1 [--images rafdb/]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from feature_store.errors import StoreError
from feature_store.recipe import load_recipe
from feature_store.visual.backbones import Backbone, make_backbone
from feature_store.weights import read_checkpoint


def softmax_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    l2: float = 1e-3,
    steps: int = 200,
    num_classes: int | None = None,
) -> float:
    """Accuracy on ``eval`` of a multinomial logistic regression (standardised features, L2,
    full-batch L-BFGS from zero weights: deterministic) fitted on ``train``; ``num_classes``
    defaults to the largest label seen plus one."""
    if num_classes is None:
        num_classes = int(max(np.max(train_y), np.max(eval_y))) + 1
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std).double()
    y = torch.from_numpy(np.asarray(train_y)).long()
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    solver = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        solver.zero_grad()
        value = torch.nn.functional.cross_entropy(x @ weight + bias, y) + l2 * weight.square().sum()
        value.backward()
        return value

    solver.step(loss)
    with torch.no_grad():
        scores = torch.from_numpy((eval_x - mean) / std).double() @ weight + bias
    return float((scores.argmax(1).numpy() == np.asarray(eval_y)).mean())


@torch.inference_mode()
def crop_features(backbone: Backbone, crops: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """``backbone`` over uint8 crops ``[N, S, S, 3]`` as a store build runs it -> ``[N, dim]``."""
    out = []
    for start in range(0, len(crops), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size]))
        out.append(backbone(chunk.permute(0, 3, 1, 2).float() / 255).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def image_probe(recipe_path: str | os.PathLike[str], images: str | os.PathLike[str], *,
                cache: str | os.PathLike[str], val_fraction: float = 0.1) -> float:  # fmt: skip
    """Probe accuracy on the test faces of an image set, trained on its train faces."""
    from feature_store.finetune.data import prepare_crops
    from feature_store.image_sets import CLASSES, read_image_set

    recipe = load_recipe(recipe_path)
    found = read_image_set(images, val_fraction=val_fraction)
    cached = prepare_crops(found, recipe.faces, Path(cache), progress=False)
    crops = np.load(cached.crops, mmap_mode="r")
    backbone = make_backbone(recipe.backbones[0], "cpu")
    train, test = cached.indices("train"), cached.indices("test")
    if not len(test):
        raise StoreError(f"{images}: no test images to probe")
    return softmax_probe(
        crop_features(backbone, crops[train]),
        cached.labels[train],
        crop_features(backbone, crops[test]),
        cached.labels[test],
        num_classes=len(CLASSES),
    )


def clips_probe(recipe_path: str | os.PathLike[str], clips: str | os.PathLike[str], *,
                stores: str | os.PathLike[str], workers: int = 1) -> float:  # fmt: skip
    """Probe accuracy on the val clips of the store the recipe builds (mean feature per clip)."""
    from feature_store.build import build_store
    from feature_store.store import open_store

    out = Path(stores) / Path(recipe_path).stem
    store = open_store(out) if (out / "store.json").exists() else None
    if store is None:
        store = build_store(clips, recipe_path, out, workers=workers)

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        ids = store.clip_ids(name)
        if not ids:
            raise StoreError(f"{out}: no {name} clips to probe")
        return np.stack([store.features(c).mean(0) for c in ids]), store.labels(name)

    return softmax_probe(*split("train"), *split("val"), num_classes=len(store.classes))


def finetuned_record(recipe_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``avfusion`` record ``finetune`` wrote into the recipe's checkpoint (empty if none)."""
    spec = load_recipe(recipe_path).backbones[0]
    if spec.checkpoint is None:
        return {}
    read_checkpoint(spec.checkpoint)  # a missing or unreadable file is one clear line
    loaded = torch.load(spec.checkpoint, map_location="cpu", weights_only=True)
    record = loaded.get("avfusion") if isinstance(loaded, dict) else None
    return record if isinstance(record, dict) else {}


def table(recipes: list[str], *, images: str | None = None, clips: str | None = None,
          stores: str | None = None, cache: str | None = None, workers: int = 1) -> list[dict]:  # fmt: skip
    """One row per recipe: its pretraining and the accuracies that apply (see module doc)."""
    rows = []
    for recipe_path in recipes:
        recipe = load_recipe(recipe_path)
        record = finetuned_record(recipe_path)
        row: dict[str, Any] = {
            "recipe": recipe.name,
            "pretrain": recipe.backbones[0].pretrain or record.get("pretrain") or "",
            "finetuned_test": record.get("test_acc"),
        }
        if images is not None:
            row["image_probe"] = image_probe(recipe_path, images, cache=cache or "data/probe-cache")
        if clips is not None:
            row["clips_probe"] = clips_probe(
                recipe_path, clips, stores=stores or "data/stores/probe", workers=workers
            )
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    columns = [c for c in ("recipe", "pretrain", "finetuned_test", "image_probe", "clips_probe")
               if any(c in row for row in rows)]  # fmt: skip
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
