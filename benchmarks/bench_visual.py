"""Visual pipeline throughput, each figure against its baseline in the same run.

1. ``matrix``: the four dlib-resnet variants that need no downloads (basic, F-Mean, F-MeanStd,
   F-NormFFT) built in one pass (``build_stores``) against one ``build_store`` per recipe, on
   the same clips; the stores must be equal. Target: ≥ 2× faster.
2. ``throughput``: one recipe (dlib-resnet basic) end to end through ``build_store`` with one
   worker per core, against the backbone's forward pass alone over ready-made crops (the limit the
   pipeline can reach), with the per-stage breakdown. Target: ≥ 0.8.
3. ``gpu`` (``--device cuda``; ``--part gpu`` on the CPU runs the same code without consumers,
   as a smoke test): the backbones given with ``--backbone`` (random weights), basic
   and F-Mean each, built in one pass with CPU workers that decode, detect and align and one
   consumer per GPU that runs the backbones on batches across clips: images/s of the consumer
   against the backbone alone on the GPU, and where the time goes.
4. ``preprocess``: per torch backbone (random weights, its kind's usual preset), the cost of its
   preprocessing (resize to the input side, channel order, scale, mean/std:
   ``backbone.preprocess``) beside its forward pass over the same crops; it should be negligible.
5. ``encoders``: the released encoders (CLIP through open_clip, HSEmotion through timm; random
   weights, their presets) against the face CNNs dlib-resnet and ir50 in the same run: frames/s of
   each backbone over ready-made crops at its input side (basic: one image per frame; F-Mean: 18),
   then the shipped basic recipes of dlib-resnet, CLIP ViT-B/16 and HSEmotion-B0 end to end
   (``build_store``, one worker per core) on the same clips. Needs open_clip and timm (torchvision:
   ``.venv-encoders/bin/python`` here, see the Makefile's test-encoders).

Every clip is its own video (scikit-image's astronaut moving across a 640×480 frame, a different
path per clip), so no figure profits from the face-track cache seeing the same video twice.

    .venv/bin/python benchmarks/bench_visual.py                        # 1 and 2, on the CPU
    .venv/bin/python benchmarks/bench_visual.py --part throughput --recipe conf/store/dlib-resnet-f-meanstd.yaml
    .venv/bin/python benchmarks/bench_visual.py --device cuda --backbone resnet18 --backbone ir50
    .venv/bin/python benchmarks/bench_visual.py --part preprocess [--device cuda]
    .venv-encoders/bin/python benchmarks/bench_visual.py --part encoders [--backbone NAME ...]
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
from feature_store.devices import resolve_device  # noqa: E402
from feature_store.progress import STAGES  # noqa: E402
from feature_store.recipe import load_recipe  # noqa: E402
from feature_store.store import open_store  # noqa: E402
from feature_store.visual.extractor import VisualExtractor  # noqa: E402
from feature_store.visual.matrix_build import build_stores  # noqa: E402
from feature_store.visual.video import write_video  # noqa: E402

DLIB_VARIANTS = ("basic", "f-mean", "f-meanstd", "f-normfft")


def clip_frames(count: int, seed: int = 0, size=(640, 480)) -> list[np.ndarray]:
    """The astronaut's face moving and zooming; ``seed`` shifts the path (one video per clip)."""
    face = skimage.data.astronaut()[20:240, 120:330]
    frames = []
    for index in range(count):
        step = index + 7 * seed
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        scale = 1.0 + 0.2 * np.sin(step / 5)
        patch = np.asarray(Image.fromarray(face).resize((int(210 * scale), int(220 * scale))))
        x, y = 40 + (step * 9) % 300, 30 + (step * 5) % 150
        canvas[y : y + patch.shape[0], x : x + patch.shape[1]] = patch[: size[1] - y, : size[0] - x]
        frames.append(canvas)
    return frames


def make_clips(folder: Path, clips: int, frames: int) -> Path:
    """``clips`` distinct videos and their manifest."""
    rows = []
    for index in range(clips):
        video = folder / f"clip{index}-{frames}.mp4"
        write_video(video, clip_frames(frames, seed=index))
        rows.append((f"c{index}", str(video), "train", "Happy"))
    manifest = folder / f"manifest-{clips}x{frames}.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "path", "split", "label"])
        writer.writerows(rows)
    return manifest


