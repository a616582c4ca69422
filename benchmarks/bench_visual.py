"""Visual pipeline throughput: end-to-end frames/s and per stage, against the backbone alone.

A clip of real video (scikit-image's astronaut, moving across a 640×480 frame) goes through the
recipe's pipeline: decode, detect, align (crop), backbone (with the recipe's enhancement). The
baseline is the backbone's forward pass alone over the same number of ready-made 224×224 crops,
the limit the pipeline can reach; the target is end-to-end ≥ 0.5 of it. The end-to-end figure is
taken through ``build_store`` (work files, store writing and all) with ``--workers`` parallel
worker processes (default: one per CPU core, as a build on this machine should run), and for
context with one in-process worker: dlib's detector is single-threaded, so one worker leaves the
second core idle while it detects.

    .venv/bin/python benchmarks/bench_visual.py                       # dlib-resnet, basic
    .venv/bin/python benchmarks/bench_visual.py --recipe conf/store/dlib-resnet-f-meanstd.yaml
    .venv/bin/python benchmarks/bench_visual.py --backbone resnet18   # random weights, for timing
    .venv/bin/python benchmarks/bench_visual.py --backbone ir50 --no-build  # preprocessing figure

For each torch backbone it also prints the cost of its preprocessing (resize to the input side,
channel order, scale, mean/std: ``backbone.preprocess``) beside its forward pass over the same
crops, and their ratio (the preprocessing should be negligible beside the forward pass).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from feature_store.build import build_store  # noqa: E402
from feature_store.recipe import load_recipe  # noqa: E402
from feature_store.video import write_video  # noqa: E402
from feature_store.visual import VisualExtractor  # noqa: E402


def clip_frames(count: int, size=(640, 480)) -> list[np.ndarray]:
    face = skimage.data.astronaut()[20:240, 120:330]
    frames = []
    for index in range(count):
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        scale = 1.0 + 0.2 * np.sin(index / 5)
        patch = np.asarray(Image.fromarray(face).resize((int(210 * scale), int(220 * scale))))
        x, y = 40 + (index * 9) % 300, 30 + (index * 5) % 150
        canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch[: size[1] - y, : size[0] - x]
        frames.append(canvas)
    return frames


def preprocessing_cost(
    backbone, crops: torch.Tensor, batch_size: int, repeats: int
) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of ``backbone.preprocess`` and of its module's forward pass on
    one batch of ``crops`` (the preprocessing's output), after one warm-up of each."""
    batch = crops[:batch_size]
    timings: dict[str, list[float]] = {"preprocess": [], "forward": []}
    with torch.inference_mode():
        ready = backbone.preprocess(batch)
        backbone.module(ready)
        for _ in range(repeats):
            started = time.perf_counter()
            ready = backbone.preprocess(batch)
            synchronize(ready)
            prepared = time.perf_counter()
            synchronize(backbone.module(ready))
            finished = time.perf_counter()
            timings["preprocess"].append(prepared - started)
            timings["forward"].append(finished - prepared)
    return min(timings["preprocess"]), min(timings["forward"])


