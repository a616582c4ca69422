"""Many visual stores in one pass (issue 15): the four shipped dlib-resnet recipes built together
equal one build per recipe; the face-track cache is reused by a later build and never served
stale (changed setting, changed file); an interrupted matrix build resumes at clip granularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_visual_build import write_manifest
from test_visual_pipeline import face_frames, make_face_video

import feature_store
from feature_store.__main__ import main
from feature_store.build import build_store
from feature_store.errors import StoreExistsError
from feature_store.visual.faces import FaceCropper
from feature_store.visual.matrix import ClipMatrix
from feature_store.visual.matrix_build import build_stores
from feature_store.visual.video import write_video
from feature_store.workdir import work_dir_for

CONF = Path(__file__).resolve().parents[1] / "conf" / "store"
VARIANTS = [
    CONF / f"dlib-resnet-{name}.yaml" for name in ("basic", "f-mean", "f-meanstd", "f-normfft")
]
CHEAP = [VARIANTS[0], VARIANTS[3]]  # no 18-copy passes: for the tests of caching and resuming
PROVENANCE = ["clip_id", "split", "label", "offset", "length", "frames_decoded", "frames_used",
              "frames_with_face", "source_path"]  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("matrix")
    make_face_video(folder / "a.mp4", count=4, absent=(2,))
    make_face_video(folder / "b.mp4", count=3, absent=())
    return write_manifest(
        folder / "m.csv",
        [
            ("a", str(folder / "a.mp4"), "train", "Happy"),
            ("b", str(folder / "b.mp4"), "val", "Sad"),
            ("a2", str(folder / "a.mp4"), "test", ""),
        ],
    )


def assert_same_store(one: feature_store.Store, other: feature_store.Store) -> None:
    pd.testing.assert_frame_equal(one.clips[PROVENANCE], other.clips[PROVENANCE])
    for key in ("name", "dim", "backbone", "pretrain", "enhancement", "recipe", "random_weights"):
        assert one.meta[key] == other.meta[key], key
    np.testing.assert_allclose(np.asarray(one.array), np.asarray(other.array), atol=1e-5)


class Counting:
    """Counts the face detector's calls (each is one frame searched for faces)."""

    def __init__(self, monkeypatch) -> None:
        self.calls = 0
        real = FaceCropper.detect

        def detect(cropper, frame):
            self.calls += 1
            return real(cropper, frame)

        monkeypatch.setattr(FaceCropper, "detect", detect)


class OneByOne(dict):
    """The store of one recipe built on its own (the baseline), built on first use."""

    def __init__(self, manifest: Path, folder: Path) -> None:
        super().__init__()
        self.manifest, self.folder = manifest, folder

    def __missing__(self, name: str) -> feature_store.Store:
        self[name] = build_store(
            self.manifest, CONF / f"{name}.yaml", self.folder / name, progress=False
        )
        return self[name]


@pytest.fixture(scope="module")
def one_by_one(clips, tmp_path_factory) -> OneByOne:
    return OneByOne(clips, tmp_path_factory.mktemp("single"))


@pytest.mark.slow
def test_the_four_dlib_variants_in_one_pass_equal_one_build_each(
    clips, one_by_one, tmp_path, monkeypatch, capsys
):
    detector = Counting(monkeypatch)
    root = tmp_path / "stores"
    assert main(["build", "--manifest", str(clips), "--recipe", *map(str, VARIANTS),
                 "--out", str(root)]) == 0  # fmt: skip
    assert detector.calls == 4 + 3  # each video searched once (a2 is a.mp4 again: cached)
    printed = capsys.readouterr().out
    for path in VARIANTS:
        store = feature_store.open_store(root / path.stem)
        store.validate_deep()
        assert_same_store(store, one_by_one[path.stem])
        assert f"{root / path.stem}: 3 clips, 11 vectors" in printed
        assert (root / path.stem / "contact_sheet.png").is_file()
    assert not (work_dir_for(root) / "stores").exists()
    assert len(list((work_dir_for(root) / "tracks").glob("*.npz"))) == 2  # a.mp4 once, b.mp4


def test_the_plan_shares_every_backbone_pass():
    from feature_store.recipe import load_recipe

    matrix = ClipMatrix({path.stem: load_recipe(path) for path in VARIANTS})
    assert len(matrix.trackers) == 1 and len(matrix.backbones) == 1
    features = {f for plan in matrix.plans.values() for f in plan.features}
    assert sorted(f.copies.size if f.copies else 1 for f in features) == [1, 18]