def write_recipe(path: Path, data: dict) -> Path:
    data = {**data, "sampling": {"max_fps": None, "max_frames": None}}  # every frame
    path.write_text(yaml.safe_dump(data))
    return path


def timed(run, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = run(*args, **kwargs)
    return time.perf_counter() - started, result


def stage_table(stats: dict[str, float], wall: float, workers: int, consumers: int = 0) -> None:
    """Frames (backbone: images) and seconds per stage, summed over the processes running it, and
    the share of those processes' wall time it took (the backbone runs in ``consumers`` GPU
    threads when there are any, else in the workers)."""
    print(f"  {'stage':<10} {'frames':>8} {'seconds':>9} {'frames/s':>10} {'busy share':>11}")
    for stage in STAGES:
        if stats.get(stage):
            frames, seconds = stats[f"{stage}_frames"], stats[stage]
            where = consumers if stage == "backbone" and consumers else workers
            print(
                f"  {stage:<10} {frames:>8.0f} {seconds:>9.1f} {frames / seconds:>10.1f} "
                f"{seconds / (wall * where):>11.1%}"
            )


# -- 1. the matrix in one pass against one build per recipe ---------------------------------------


def bench_matrix(tmp: Path, args) -> None:
    manifest = make_clips(tmp, args.clips, args.matrix_frames)
    recipes = [
        write_recipe(
            tmp / f"dlib-resnet-{name}.yaml",
            yaml.safe_load((ROOT / f"conf/store/dlib-resnet-{name}.yaml").read_text()),
        )
        for name in DLIB_VARIANTS
    ]
    print(
        f"\n1. four dlib-resnet variants, {args.clips} clips x {args.matrix_frames} frames, "
        f"workers={args.workers}"
    )
    one_by_one = 0.0
    for recipe in recipes:
        seconds, _ = timed(
            build_store, manifest, recipe, tmp / "one" / recipe.stem, workers=args.workers,
            progress=False,
        )  # fmt: skip
        print(f"  one build: {recipe.stem:<24} {seconds:>7.1f} s")
        one_by_one += seconds
    stats: dict[str, float] = {}
    matrix, _ = timed(
        lambda: build_stores(
            manifest, recipes, tmp / "matrix", workers=args.workers, progress=False, stats=stats
        )
    )
    worst = 0.0
    for recipe in recipes:
        one, other = open_store(tmp / "one" / recipe.stem), open_store(tmp / "matrix" / recipe.stem)
        assert one.clip_ids() == other.clip_ids()
        assert (one.clips["offset"] == other.clips["offset"]).all()
        worst = max(worst, float(np.abs(np.asarray(one.array) - np.asarray(other.array)).max()))
    print(f"  one build per recipe, total      {one_by_one:>7.1f} s")
    print(f"  all four in one pass             {matrix:>7.1f} s")
    stage_table(stats, matrix, args.workers)
    speedup = one_by_one / matrix
    print(
        f"  speed-up one pass vs one build per recipe: {speedup:.2f}x "
        f"(target >= 2: {'met' if speedup >= 2 else 'NOT met'}); stores equal "
        f"(same clips and offsets, largest feature difference {worst:.1e})"
    )


# -- 2. one recipe end to end against the backbone alone --------------------------------------------


def bench_throughput(tmp: Path, args) -> None:
    data = yaml.safe_load(Path(args.recipe).read_text())
    recipe_path = write_recipe(tmp / f"{Path(args.recipe).stem}.yaml", data)
    recipe = load_recipe(recipe_path)
    manifest = make_clips(tmp, args.clips, args.frames)
    extractor = VisualExtractor(recipe)
    device = resolve_device(recipe.device)
    print(
        f"\n2. recipe {recipe.name}: backbone {extractor.meta['backbone']}, enhancement "
        f"{recipe.enhancement}, device {device}, torch threads {torch.get_num_threads()}, "
        f"{args.clips} clips x {args.frames} frames of 640x480"
    )
    crops = torch.rand(args.frames, 3, recipe.faces.size, recipe.faces.size)
    extractor.enhancement(crops[:2], extractor.backbones, recipe.batch_size)  # warm-up
    seconds, _ = timed(lambda: extractor.enhancement(crops, extractor.backbones, recipe.batch_size))
    backbone_alone = args.frames / seconds

    first = Path(manifest.read_text().splitlines()[1].split(",")[1])
    extractor.extract("warm-up", first)
    extractor.timings.clear()
    extractor.extract("clip", first)
    timings = extractor.timings
    total = sum(timings[s] for s in STAGES)
    print(f"  {'stage (one clip, in process)':<30} {'frames/s':>10} {'share':>7}")
    for stage in STAGES:
        rate = timings["frames"] / timings[stage]
        print(f"  {stage:<30} {rate:>10.1f} {timings[stage] / total:>7.1%}")

    end_to_end = {}
    for workers in sorted({1, args.workers}):
        seconds, _ = timed(
            build_store, manifest, recipe_path, tmp / f"store-{workers}", workers=workers,
            progress=False,
        )  # fmt: skip
        end_to_end[workers] = (seconds, args.clips * args.frames / seconds)
    # Twice the clips: the difference is what each further clip costs once the workers run, the
    # rate a long build (AFEW: 1,809 clips) settles at; the rest is the fixed start-up and
    # store-writing cost.
    doubled = make_clips(tmp, 2 * args.clips, args.frames)
    seconds, _ = timed(
        build_store, doubled, recipe_path, tmp / "store-doubled", workers=args.workers,
        progress=False,
    )  # fmt: skip
    short = end_to_end[args.workers][0]
    steady = args.clips * args.frames / max(seconds - short, 1e-9)
    fixed = short - args.clips * args.frames / steady
    print(f"  {'backbone forward alone (baseline)':<46} {backbone_alone:>8.1f} frames/s")
    for workers, (_, rate) in end_to_end.items():
        label = f"build_store end to end (workers={workers})"
        print(f"  {label:<46} {rate:>8.1f} frames/s  {rate / backbone_alone:.2f} x backbone alone")
    label = f"same, {2 * args.clips} clips (workers={args.workers})"
    rate = 2 * args.clips * args.frames / seconds
    print(f"  {label:<46} {rate:>8.1f} frames/s  {rate / backbone_alone:.2f} x backbone alone")
    label = "steady state (the extra clips' frames / time)"
    if fixed < 0:  # the extra clips took longer than the whole shorter build: the load changed
        print(f"  {label:<46} not measurable in this run (the machine's load changed under it)")
    else:
        print(
            f"  {label:<46} {steady:>8.1f} frames/s  {steady / backbone_alone:.2f} x backbone"
            f" alone  (fixed cost about {fixed:.1f} s per build)"
        )
    ratio = end_to_end[args.workers][1] / backbone_alone
    print(
        f"  ratio end-to-end (workers={args.workers}, {args.clips} clips) / backbone alone: "
        f"{ratio:.2f}; steady state {steady / backbone_alone:.2f} (target >= 0.80)"
    )


# -- 3. the GPU consumer -------------------------------------------------------------------------


def bench_gpu(tmp: Path, args) -> None:
    from feature_store.visual.backbones import make_backbone
    from feature_store.visual.specs import BackboneSpec

    if args.device == "cuda" and not torch.cuda.is_available():
        print("\n3. GPU: no CUDA device on this machine, nothing measured")
        return
    sync = torch.cuda.synchronize if args.device == "cuda" else lambda: None
    consumers = torch.cuda.device_count() if args.device == "cuda" else 0
    where = torch.cuda.get_device_name() if consumers else "CPU (no consumer: workers run all)"
    names = args.backbone or ["resnet18", "ir50"]
    recipes = []
    for name in names:
        for enhancement in ("basic", "f-mean"):
            data = {
                "modality": "visual",
                "device": args.device,
                "backbones": [{"name": name, "allow_random_weights": True}],
                "enhancement": enhancement,
                "batch_size": args.gpu_batch,
                "preview_frames": 4,
            }
            recipes.append(write_recipe(tmp / f"{name}-{enhancement}.yaml", data))
    manifest = make_clips(tmp, args.clips, args.frames)
    print(
        f"\n3. {where}: {', '.join(names)} (random weights) x basic + f-mean in one pass, "
        f"{args.clips} clips x {args.frames} frames, {args.workers} CPU workers, "
        f"{consumers} consumer(s), one per GPU"
    )
    alone = {}
    for name in names:
        backbone = make_backbone(BackboneSpec(name=name, allow_random_weights=True), args.device)
        images = torch.rand(args.gpu_batch, 3, 224, 224, device=args.device)
        backbone(images)
        sync()
        started = time.perf_counter()
        for _ in range(args.gpu_repeats):
            backbone(images)
        sync()
        alone[name] = args.gpu_repeats * args.gpu_batch / (time.perf_counter() - started)
        print(
            f"  {name} forward alone, 224x224 batches of {args.gpu_batch}: "
            f"{alone[name]:,.0f} images/s"
        )
    # The consumer runs every backbone over the same images (each crop and its 18 copies), so
    # the backbones alone would take the sum of their times per image.
    backbone_alone = len(names) / sum(1 / alone[name] for name in names)
    stats: dict[str, float] = {}
    wall, _ = timed(
        lambda: build_stores(
            manifest, recipes, tmp / "gpu", workers=args.workers, progress=False, stats=stats
        )
    )
    frames = args.clips * args.frames
    consumer = stats["backbone_frames"] / stats["backbone"]
    print(
        f"  end to end: {wall:.1f} s, {frames / wall:.1f} frames/s, "
        f"{stats['backbone_frames'] / wall:,.0f} backbone images/s"
    )
    stage_table(stats, wall, args.workers, consumers=consumers)
    print(
        f"  consumer: {consumer:,.0f} images/s while busy (crops to the GPU and the copies made "
        f"there included) vs the backbones alone {backbone_alone:,.0f} images/s: "
        f"{consumer / backbone_alone:.2f} x; the consumer was busy "
        f"{stats['backbone'] / wall:.0%} of the wall time, the rest it waited for the workers"
    )


# -- 4. preprocessing against the forward pass ----------------------------------------------------


def synchronize(tensor: torch.Tensor) -> None:
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)


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


