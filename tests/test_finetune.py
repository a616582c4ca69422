"""finetune on a real Ray cluster (loopback, 3 logical CPUs): 1 worker against 2 workers with the
same global batch, a worker killed mid-run, the output loading through a recipe, MLflow records.

The image set is made from scikit-image's astronaut (``feature_store.synthetic_faces``) in RAF-DB
layout; the starting checkpoint is a ResNet-18 with random weights whose BatchNorm statistics
were measured on the set's faces (a stand-in for a pretrained face model: no weights can be
downloaded here).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from feature_store.__main__ import main
from feature_store.finetune import finetune
from feature_store.probe import image_probe
from feature_store.recipe import load_recipe
from feature_store.synthetic_faces import write_rafdb
from feature_store.visual.backbones import make_backbone
from feature_store.visual.nets import ResNet18

pytestmark = pytest.mark.slow
SETTINGS = dict(epochs=5, batch_size=8, lr=3e-4, optimizer="adam", progress=False)


def _recipe(path: Path, checkpoint: Path) -> Path:
    path.write_text(
        "modality: visual\ndevice: cpu\nbackbones:\n"
        f"  - name: resnet18\n    checkpoint: {checkpoint}\n    pretrain: test start\n"
        "    preprocess: imagenet\n"
        "faces: {size: 100}\n"
    )
    return path


def _start_checkpoint(images: Path, out: Path) -> Path:
    """Random ResNet-18 weights, BatchNorm statistics measured on 16 of the set's faces."""
    torch.manual_seed(0)
    model = ResNet18()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a plain average over the calibration pass
    files = sorted((images / "Image" / "aligned").glob("train_*"))[:16]
    faces = np.stack([np.asarray(Image.open(f).resize((224, 224))) for f in files])
    x = torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        model.train()((x - mean) / std)
    torch.save(model.state_dict(), out)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import ray

    root = tmp_path_factory.mktemp("finetune")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    images = write_rafdb(root / "raf", train_per_class=16, test_per_class=8)
    recipe = _recipe(root / "start.yaml", _start_checkpoint(images, root / "start.pth"))
    temp = Path("/tmp") / f"rayft{os.getpid()}"
    ray.init(num_cpus=3, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False)
    yield {"root": root, "images": images, "recipe": recipe}
    ray.shutdown()
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(scope="module")
def one_worker(setup):
    """The reference run, through the CLI: 1 worker, global batch 8."""
    out = setup["root"] / "one.pth"
    code = main(
        ["finetune", "--images", str(setup["images"]), "--recipe", str(setup["recipe"]),
         "--out", str(out), "--epochs", "5", "--workers", "1", "--batch-size", "8",
         "--lr", "3e-4", "--optimizer", "adam"]
    )  # fmt: skip
    assert code == 0
    return out


@pytest.fixture(scope="module")
def two_workers(setup):
    out = setup["root"] / "two.pth"
    meta = finetune(
        setup["images"], setup["recipe"], out, workers=2, **SETTINGS, log=lambda _: None
    )
    return out, meta


def _history(out: Path) -> list[dict]:
    import mlflow

    record = torch.load(out, weights_only=True)["avfusion"]
    client = mlflow.tracking.MlflowClient()
    losses = client.get_metric_history(record["mlflow_run_id"], "train_loss")
    return sorted((m.step, m.value) for m in losses)


def test_two_workers_follow_the_one_worker_loss_curve(one_worker, two_workers):
    one = torch.load(one_worker, weights_only=True)
    two = torch.load(two_workers[0], weights_only=True)
    curve_one = [value for _, value in _history(one_worker)]
    curve_two = [row["train_loss"] for row in two_workers[1]["history"]]
    assert len(curve_one) == len(curve_two) == SETTINGS["epochs"]
    np.testing.assert_allclose(curve_two, curve_one, rtol=2e-3)
    head_one, head_two = one["head"]["weight"], two["head"]["weight"]
    torch.testing.assert_close(head_two, head_one, rtol=1e-2, atol=1e-3)