def test_a_later_build_reuses_the_cached_faces(clips, one_by_one, tmp_path, monkeypatch):
    root = tmp_path / "stores"
    build_stores(clips, CHEAP[:1], root, progress=False)
    detector = Counting(monkeypatch)
    stores = build_stores(clips, CHEAP[1:], root, progress=False)
    assert detector.calls == 0
    for name, store in stores.items():
        assert_same_store(store, one_by_one[name])
    with pytest.raises(StoreExistsError, match="dlib-resnet-basic"):
        build_stores(clips, VARIANTS[:1], root, progress=False)


def test_a_changed_setting_or_file_is_never_served_stale(tmp_path, monkeypatch):
    video = make_face_video(tmp_path / "v.mp4", count=3, absent=())
    manifest = write_manifest(tmp_path / "m.csv", [("v", str(video), "train", "Happy")])
    recipe = yaml.safe_load(VARIANTS[0].read_text())
    first = tmp_path / "first.yaml"
    first.write_text(yaml.safe_dump(recipe))
    root = tmp_path / "stores"
    build_stores(manifest, [first], root, progress=False)
    detector = Counting(monkeypatch)

    # Another detection setting: the faces are found again.
    upsampled = tmp_path / "upsampled.yaml"
    upsampled.write_text(yaml.safe_dump({**recipe, "faces": {**recipe["faces"], "upsample": 0}}))
    build_stores(manifest, [upsampled], root, progress=False)
    assert detector.calls == 3

    # Another crop size with the same detection: crops are cut again, faces are not searched.
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump({**recipe, "faces": {**recipe["faces"], "size": 160}}))
    build_stores(manifest, [bigger], root, progress=False)
    assert detector.calls == 3

    # The same path with other content: detected again, and the features are the new video's.
    write_video(video, face_frames(3, absent=(0, 1, 2)))
    again = tmp_path / "again.yaml"
    again.write_text(first.read_text())
    stored = build_stores(manifest, [again], root, progress=False)["again"]
    assert detector.calls == 6
    assert stored.clips["frames_with_face"].tolist() == [0]
    fresh = build_store(manifest, first, tmp_path / "fresh", progress=False)
    np.testing.assert_allclose(stored.features("v"), fresh.features("v"), atol=1e-5)


