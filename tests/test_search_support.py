"""Helpers (no tests) for the search tests: tiny planted-like stores and a CLI runner with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import feature_store

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "conf" / "search" / "demo.yaml"


def write_tiny_stores(
    root: Path,
    visual: tuple[str, ...] = ("basic",),
    audio: tuple[str, ...] = ("spectrogram",),
    clips: int = 70,
    seed: int = 0,
) -> Path:
    """Visual and audio stores over the same ``clips`` clips (train/val/test = 4:2:1), dim 6 and 4,
    2-5 vectors per clip whose mean carries the label, so trials learn something in two epochs."""
    rng = np.random.default_rng(seed)
    splits = np.array(["train"] * 4 + ["val"] * 2 + ["test"])[np.arange(clips) % 7]
    labels = rng.integers(0, 7, clips)
    frame = pd.DataFrame(
        {
            "clip_id": [f"c{i:03d}" for i in range(clips)],
            "split": splits,
            "label": np.where(splits == "test", -1, labels),
            "length": rng.integers(2, 6, clips),
        }
    )
    for modality, variants, dim in (("visual", visual, 6), ("audio", audio, 4)):
        for variant in variants:
            centers = rng.standard_normal((7, dim)).astype(np.float32) * 2
            rows = np.repeat(labels, frame["length"].to_numpy())
            features = centers[rows] + rng.standard_normal((len(rows), dim)).astype(np.float32)
            feature_store.write_store(
                root / modality / variant,
                frame,
                features,
                name=variant,
                modality=modality,
                enhancement=variant,
            )
    return root


def search_args(root: Path, work: Path, *extra: str) -> list[str]:
    """``run`` arguments for the demo config shrunk onto the tiny stores, recorded under ``work``."""
    return [
        "run", str(DEMO_CONFIG), "--smoke-test",
        "--set", f"stores.root={root}",
        "--set", "stores.visual_feature=[basic]",
        "--set", "stores.audio_feature=[spectrogram]",
        "--set", f"tracking.uri=sqlite:///{work}/mlruns/mlflow.db",
        "--set", f"storage_path={work}/ray_results",
        "--set", "budget.max_failures=0",
        "--set", "budget.time_limit_s=300",
        "--set", "trial.device=cpu",
        *extra,
    ]  # fmt: skip


def run_cli(module: str, args: list[str], cwd: Path, timeout: float = 240, env: dict | None = None):
    """``python -m module args`` in ``cwd``; MLFLOW_TRACKING_URI and RAY_ADDRESS from this shell
    are dropped so a test never talks to someone else's server or cluster."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd, env=cli_env(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def cli_env(env: dict | None = None) -> dict[str, str]:
    """This shell's environment without MLFLOW_TRACKING_URI and RAY_ADDRESS, plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    clean["PYTHONPATH"] = str(REPO)
    clean.update(env or {})
    return clean


def check_trial_placement(trials: list) -> int:
    """Trials (MLflow runs) that ran at the same time ran on different nodes, each node giving
    its one CPU to one trial; returns how many pairs overlapped. Whether any overlap is timing:
    Tune reuses a finished trial's actor (``reuse_actors``), so when starting an actor on another
    node takes longer than a whole smoke trial (a loaded machine), every trial may rightly run on
    the first node."""
    import itertools

    overlapping = [
        (a, b)
        for a, b in itertools.combinations(trials, 2)
        if a.info.start_time < b.info.end_time and b.info.start_time < a.info.end_time
    ]
    for a, b in overlapping:
        assert a.data.tags["avfusion.node_id"] != b.data.tags["avfusion.node_id"], (
            f"trials {a.info.run_name} and {b.info.run_name} ran at once on one node"
        )
    return len(overlapping)