def bench_preprocess(tmp: Path, args) -> None:
    from feature_store.visual.backbones import make_backbone
    from feature_store.visual.specs import BackboneSpec

    names = args.backbone or ["ir50", "iresnet50", "resnet18", "vggface"]
    batch = args.gpu_batch if args.device == "cuda" else 16
    print(
        f"\n4. preprocessing vs forward pass, batches of {batch} 224x224 crops, {args.device}, "
        f"best of {args.repeats}"
    )
    print(f"  {'backbone':<12} {'preprocess ms':>14} {'forward ms':>11} {'ratio':>7}  input")
    crops = torch.rand(batch, 3, 224, 224, device=args.device)
    for name in names:
        spec = BackboneSpec(name=name, allow_random_weights=True)
        backbone = make_backbone(spec, args.device)
        prep, forward = preprocessing_cost(backbone, crops, batch, args.repeats)
        print(
            f"  {name:<12} {prep * 1e3:>14.2f} {forward * 1e3:>11.1f} {prep / forward:>7.2%}  "
            f"{backbone.input_size} px"
        )


# -- 5. the released encoders against the face CNNs -----------------------------------------------

ENCODERS = ("dlib-resnet", "ir50", "hsemotion-b0", "hsemotion-b2", "clip-vit-b-32",
            "clip-vit-b-16", "clip-vit-l-14", "clip-vit-l-14-336")  # fmt: skip
