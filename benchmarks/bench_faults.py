"""Issue 12's bad inputs and faults, each run as a user would, with its exit status and first line.

    .venv/bin/python benchmarks/bench_faults.py                    # this checkout
    .venv/bin/python benchmarks/bench_faults.py --code /tmp/base   # another checkout (BEFORE)
    .venv/bin/python benchmarks/bench_faults.py --search           # also the cases that start Ray

Every case gets fresh inputs in a scratch folder and runs ``python -m PACKAGE ...`` with the
checkout's code first on ``sys.path``; a ``check`` after the command reports what a user would
find afterwards (a file escaped, a user's file deleted, a run left RUNNING). The table is markdown.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"\d+%\||\d+/\d+ \[")  # tqdm bars are not messages
# Ray's and MLflow's timestamped log lines (e.g. Ray's token-auth notice) are not our messages.
LOGGED = re.compile(r"^\d{4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d:\d\d")

# Runs in the checkout under test: a visual + audio pair of tiny stores (4 classes of train/val
# clips, 2 test clips), and score folders for `ensembling build --scores`.
SETUP = textwrap.dedent(
    """
    import sys, numpy as np, pandas as pd, feature_store
    root = sys.argv[1]
    rng = np.random.default_rng(0)
    ids = [f"c{i:02d}" for i in range(16)]
    splits = ["train"] * 10 + ["val"] * 4 + ["test"] * 2
    labels = [i % 7 for i in range(14)] + [-1, -1]
    for modality, dim in (("visual", 6), ("audio", 5)):
        clips = pd.DataFrame({"clip_id": ids, "split": splits, "label": labels, "length": [2] * 16})
        feature_store.write_store(f"{root}/stores/{modality}/basic", clips,
            rng.standard_normal((32, dim)).astype("float32"), name="basic", modality=modality)
    import os
    for folder, test_ids in (("scores", ["t0", "t1", "t2"]),
                             ("unsafe", ["../../../../tmp/avfusion-zipslip", "/abs/x", "ok"])):
        for t in range(3):
            val = rng.dirichlet(np.ones(7), 14).astype("float32")
            os.makedirs(f"{root}/{folder}/t{t}", exist_ok=True)
            np.savez(f"{root}/{folder}/t{t}/scores.npz",
                clip_ids_val=np.array([f"v{j}" for j in range(14)]),
                val=val, labels_val=np.arange(14) % 7, clip_ids_test=np.array(test_ids),
                test=rng.dirichlet(np.ones(7), 3).astype("float32"))
    """
)


FORCE_STORE = textwrap.dedent(
    """
    import sys, feature_store
    s = feature_store.open_store(sys.argv[1] + "/stores/visual/basic")
    try:
        feature_store.write_store(sys.argv[1] + "/user", s.clips[["clip_id", "split", "label",
            "length"]], s.array, name="x", modality="visual", force=True)
    except feature_store.StoreError as exc:
        sys.exit(f"write_store: error: {exc}")
    """
)


@dataclass
class Case:
    name: str
    argv: Callable[[Path], list[str]]
    prepare: Callable[[Path], None] = lambda root: None
    check: Callable[[Path], str] = lambda root: ""
    env: dict[str, str] | None = None
    timeout: float = 120


def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _user_files(out: Path) -> None:
    _write(out / "thesis.tex", "years of work")


def _still_there(out: Path) -> str:
    return "user file kept" if (out / "thesis.tex").exists() else "USER FILE DELETED"


def _fit(root: Path, *extra: str) -> list[str]:
    return [
        "trainables",
        "fit",
        "--visual",
        f"{root}/stores/visual/basic",
        "--audio",
        f"{root}/stores/audio/basic",
        "--set",
        "epochs=1",
        *extra,
    ]


def _search_yaml(root: Path, **extra: str) -> Path:
    lines = {
        "name": "bench",
        "stores": f"{{root: {root}/stores, visual_feature: [basic], audio_feature: [basic]}}",
        "space": "{lr: [0.01]}",
        "trial": "{device: cpu}",
        "budget": "{num_trials: 2, max_concurrent: 2, epochs: 1, grace_period: 1}",
        "tracking": f"{{uri: 'sqlite:///{root}/mlruns/mlflow.db'}}",
        "storage_path": f"{root}/ray_results",
        **extra,
    }
    path = root / "search.yaml"
    _write(path, "".join(f"{k}: {v}\n" for k, v in lines.items()))
    return path


def _edit_clips(root: Path) -> None:
    import pyarrow.parquet as pq

    for modality in ("visual", "audio"):  # both, so that they still pair
        path = root / f"stores/{modality}/basic/clips.parquet"
        table = pq.read_table(path).to_pandas()
        table.loc[0, "label"] = (table.loc[0, "label"] + 1) % 7
        table.to_parquet(path, index=False)


def _nan_features(root: Path) -> None:
    import numpy as np

    path = root / "stores/visual/basic/features.npy"
    array = np.load(path, mmap_mode="r+")
    array[0, 0] = np.nan
    array.flush()


def _cut_ensemble(root: Path) -> None:
    _write(
        root / "ens/ensemble.json", '{"format": "avfusion-ensemble", "version": 1, "recipe": {}}'
    )


def _ens(root: Path, *extra: str, folder: str = "scores") -> list[str]:
    return ["ensembling", "build", "--scores", *(f"{root}/{folder}/t{t}" for t in range(3)), *extra]


def _zip_check(root: Path) -> str:
    import zipfile

    archive = root / "ens/submission.zip"
    if not archive.exists():
        return "no submission.zip"
    bad = [n for n in zipfile.ZipFile(archive).namelist() if ".." in n or n.startswith("/")]
    return f"UNSAFE ENTRIES {bad}" if bad else "entries safe"


def _stale(root: Path) -> None:
    (root / ".ens.tmp-999999").mkdir(parents=True)


CASES = [
    Case(
        "clip id `../../x` into submission.zip",
        lambda r: _ens(r, "--out", f"{r}/ens", "--no-log", folder="unsafe"),
        check=_zip_check,
    ),
    Case(
        "ensembling build --out DIR --force (DIR = user folder)",
        lambda r: _ens(r, "--out", f"{r}/user", "--force", "--no-log"),
        prepare=lambda r: _user_files(r / "user"),
        check=lambda r: _still_there(r / "user"),
    ),
    Case(
        "stale .ens.tmp-PID of a dead PID",
        lambda r: _ens(r, "--out", f"{r}/ens", "--no-log"),
        prepare=_stale,
        check=lambda r: "stale folder LEFT" if (r / ".ens.tmp-999999").exists() else "removed",
    ),
    Case(
        "ensembling show cut-down ensemble.json",
        lambda r: ["ensembling", "show", f"{r}/ens"],
        prepare=_cut_ensemble,
    ),
    Case(
        "ensembling build --out in read-only folder",
        lambda r: _ens(r, "--out", "/proc/avfusion-ens", "--no-log"),
    ),
    Case(
        "feature_store build --out DIR --force (DIR = user folder)",
        lambda r: [
            "feature_store",
            "build",
            "--manifest",
            f"{r}/m.csv",
            "--recipe",
            str(REPO / "conf/store/dlib-resnet-basic.yaml"),
            "--out",
            f"{r}/user",
            "--force",
        ],
        prepare=lambda r: (
            _user_files(r / "user"),
            _write(r / "m.csv", "clip_id,path,split,label\na,/nonexistent.mp4,train,Happy\n"),
        ),
        check=lambda r: _still_there(r / "user"),
    ),
    Case(
        "write_store(force=True) over a user folder (what build --force reaches)",
        lambda r: ["-c", FORCE_STORE, str(r)],
        prepare=lambda r: _user_files(r / "user"),
        check=lambda r: _still_there(r / "user"),
    ),
    Case(
        "manifest clip id `../../x`",
        lambda r: [
            "feature_store",
            "build",
            "--manifest",
            f"{r}/m.csv",
            "--recipe",
            str(REPO / "conf/store/dlib-resnet-basic.yaml"),
            "--out",
            f"{r}/s",
        ],
        prepare=lambda r: _write(
            r / "m.csv", "clip_id,path,split,label\n../../x,/nonexistent.mp4,train,Happy\n"
        ),
    ),
    Case(
        "recipe is a directory",
        lambda r: (
            ["feature_store", "build", "--manifest", f"{r}/m.csv", "--recipe", str(r)]
            + ["--out", f"{r}/s"]
        ),
        prepare=lambda r: _write(r / "m.csv", "clip_id,path,split,label\na,/n.mp4,train,Happy\n"),
    ),
    Case(
        "recipe not UTF-8",
        lambda r: (
            ["feature_store", "build", "--manifest", f"{r}/m.csv", "--recipe", f"{r}/r.yaml"]
            + ["--out", f"{r}/s"]
        ),
        prepare=lambda r: (
            _write(r / "m.csv", "clip_id,path,split,label\na,/n.mp4,train,Happy\n"),
            _write(r / "r.yaml", b"\xff\xfe\x00bad"),
        ),
    ),
    Case("trial config is a directory", lambda r: _fit(r, "--config", str(r))),
    Case(
        "trial config not UTF-8",
        lambda r: _fit(r, "--config", f"{r}/t.yaml"),
        prepare=lambda r: _write(r / "t.yaml", b"\xff\xfe\x00bad"),
    ),
    Case(
        "trainables fit --out DIR holding an earlier run",
        lambda r: _fit(r, "--out", f"{r}/run"),
        prepare=lambda r: _write(r / "run/metrics.json", "{}"),
        check=lambda r: (
            "earlier run OVERWRITTEN" if (r / "run/metrics.json").read_text() != "{}" else "kept"
        ),
    ),
    Case("trainables fit --out in read-only folder", lambda r: _fit(r, "--out", "/proc/avfusion")),
    Case(
        "store with clips.parquet edited after writing",
        lambda r: _fit(r),
        prepare=_edit_clips,
    ),
    Case("NaN in features", lambda r: _fit(r), prepare=_nan_features),
    Case("search YAML is a directory", lambda r: ["search", "run", str(r)]),
    Case(
        "search YAML not UTF-8",
        lambda r: ["search", "run", f"{r}/s.yaml"],
        prepare=lambda r: _write(r / "s.yaml", b"name: \xff\xfe\n"),
    ),
    Case(
        "search YAML syntax error",
        lambda r: ["search", "run", f"{r}/s.yaml"],
        prepare=lambda r: _write(r / "s.yaml", "name: a\nbudget: {num_trials: [1,\n"),
    ),
    Case(
        "search YAML !!python/object tag",
        lambda r: ["search", "run", f"{r}/s.yaml"],
        prepare=lambda r: _write(r / "s.yaml", "name: !!python/object:os.system {}\n"),
    ),
]

SEARCH_CASES = [
    Case(
        "every trial fails (trial.device=cuda)",
        lambda r: (
            ["search", "run", str(_search_yaml(r)), "--set", "trial.device=cuda"]
            + ["--num-cpus", "2"]
        ),
        timeout=300,
    ),
    Case(
        "RAY_ADDRESS points at nothing",
        lambda r: ["search", "run", str(_search_yaml(r))],
        env={"RAY_ADDRESS": "127.0.0.1:1"},
        timeout=150,
    ),
    Case(
        "RAY_ADDRESS it cannot join",
        lambda r: ["search", "run", str(_search_yaml(r))],
        env={"RAY_ADDRESS": "not an address"},
        timeout=150,
    ),
    Case(
        "read-only storage_path",
        lambda r: (
            ["search", "run", str(_search_yaml(r)), "--set", "storage_path=/proc/rt"]
            + ["--num-cpus", "2"]
        ),
        timeout=300,
    ),
]


def run_case(case: Case, code: Path, python: str) -> tuple[str, str, str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        root = Path(folder)
        env = {**os.environ, "PYTHONPATH": str(code), "CI": "", **(case.env or {})}
        env.pop("MLFLOW_TRACKING_URI", None)
        subprocess.run([python, "-c", SETUP, str(root)], cwd=code, env=env, check=True)
        case.prepare(root)
        started, args = time.perf_counter(), case.argv(root)
        try:
            done = subprocess.run(
                [python, *(args if args[0] == "-c" else ["-m", *args])],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=case.timeout,
                stdin=subprocess.DEVNULL,
            )
            code_text = str(done.returncode)
            lines = [
                line
                for line in done.stderr.splitlines()
                if line.strip() and not PROGRESS.search(line) and not LOGGED.match(line)
            ]
            first = lines[0] if lines else "(no stderr)"
            if len(lines) > 1:
                first += f" (+{len(lines) - 1} lines)"
        except subprocess.TimeoutExpired:
            code_text, first = "timeout", f"still running after {case.timeout:g} s"
        seconds = time.perf_counter() - started
        return code_text, first, case.check(root), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose code runs")
    parser.add_argument("--python", default=sys.executable, help="interpreter with the deps")
    parser.add_argument("--search", action="store_true", help="also the cases that start Ray")
    parser.add_argument("--only", default="", help="run cases whose name contains this")
    args = parser.parse_args()
    cases = CASES + (SEARCH_CASES if args.search else [])
    print(f"code: {args.code}\n")
    print("| case | exit | stderr (first line) | afterwards | s |")
    print("|---|---|---|---|---|")
    for case in cases:
        if args.only and args.only not in case.name:
            continue
        exit_code, first, after, seconds = run_case(case, args.code.resolve(), args.python)
        first = first.replace("|", "\\|")[:160]
        print(f"| {case.name} | {exit_code} | {first} | {after} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