def test_an_interrupted_matrix_build_resumes_per_clip(clips, one_by_one, tmp_path, monkeypatch):
    root = tmp_path / "stores"
    runs: list[tuple[str, tuple[str, ...]]] = []
    real_run = ClipMatrix.run

    def interrupted(self, clip_id, path, names, cached, **kwargs):
        runs.append((clip_id, tuple(names)))
        if clip_id == "b" and len(runs) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the second clip
        return real_run(self, clip_id, path, names, cached, **kwargs)

    monkeypatch.setattr(ClipMatrix, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_stores(clips, CHEAP, root, progress=False)
    assert [clip for clip, _ in runs] == ["a", "b"] and not root.exists()
    # One store also lost clip a's work file: clip a is redone for that store only.
    (lost,) = (work_dir_for(root) / "stores" / "dlib-resnet-f-normfft" / "clips").glob("a-*.npz")
    lost.unlink()
    stores = build_stores(clips, CHEAP, root, progress=False)
    names = tuple(path.stem for path in CHEAP)
    assert runs[2:] == [("a", ("dlib-resnet-f-normfft",)), ("b", names), ("a2", names)]
    for name, store in stores.items():
        assert_same_store(store, one_by_one[name])


def test_the_gpu_split_gives_the_same_stores(clips, one_by_one, tmp_path, monkeypatch):
    # The GPU layout (workers only track, one consumer per GPU runs the backbones on clips
    # batched together) run on the CPU: the consumer gets the driver's models, here on the CPU.
    from feature_store.visual import gpu_consumers, matrix_build

    monkeypatch.setattr(matrix_build, "_local_gpus", lambda recipes: 1)
    monkeypatch.setattr(gpu_consumers, "GPU_BATCH_FRAMES", 6)  # a batch spans clips
    batches: list[list[str]] = []
    real_stage = ClipMatrix.feature_stage

    def feature_stage(self, clip_list, timings):
        batches.append([clip_id for clip_id, *_ in clip_list])
        return real_stage(self, clip_list, timings)

    monkeypatch.setattr(ClipMatrix, "feature_stage", feature_stage)
    stores = build_stores(clips, CHEAP, tmp_path / "stores", progress=False)
    assert sorted(clip for batch in batches for clip in batch) == ["a", "a2", "b"]
    for name, store in stores.items():
        assert_same_store(store, one_by_one[name])


def our_ray_workers(ray) -> list[int]:
    """PIDs of the build's actor processes: children of our own raylet (not a neighbour's)."""
    (raylet,) = ray._private.worker._global_node.all_processes["raylet"]
    found = []
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
            command = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        parent = int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        )
        if parent == raylet.process.pid and "_RayWorker" in command:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_ray_matrix_build_survives_a_killed_worker(clips, one_by_one, tmp_path, monkeypatch):
    # A worker process killed mid-build (as when its node is lost): its clip is retried on a
    # restarted actor, finished clips stay with the driver, and the stores come out the same.
    import os
    import signal

    ray = pytest.importorskip("ray")
    from feature_store.workdir import WorkDir

    killed: list[int] = []
    real_save = WorkDir.save

    def save_then_kill(self, result):
        real_save(self, result)
        if not killed:
            victim = our_ray_workers(ray)[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    monkeypatch.setattr(WorkDir, "save", save_then_kill)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        stores = build_stores(
            clips, CHEAP, tmp_path / "stores", use_ray=True, workers=2, progress=False
        )
    finally:
        ray.shutdown()
    assert len(killed) == 1
    for name, store in stores.items():
        assert_same_store(store, one_by_one[name])


def test_progress_without_a_terminal_prints_plain_status_lines():
    import io

    from feature_store.progress import BuildProgress

    stream = io.StringIO()  # not a TTY: no bar, plain lines
    progress = BuildProgress(10, initial=2, desc="build 4 visual stores", stream=stream, interval=0)
    progress.update({"frames": 64, "detect": 8.0, "detect_frames": 64, "backbone": 2.0,
                     "backbone_frames": 1216})  # fmt: skip
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines and "\r" not in stream.getvalue()
    assert lines[0].startswith("build 4 visual stores: 3/10 clips (30.0%)")
    assert "detect 8.0 f/s" in lines[0] and "backbone 608.0 f/s" in lines[0]
    assert "ETA " in lines[0] and "frames " in lines[0]


@pytest.mark.slow
def test_a_killed_matrix_build_resumes(clips, one_by_one, tmp_path):
    # The whole build process killed (SIGKILL: no clean-up at all), then run again.
    import os
    import signal
    import subprocess
    import sys
    import time

    paths = [path for path in pd.read_csv(clips)["path"] for _ in range(2)]
    many = write_manifest(
        tmp_path / "many.csv", [(f"c{i}", path, "train", "Happy") for i, path in enumerate(paths)]
    )
    root = tmp_path / "stores"
    argv = ["build", "--manifest", str(many), "--recipe", *map(str, CHEAP), "--out", str(root)]
    process = subprocess.Popen(
        [sys.executable, "-m", "feature_store", *argv], stderr=subprocess.DEVNULL
    )
    work = work_dir_for(root) / "stores"
    deadline = time.monotonic() + 600
    while not list(work.glob("*/clips/*.npz")) and time.monotonic() < deadline:
        assert process.poll() is None, "the build stopped on its own"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (root / CHEAP[0].stem).exists()
    finished = {path.name for path in work.glob("*/clips/*.npz")}
    assert finished
    stores = build_stores(many, CHEAP, root, progress=False)
    for path in CHEAP:
        assert stores[path.stem].clip_ids() == [f"c{i}" for i in range(6)]
        expected = one_by_one[path.stem]
        for clip_id in stores[path.stem].clip_ids():
            source = ["a", "b", "a2"][int(clip_id[1:]) // 2]
            np.testing.assert_allclose(
                stores[path.stem].features(clip_id), expected.features(source), atol=1e-5
            )


def test_bad_clips_stop_the_matrix_or_go_to_every_rejected_csv(clips, tmp_path, capsys):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video" * 100)
    good = pd.read_csv(clips).iloc[1]  # b.mp4
    manifest = write_manifest(
        tmp_path / "m.csv",
        [("b", good.path, "val", "Sad"), ("garbage", str(garbage), "train", "Fear"),
         ("missing", str(tmp_path / "nowhere.mp4"), "train", "Fear")],
    )  # fmt: skip
    argv = ["build", "--manifest", str(manifest), "--recipe", *map(str, CHEAP)]
    assert main([*argv, "--out", str(tmp_path / "stop")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("feature_store build: error: clip 'garbage'") and "Traceback" not in last
    assert main([*argv, "--out", str(tmp_path / "skip"), "--skip-bad"]) == 0
    for path in CHEAP:
        store = feature_store.open_store(tmp_path / "skip" / path.stem)
        assert store.clip_ids() == ["b"] and store.meta["num_rejected"] == 2
        rejected = pd.read_csv(store.path / "rejected.csv")
        assert rejected["clip_id"].tolist() == ["garbage", "missing"]
        assert "nowhere.mp4: no such file" in rejected["reason"].iloc[1]