def test_mlflow_run_has_epochs_confusion_and_kind(one_worker):
    import mlflow

    record = torch.load(one_worker, weights_only=True)["avfusion"]
    client = mlflow.tracking.MlflowClient()
    run = client.get_run(record["mlflow_run_id"])
    assert run.data.tags["avfusion.kind"] == "finetune"
    assert run.info.status == "FINISHED"
    for key in ("train_loss", "val_acc", "test_acc"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3, 4, 5]
    names = {a.path for a in client.list_artifacts(run.info.run_id, "confusion")}
    assert "confusion/test_epoch_005.json" in names
    matrix = np.array(record["test_confusion"])
    assert matrix.sum() == 24 and matrix.trace() / 24 == pytest.approx(record["test_acc"])


def test_output_loads_through_a_recipe_and_separates_classes_better(setup, one_worker):
    tuned = _recipe(setup["root"] / "tuned.yaml", one_worker)
    record = torch.load(one_worker, weights_only=True)["avfusion"]
    assert record["preprocessing"]["size"] == 224
    assert record["preprocessing"]["preset"] == "imagenet"
    assert record["backbone"] == "resnet18" and record["image_set"]["layout"] == "rafdb"
    backbone = make_backbone(load_recipe(tuned).backbones[0])
    assert not backbone.random_weights
    cache = setup["root"] / "probe-cache"
    before = image_probe(setup["recipe"], setup["images"], cache=cache)
    after = image_probe(tuned, setup["images"], cache=cache)
    assert after > before, (before, after)


def _descendants(pid: int) -> list[int]:
    """Process ids under ``pid`` (from /proc): only processes this test started."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _train_workers() -> list[int]:
    pids = []
    for pid in _descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"RayTrainWorker" in command:
            pids.append(pid)
    return pids


def test_killed_worker_resumes_to_the_uninterrupted_result(setup, two_workers):
    out = setup["root"] / "killed.pth"
    runs = out.with_name(out.name + ".ray") / "run"
    killed: list[int] = []

    def kill_after_second_checkpoint() -> None:
        # The second: a checkpoint on disk may not be registered yet when its worker is killed,
        # but the first one surely is once the second is written.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            if len(list(runs.glob("checkpoint_*/state.pt"))) >= 2:
                workers = _train_workers()
                if workers:
                    os.kill(workers[-1], signal.SIGKILL)
                    killed.append(workers[-1])
            time.sleep(0.2)

    killer = threading.Thread(target=kill_after_second_checkpoint, daemon=True)
    killer.start()
    meta = finetune(
        setup["images"], setup["recipe"], out, workers=2, **SETTINGS, log=lambda _: None
    )
    killer.join(timeout=5)
    assert killed, "no Ray Train worker was found to kill"
    assert any(row["resumed"] for row in meta["history"]), "the run never restarted"
    expected = two_workers[1]["history"]
    np.testing.assert_allclose(
        [row["train_loss"] for row in meta["history"]],
        [row["train_loss"] for row in expected],
        rtol=1e-5,
    )
    assert meta["test_acc"] == pytest.approx(two_workers[1]["test_acc"])
    resumed = torch.load(out, weights_only=True)["state_dict"]
    reference = torch.load(two_workers[0], weights_only=True)["state_dict"]
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-4, atol=1e-5)


def test_lost_driver_resumes_when_the_command_runs_again(setup, two_workers):
    """The driver (a ``python -m feature_store finetune`` process on the test's cluster) is killed
    after its second checkpoint; the same command again resumes and ends as the uninterrupted run."""
    import subprocess
    import sys

    import ray

    out = setup["root"] / "driver.pth"
    runs = out.with_name(out.name + ".ray") / "run"
    command = [
        sys.executable, "-m", "feature_store", "finetune", "--images", str(setup["images"]),
        "--recipe", str(setup["recipe"]), "--out", str(out), "--workers", "2",
        "--epochs", str(SETTINGS["epochs"]), "--batch-size", str(SETTINGS["batch_size"]),
        "--lr", str(SETTINGS["lr"]), "--optimizer", SETTINGS["optimizer"],
    ]  # fmt: skip
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 600
        while len(list(runs.glob("checkpoint_*/state.pt"))) < 2:
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.2)
        driver.kill()
    finally:
        driver.wait(timeout=60)
    assert not out.exists()
    meta = finetune(
        setup["images"], setup["recipe"], out, workers=2, **SETTINGS, log=lambda _: None
    )
    assert meta["history"][0]["resumed"] is False and any(r["resumed"] for r in meta["history"])
    np.testing.assert_allclose(
        [row["train_loss"] for row in meta["history"]],
        [row["train_loss"] for row in two_workers[1]["history"]],
        rtol=1e-5,
    )