BASELINES = ("dlib-resnet", "ir50")
SHIPPED_BASIC = ("dlib-resnet-basic", "clip-vitb16-basic", "hsemotion-b0-basic")


def encoder_rate(backbone, enhancement: str, frames: int, repeats: int, device: str) -> float:
    """Best-of-``repeats`` frames/s of ``enhancement`` over ``frames`` crops at the input side."""
    from feature_store.visual.enhance import make_enhancement

    side = backbone.input_size
    crops = torch.rand(frames, 3, side, side, device=device)
    enhance = make_enhancement(enhancement)
    with torch.inference_mode():
        enhance(crops[:1], [backbone], 32)  # warm-up
        best = min(timed(enhance, crops, [backbone], 32)[0] for _ in range(repeats))
    return frames / best


def bench_encoders(tmp: Path, args) -> None:
    from feature_store.visual.backbones import make_backbone
    from feature_store.visual.specs import BackboneSpec

    names = args.backbone or list(ENCODERS)
    names = [*BASELINES, *(name for name in names if name not in BASELINES)]
    repeats = max(1, min(args.repeats, 2))
    print(
        f"\n5. backbones over ready-made crops, {args.device}, torch threads "
        f"{torch.get_num_threads()}, best of {repeats}: basic on 4 frames, F-Mean on 1 frame "
        "(18 copies)"
    )
    print(
        f"  {'backbone':<18} {'input':>5} {'dim':>5} {'basic f/s':>10} {'F-Mean f/s':>11}  "
        + "  ".join(f"{'x ' + b:>14}" for b in BASELINES)
    )
    rates = {}
    for name in names:  # the baselines first: every row is printed with its ratios
        spec = BackboneSpec(name=name, allow_random_weights=name != "dlib-resnet")
        backbone = make_backbone(spec, args.device)
        basic = encoder_rate(backbone, "basic", 4, repeats, args.device)
        f_mean = encoder_rate(backbone, "f-mean", 1, repeats, args.device)
        rates[name] = basic
        ratios = "  ".join(
            f"{basic / rates[b]:>14.3f}" if b in rates else f"{'-':>14}" for b in BASELINES
        )
        print(
            f"  {name:<18} {backbone.input_size:>5} {backbone.dim:>5} {basic:>10.2f} "
            f"{f_mean:>11.3f}  {ratios}"
        )
    manifest = make_clips(tmp, args.clips, args.frames)
    print(
        f"  end to end (build_store, {args.workers} workers, {args.clips} clips x {args.frames} "
        "frames, random weights; decoding and dlib detection included)"
    )
    end_to_end = {}
    for stem in SHIPPED_BASIC:
        data = yaml.safe_load((ROOT / "conf/store" / f"{stem}.yaml").read_text())
        data["backbones"] = [
            {"name": spec["name"], "allow_random_weights": spec["name"] != "dlib-resnet"}
            for spec in data["backbones"]
        ]
        recipe = write_recipe(tmp / f"{stem}.yaml", data)
        seconds, _ = timed(
            build_store, manifest, recipe, tmp / stem, workers=args.workers, progress=False
        )
        end_to_end[stem] = args.clips * args.frames / seconds
        ratio = end_to_end[stem] / end_to_end[SHIPPED_BASIC[0]]
        print(f"  {stem:<22} {end_to_end[stem]:>8.2f} frames/s  {ratio:.2f} x dlib-resnet-basic")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part",
        choices=["all", "matrix", "throughput", "gpu", "preprocess", "encoders"],
        default="all",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes, preprocess part")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--recipe", default=str(ROOT / "conf/store/dlib-resnet-basic.yaml"))
    parser.add_argument(
        "--backbone",
        action="append",
        help="gpu, preprocess and encoders parts: backbones (random weights), repeatable",
    )
    parser.add_argument("--frames", type=int, default=32, help="frames per clip")
    parser.add_argument(
        "--matrix-frames", type=int, default=16, help="frames per clip in the matrix part"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: one per CPU core; on cuda one per core but one)",
    )
    parser.add_argument("--clips", type=int, default=None, help="clips (default: 2 per worker)")
    parser.add_argument("--gpu-batch", type=int, default=256, help="backbone batch on the GPU")
    parser.add_argument(
        "--gpu-repeats", type=int, default=10, help="timed batches of the backbone alone"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    args.workers = args.workers or (max(1, cores - 1) if args.device == "cuda" else cores)
    args.clips = args.clips or 2 * args.workers
    print(
        f"{cores} CPU cores, load average {os.getloadavg()[0]:.1f} (figures are noisy when loaded)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cuda_parts = ["gpu", "preprocess"]
        parts = cuda_parts if args.device == "cuda" and args.part == "all" else [args.part]
        if args.device == "cuda" and not set(parts) <= {*cuda_parts, "encoders"}:
            parser.error("--device cuda runs the gpu, preprocess and encoders parts only")
        if parts == ["all"]:
            parts = ["matrix", "throughput", "preprocess"]
        for part in parts:
            folder = tmp / part
            folder.mkdir()
            benches = {
                "matrix": bench_matrix,
                "throughput": bench_throughput,
                "gpu": bench_gpu,
                "preprocess": bench_preprocess,
                "encoders": bench_encoders,
            }
            benches[part](folder, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
