"""Fine-tuning throughput: Ray Train against a bare single-process loop over the same model, data
and training step (``finetune.loop.train_epoch``), in the same run.

    .venv/bin/python benchmarks/bench_finetune.py                      # CPU: bare, 1 and 2 workers
    python3 benchmarks/bench_finetune.py --device cuda --backbone ir50  # one GPU (see --help)

Prints training images/s (augmentation, forward, backward, step; no evaluation) of

- the bare loop (one process; on CPU one thread, as a Ray worker with one CPU gets),
- Ray Train with 1 worker, and its ratio to the bare loop (the cost of Ray Train and DDP),
- Ray Train with 2 CPU workers: images/s in all and per worker, and the scaling over 1 worker,
- with ``--device cuda``: the bare loop and (when Ray is installed) 1 Ray Train worker on one
  GPU, and the time an AffectNet-sized epoch (287,651 images) would take at that rate.

The face set is made from scikit-image's astronaut (``feature_store.synthetic_faces``) and the
backbone has random weights: throughput does not depend on the weights. Without Ray installed
(a bare GPU image) the Ray rows are skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feature_store.finetune.data import Augment, epoch_plan, prepare_crops  # noqa: E402
from feature_store.finetune.loop import FaceClassifier, make_optimizer, train_epoch  # noqa: E402
from feature_store.image_sets import read_image_set  # noqa: E402
from feature_store.recipe import load_recipe  # noqa: E402
from feature_store.synthetic_faces import write_rafdb  # noqa: E402
from feature_store.visual.backbones import make_backbone  # noqa: E402

AFFECTNET_TRAIN_IMAGES = 287_651
CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def bare_images_per_second(recipe, cached, *, device: str, batch: int, epochs: int) -> float:
    """The bare loop: ``epochs`` epochs of ``train_epoch`` in this process, the first a warm-up."""
    backbone = make_backbone(recipe.backbones[0], "cpu")
    model = FaceClassifier(backbone.module, backbone.dim, backbone.preprocess).to(device)
    step, _ = make_optimizer(
        model, {"optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4, "epochs": epochs}
    )
    crops = np.load(cached.crops, mmap_mode="r")
    train_at = cached.indices("train")
    rates = []
    for epoch in range(1, epochs + 1):
        order, theta = epoch_plan(
            cached.labels[train_at], epoch, 0, balanced=False, augment=Augment()
        )
        _sync(device)
        started = time.perf_counter()
        total = train_epoch(
            model, step, crops, cached.labels, train_at, order, theta,
            batch=batch, input_size=backbone.input_size,
        )  # fmt: skip
        _sync(device)
        rates.append(float(total[1]) / (time.perf_counter() - started))
    return float(np.mean(rates[1:])) if len(rates) > 1 else rates[0]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def ray_images_per_second(images, recipe_path, out, *, workers, gpus, batch, epochs) -> float:
    from feature_store.finetune import finetune

    meta = finetune(
        images, recipe_path, out, epochs=epochs, workers=workers, gpus_per_worker=gpus,
        batch_size=batch, val_fraction=0, progress=False, log=lambda _: None,
    )  # fmt: skip
    rates = [row["images_per_second"] for row in meta["history"]]
    print(
        f"  (Ray Train workers ran torch with {int(meta['history'][-1]['torch_threads'])} thread(s))"
    )
    return float(np.mean(rates[1:])) if len(rates) > 1 else rates[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--backbone", default="resnet18", help="resnet18, ir50, vggface, ...")
    parser.add_argument(
        "--images", type=int, default=None, help="train images (default: 64 CPU, 2048 GPU)"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="global batch (default: 16 CPU, 256 GPU)"
    )
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs per measurement; the first warms up"
    )
    args = parser.parse_args()
    gpu = args.device == "cuda"
    if gpu and not torch.cuda.is_available():
        sys.exit("bench_finetune: --device cuda but torch sees no GPU")
    images = args.images or (2048 if gpu else 64)
    batch = args.batch or (256 if gpu else 16)
    has_ray = all(importlib.util.find_spec(name) for name in ("ray", "mlflow"))
    with tempfile.TemporaryDirectory(prefix="bench_finetune_") as folder:
        root = Path(folder)
        os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        per_class = math.ceil(images / len(CLASSES))
        face_set = write_rafdb(root / "set", CLASSES, train_per_class=per_class, test_per_class=0)
        # Crops of 224 px as the store recipes cut them; the backbone resizes to its input.
        recipe_path = _recipe(root / "bench.yaml", args.backbone, 224)
        recipe = load_recipe(recipe_path)
        backbone = make_backbone(recipe.backbones[0], "cpu")
        cached = prepare_crops(
            read_image_set(face_set, val_fraction=0), recipe.faces, root / "crops", progress=False
        )
        print(
            f"bench_finetune: {args.backbone} ({backbone.input_size} px), {len(cached.labels)} "
            f"train faces, global batch {batch}, {args.epochs} epochs per measurement "
            f"(the first a warm-up), device {args.device}; load average {os.getloadavg()[0]:.1f}"
        )
        if not gpu:
            torch.set_num_threads(1)  # what a Ray worker with one CPU runs with
        device = "cuda" if gpu else "cpu"
        bare = bare_images_per_second(
            recipe, cached, device=device, batch=batch, epochs=args.epochs
        )
        print(f"bare loop, 1 process{'' if gpu else ' (1 thread)'}: {bare:8.1f} images/s")
        if gpu:
            print(
                f"AffectNet-sized epoch ({AFFECTNET_TRAIN_IMAGES:,} images) on one GPU at the bare "
                f"rate: {AFFECTNET_TRAIN_IMAGES / bare / 60:.1f} min"
            )
        if not has_ray:
            print("Ray Train rows skipped: ray or mlflow is not installed here")
            return
        import ray

        ray.init(
            num_cpus=max(3, os.cpu_count() or 1), num_gpus=1 if gpu else 0,
            include_dashboard=False, log_to_driver=False, _temp_dir=f"/tmp/raybf{os.getpid()}",
        )  # fmt: skip
        try:
            run = dict(batch=batch, epochs=args.epochs, gpus=1.0 if gpu else 0.0)
            one = ray_images_per_second(face_set, recipe_path, root / "one.pth", workers=1, **run)
            print(f"Ray Train, 1 worker:  {one:8.1f} images/s")
            if gpu:
                print(
                    f"{one / bare:.2f}x the bare loop; AffectNet-sized epoch on one GPU through Ray Train: "
                    f"{AFFECTNET_TRAIN_IMAGES / one / 60:.1f} min"
                )
                return
            two = ray_images_per_second(face_set, recipe_path, root / "two.pth", workers=2, **run)
            # Measured again last: on a shared machine the load drifts; the ratios use the mean.
            again = bare_images_per_second(
                recipe, cached, device=device, batch=batch, epochs=args.epochs
            )
            print(f"bare loop again:      {again:8.1f} images/s (the ratios use the mean of both)")
            bare = (bare + again) / 2
            print(f"Ray Train, 1 worker:  {one / bare:.2f}x the bare loop")
            print(
                f"Ray Train, 2 workers: {two:8.1f} images/s in all, {two / 2:.1f} per worker "
                f"({two / one:.2f}x 1 worker; ideal 2x on 2 idle cores)"
            )
        finally:
            ray.shutdown()


def _recipe(path: Path, backbone: str, size: int) -> Path:
    path.write_text(
        f"modality: visual\ndevice: cpu\nbackbones:\n  - name: {backbone}\n"
        f"    allow_random_weights: true\nfaces: {{size: {size}}}\n"
    )
    return path


if __name__ == "__main__":
    main()