def synchronize(tensor: torch.Tensor) -> None:
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "conf/store/dlib-resnet-basic.yaml"))
    parser.add_argument(
        "--backbone", help="swap in this backbone with random weights (timing only)"
    )
    parser.add_argument("--frames", type=int, default=32, help="frames per clip")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes of the end-to-end build (default: one per CPU core)",
    )
    parser.add_argument(
        "--clips", type=int, default=None, help="clips through build_store (default: 2 per worker)"
    )
    parser.add_argument(
        "--no-build", action="store_true", help="skip the end-to-end builds (stage figures only)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed passes for the preprocessing figure"
    )
    args = parser.parse_args()
    args.clips = args.clips or 2 * args.workers

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = yaml.safe_load(Path(args.recipe).read_text())
        data["sampling"] = {"max_fps": None, "max_frames": None}
        if args.backbone:  # random weights, the recipe's preprocessing (if any) kept
            data["backbones"] = [
                {"name": args.backbone, "allow_random_weights": True}
                | ({"preprocess": spec["preprocess"]} if "preprocess" in spec else {})
                for spec in data["backbones"]
            ]
        recipe_path = tmp / f"{Path(args.recipe).stem}.yaml"
        recipe_path.write_text(yaml.safe_dump(data))
        recipe = load_recipe(recipe_path)
        video = tmp / "clip.mp4"
        write_video(video, clip_frames(args.frames))
        extractor = VisualExtractor(recipe)
        print(
            f"recipe {recipe.name}: backbone {extractor.meta['backbone']}, enhancement "
            f"{recipe.enhancement}, device {extractor.device}, torch threads {torch.get_num_threads()}, "
            f"{args.frames} frames of 640x480 per clip"
        )

        # 1. The limit: the backbone (with the enhancement) alone over ready-made crops.
        crops = torch.rand(
            args.frames, 3, recipe.faces.size, recipe.faces.size, device=extractor.device
        )
        extractor.enhancement(crops[:2], extractor.backbones, recipe.batch_size)  # warm-up
        started = time.perf_counter()
        extractor.enhancement(crops, extractor.backbones, recipe.batch_size)
        backbone_alone = args.frames / (time.perf_counter() - started)

        # 1b. Per torch backbone: its preprocessing against its forward pass, same crops.
        print(f"{'backbone':<28} {'preprocess ms':>14} {'forward ms':>11} {'ratio':>7}")
        for backbone in extractor.backbones:
            if not hasattr(backbone, "preprocess"):
                print(f"  {backbone.name:<26} (dlib's own preprocessing, inside its forward pass)")
                continue
            prep, forward = preprocessing_cost(backbone, crops, recipe.batch_size, args.repeats)
            print(
                f"  {backbone.name:<26} {prep * 1e3:>14.2f} {forward * 1e3:>11.1f} "
                f"{prep / forward:>7.2%}   (per batch of {min(len(crops), recipe.batch_size)}, "
                f"{recipe.faces.size} px crops -> {backbone.input_size} px input)"
            )

        # 2. Per stage, one clip through the extractor.
        extractor.extract("warm-up", video)
        extractor.timings.clear()
        extractor.extract("clip", video)
        timings = extractor.timings
        frames = timings["frames"]
        print(f"{'stage':<28} {'frames/s':>10} {'share':>7}")
        total_stages = sum(timings[s] for s in ("decode", "detect", "align", "backbone"))
        for stage in ("decode", "detect", "align", "backbone"):
            print(
                f"  {stage:<26} {frames / timings[stage]:>10.1f} {timings[stage] / total_stages:>7.1%}"
            )
        print(f"  {'extractor, all stages':<26} {frames / total_stages:>10.1f}")

        # 3. End to end through the build engine.
        manifest = tmp / "manifest.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["clip_id", "path", "split", "label"])
            writer.writerows([(f"c{i}", str(video), "train", "Happy") for i in range(args.clips)])
        end_to_end = {}
        for workers in [] if args.no_build else sorted({1, args.workers}):
            started = time.perf_counter()
            build_store(
                manifest, recipe_path, tmp / f"store-{workers}", workers=workers, progress=False
            )
            end_to_end[workers] = args.clips * args.frames / (time.perf_counter() - started)

    print(f"\n{'figure':<40} {'frames/s':>10}")
    print(f"{'backbone forward alone (baseline)':<40} {backbone_alone:>10.1f}")
    print(f"{'extractor, all stages':<40} {frames / total_stages:>10.1f}")
    for workers, rate in end_to_end.items():
        label = f"build_store end to end (workers={workers})"
        print(f"{label:<40} {rate:>10.1f}   {rate / backbone_alone:.2f} x backbone alone")
    if args.no_build:
        return 0
    end_to_end = end_to_end[args.workers]
    ratio = end_to_end / backbone_alone
    print(
        f"ratio end-to-end (workers={args.workers}) / backbone alone: {ratio:.2f} (target >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
