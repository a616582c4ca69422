"""The tracking server under load (issue 17): many trials at once through the real logging path.

    .venv/bin/python benchmarks/bench_tracking.py [--trials 500] [--concurrency 8] [--epochs 10]
        [--backends sqlite,postgres] [--no-plots]

For each backend it starts the head's tracking server on 127.0.0.1 exactly as the cluster YAMLs
do (``conf/cluster/mlflow-server.sh``: the basic-auth app, ``--serve-artifacts`` so artifacts go
over HTTP as from a cluster's nodes), (a) on a SQLite file, (b) on the PostgreSQL that script
starts (Debian's ``postgresql``; ``psycopg[binary]`` in the venv); every trial authenticates
(``AVFUSION_MLFLOW_AUTH_CACHE_S=0`` measures the server without its password cache). Then ``--concurrency`` worker processes, each a trial's node, log ``--trials`` trials through
``search.recorder.TrialRecorder`` exactly as ``search/trial.py`` does: the run with its tags and
params, ``config.yaml``, one ``log_batch`` of metrics per epoch, ``scores.npz`` (AFEW-sized: 383 val
and 653 test clips) and ``attention.json``, the FINISHED status, and then the two PNGs that
``search.plot_actor.draw_plots`` draws (what the plotter actors do). Printed per backend: runs lost
(a trial with no FINISHED run), runs duplicated (a trial with more than one run), errors, and the
logging time per epoch and per trial at the 50th and 99th percentile (target: 0 lost,
0 duplicated, p99 per epoch <= 1 s on PostgreSQL), with PostgreSQL's p50 against SQLite's.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "View run" line per trial

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
SEARCH = "bench-tracking"
SERVER = ROOT / "conf" / "cluster" / "mlflow-server.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{url}: the server exited:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-2000:]}")


def start_server(backend: str, folder: Path, procs: list[subprocess.Popen]) -> str:
    """The head's server exactly as the cluster YAMLs start it (conf/cluster/mlflow-server.sh:
    basic-auth, --serve-artifacts, SQLite or its own PostgreSQL), with a fresh admin password that
    every worker process uses."""
    password = secrets.token_urlsafe(16)
    env_file = folder / "mlflow-auth.env"
    env_file.write_text(
        f"MLFLOW_AUTH_ADMIN_PASSWORD={password}\nAVFUSION_PG_PASSWORD={secrets.token_urlsafe(16)}\n"
    )
    env_file.chmod(0o600)
    folder.chmod(0o755)  # as root, PostgreSQL runs as the postgres user: it must reach pgdata
    port = free_port()
    env = {**os.environ, "AVFUSION_MLFLOW_SECRETS": str(env_file),
           "AVFUSION_PGDATA": str(folder / "pgdata"), "AVFUSION_PG_PORT": str(free_port())}  # fmt: skip
    log = folder / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(SERVER), str(folder / "mlruns"), "127.0.0.1", str(port), backend],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )  # fmt: skip
    procs.append(proc)
    uri = f"http://127.0.0.1:{port}"
    wait_http(f"{uri}/health", proc, log)
    # Inherited by the worker processes: every trial authenticates as on a cluster.
    os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)
    return uri


def fake_result(index: int, epochs: int):
    """A finished trial's result with AFEW-sized scores, as ``train_trial`` returns it."""
    from trainables.result import TrialResult

    rng = np.random.default_rng(index)
    val = rng.dirichlet(np.ones(7), 383).astype(np.float32)
    scores = {
        "clip_ids_val": np.array([f"val{i:04d}" for i in range(383)]),
        "val": val,
        "labels_val": rng.integers(0, 7, 383).astype(np.int64),
        "clip_ids_test": np.array([f"test{i:04d}" for i in range(653)]),
        "test": rng.dirichlet(np.ones(7), 653).astype(np.float32),
    }
    attention = {
        "clip_ids": ["val0000", "val0001", "val0002", "val0003"],
        "visual": [rng.random(int(n)).tolist() for n in rng.integers(4, 64, 4)],
        "audio": [rng.random(int(n)).tolist() for n in rng.integers(8, 32, 4)],
    }
    metrics = {"train_loss": 1.2, "val_loss": 1.4, "val_acc": 0.45, "val_uar": 0.4}
    return TrialResult(None, [], {**metrics, "epochs": epochs}, scores, attention)


def one_trial(context, index: int, epochs: int, plots: bool) -> dict[str, object]:
    """Log one trial as ``search/trial.py`` does; return the time each logging step took."""
    from search.plot_actor import draw_plots
    from search.recorder import TrialRecorder

    params = {"visual_attention": "transformer", "audio_attention": "relation", "fusion": "fbp",
              "lr": 3e-4, "epochs": epochs, "seed": index, "visual_feature": "f-meanstd",
              "audio_feature": "logmel", "batch_size": 32, "dropout": 0.3}  # fmt: skip
    try:
        start = time.perf_counter()
        recorder = TrialRecorder(
            context,
            trial_id=f"trial{index:05d}",
            run_name=f"bench #{index}",
            params=params,
            tags={"avfusion.node_id": str(os.getpid())},
            config_yaml="\n".join(f"{k}: {v}" for k, v in params.items()),
        )
        opened = time.perf_counter() - start
        epoch_s = []
        for epoch in range(1, epochs + 1):
            tick = time.perf_counter()
            recorder.log_epoch(
                {
                    "epoch": epoch,
                    "train_loss": 1.0 / epoch,
                    "val_loss": 1.2,
                    "val_acc": 0.4,
                    "val_uar": 0.35,
                }  # fmt: skip
            )
            epoch_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        recorder.finish(fake_result(index, epochs))
        finished = time.perf_counter() - tick
        if plots:
            draw_plots(context.uri, recorder.run_id, CLASSES)
        return {"open_s": opened, "epoch_s": epoch_s, "finish_s": finished,
                "trial_s": time.perf_counter() - start, "error": None}  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - counted and shown, the benchmark goes on
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def drive(uri: str, trials: int, concurrency: int, epochs: int, plots: bool) -> dict[str, float]:
    from avcore.results import KIND, STATUS, TRIAL_ID
    from search import tracking
    from search.parent_run import ensure_experiment
    from search.tracking import TrackingContext

    experiment_id = ensure_experiment(uri, SEARCH)
    parent = tracking.client(uri).create_run(experiment_id, run_name=SEARCH).info.run_id
    context = TrackingContext(uri, experiment_id, parent, SEARCH, "bench")
    results, start = [], time.perf_counter()
    with ProcessPoolExecutor(concurrency) as pool:
        futures = [pool.submit(one_trial, context, i, epochs, plots) for i in range(trials)]
        for done, future in enumerate(as_completed(futures), 1):
            results.append(future.result())
            if done % 50 == 0 or done == trials:
                print(
                    f"  {done}/{trials} trials logged, {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
    wall = time.perf_counter() - start
    runs = tracking.client(uri).search_runs(
        [experiment_id], f"tags.`{KIND}` = 'trial'", max_results=50000
    )
    per_trial: dict[str, list] = {}
    for run in runs:
        per_trial.setdefault(run.data.tags.get(TRIAL_ID), []).append(run)
    finished = {
        trial for trial, found in per_trial.items()
        if any(r.info.status == "FINISHED" and r.data.tags.get(STATUS) == "finished"
               and len(r.data.metrics) >= 4 for r in found)
    }  # fmt: skip
    errors = [r for r in results if r["error"]]
    for error in errors[:3]:
        print(f"  error: {error['error']}", flush=True)
    good = [r for r in results if not r["error"]]
    epoch_s = [s for r in good for s in r["epoch_s"]]
    return {
        "lost": trials - len(finished),
        "duplicated": sum(len(found) - 1 for found in per_trial.values() if len(found) > 1),
        "errors": len(errors),
        "epoch_p50": percentile(epoch_s, 50),
        "epoch_p99": percentile(epoch_s, 99),
        "trial_p50": percentile([r["trial_s"] for r in good], 50),
        "trial_p99": percentile([r["trial_s"] for r in good], 99),
        "open_p50": statistics.median(r["open_s"] for r in good) if good else float("nan"),
        "finish_p50": statistics.median(r["finish_s"] for r in good) if good else float("nan"),
        "trials_per_s": trials / wall,
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNGs")
    args = parser.parse_args()
    rows = {}
    for backend in args.backends.split(","):
        procs: list[subprocess.Popen] = []
        with tempfile.TemporaryDirectory(prefix=f"bench-tracking-{backend}-") as tmp:
            folder = Path(tmp)
            try:
                if backend not in ("sqlite", "postgres"):
                    sys.exit(f"--backends: unknown backend {backend!r} (sqlite, postgres)")
                uri = start_server(backend, folder, procs)
                print(f"{backend}: {args.trials} trials x {args.epochs} epochs, "
                      f"{args.concurrency} at once, into {uri}", flush=True)  # fmt: skip
                rows[backend] = drive(uri, args.trials, args.concurrency, args.epochs, args.plots)
            finally:
                for proc in procs:  # the script's process group: server, workers, PostgreSQL
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
    print(f"\n{args.trials} trials, concurrency {args.concurrency}, {args.epochs} epochs, "
          f"plots {'on' if args.plots else 'off'}, server's auth cache "
          f"{os.environ.get('AVFUSION_MLFLOW_AUTH_CACHE_S', '60')} s; seconds:")  # fmt: skip
    print(f"{'backend':9} {'lost':>4} {'dup':>4} {'err':>4} {'epoch p50':>9} {'epoch p99':>9} "
          f"{'trial p50':>9} {'trial p99':>9} {'open p50':>8} {'finish p50':>10} {'trials/s':>8}")  # fmt: skip
    for backend, row in rows.items():
        print(f"{backend:9} {row['lost']:4d} {row['duplicated']:4d} {row['errors']:4d} "
              f"{row['epoch_p50']:9.3f} {row['epoch_p99']:9.3f} {row['trial_p50']:9.2f} "
              f"{row['trial_p99']:9.2f} {row['open_p50']:8.2f} {row['finish_p50']:10.2f} "
              f"{row['trials_per_s']:8.2f}")  # fmt: skip
    if {"sqlite", "postgres"} <= rows.keys():
        ratio = rows["postgres"]["epoch_p50"] / rows["sqlite"]["epoch_p50"]
        print(f"PostgreSQL / SQLite, epoch logging p50: {ratio:.2f}")
    if "postgres" in rows:
        row = rows["postgres"]
        met = row["lost"] == 0 and row["duplicated"] == 0 and row["epoch_p99"] <= 1.0
        print(
            f"target (PostgreSQL: 0 lost, 0 duplicated, epoch p99 <= 1 s): {'met' if met else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
