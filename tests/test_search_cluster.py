"""The distributed path for real: a two-node Ray cluster on loopback (a head and a second
``ray start --address``, one CPU each), an ``mlflow server`` with a SQLite backend and
``--serve-artifacts``, and the smoke search submitted with ``ray job submit``. Every trial must be
in MLflow with its artifacts, uploaded over HTTP (no shared artifact folder is configured on the
client side), and trials must have run on both nodes.

Processes are started with ``--block`` in their own process groups and ended by group id, never
with ``ray stop`` (which would end every Ray on the machine)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_search_support import REPO, check_trial_placement, search_args, write_tiny_stores

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: server exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not come up in {timeout} s:\n{log.read_text()[-3000:]}")


def ray_cli() -> str:
    return str(VENV_BIN / "ray") if (VENV_BIN / "ray").exists() else shutil.which("ray") or "ray"


class Processes:
    """Background servers in their own process groups, ended by group on exit."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env, self.procs = folder, env, []

    def start(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.folder / f"{name}.log"
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc, log

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def node_args(*, head: bool, gcs_port: int, temp_dir: Path, dashboard_port: int = 0) -> list[str]:
    ports = {
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--metrics-export-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
    }
    args = [
        ray_cli(),
        "start",
        "--block",
        "--num-cpus",
        "1",
        "--num-gpus",
        "0",
        "--node-ip-address",
        "127.0.0.1",
    ]
    args += [f"{k}={v}" for k, v in ports.items()]
    if head:
        args += [
            "--head", f"--port={gcs_port}", f"--temp-dir={temp_dir}", "--disable-usage-stats",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={free_port()}",
        ]  # fmt: skip
    else:
        args += [f"--address=127.0.0.1:{gcs_port}"]
    return args


def node_env() -> dict[str, str]:
    """This shell's environment for the nodes and drivers of a test cluster: no outside Ray or
    MLflow, no Ray token, this checkout and venv first."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(
        {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO), "PATH": f"{VENV_BIN}:{env['PATH']}"}
    )
    return env


def start_two_nodes(procs: Processes, temp_dir: Path) -> tuple[int, str, subprocess.Popen, Path]:
    """A head (waited for through its dashboard) and a worker joining it; returns the GCS port,
    the dashboard URL and the worker's process and log."""
    gcs_port, dashboard_port = free_port(), free_port()
    head, head_log = procs.start(
        "ray-head",
        node_args(head=True, gcs_port=gcs_port, temp_dir=temp_dir, dashboard_port=dashboard_port),
    )
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    wait_http(f"{dashboard}/api/version", 120, head, head_log)
    worker, worker_log = procs.start(
        "ray-worker", node_args(head=False, gcs_port=gcs_port, temp_dir=temp_dir)
    )
    return gcs_port, dashboard, worker, worker_log


@pytest.mark.slow
def test_smoke_search_on_a_two_node_cluster_with_an_mlflow_server(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    root = write_tiny_stores(tmp_path / "stores")
    temp_dir = Path("/tmp") / f"rayt{os.getpid()}"  # Ray's socket paths must stay short
    env = node_env()
    procs = Processes(tmp_path, env)
    try:
        mlflow_port = free_port()
        mlflow, mlflow_log = procs.start(
            "mlflow",
            [
                str(VENV_BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                "--backend-store-uri", f"sqlite:///{tmp_path}/server/mlflow.db",
                "--serve-artifacts", "--artifacts-destination", str(tmp_path / "server" / "artifacts"),
                "--workers", "1",
            ],
        )  # fmt: skip
        (tmp_path / "server").mkdir()
        _, dashboard, worker, worker_log = start_two_nodes(procs, temp_dir)
        uri = f"http://127.0.0.1:{mlflow_port}"
        wait_http(f"{uri}/health", 120, mlflow, mlflow_log)
        _wait_nodes(dashboard, 2, worker, worker_log)

        run_args = search_args(root, tmp_path)[1:]  # drop "run": search/run.py is the run command
        run_args += [
            "--set",
            f"tracking.uri={uri}",
            "--set",
            "resources.cpus=1",
            "--set",
            "budget.max_failures=1",
        ]
        submit = subprocess.run(
            [ray_cli(), "job", "submit", "--address", dashboard, "--",
             sys.executable, str(REPO / "search" / "run.py"), *run_args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=420,
        )  # fmt: skip
        assert submit.returncode == 0, submit.stdout[-4000:] + submit.stderr[-3000:]
        assert "leaderboard" in submit.stdout

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("demo")
        assert experiment.artifact_location.startswith("mlflow-artifacts:")
        runs = client.search_runs([experiment.experiment_id])
        trials = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
        assert len(trials) == 4, [r.data.tags.get("avfusion.status") for r in trials]
        nodes = {r.data.tags["avfusion.node_id"] for r in trials}
        overlapping = check_trial_placement(trials)
        print(f"{overlapping} overlapping trial pairs, trials on {len(nodes)} node(s)")
        for run in trials:
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert "config.yaml" in artifacts
            if run.data.tags["avfusion.status"] == "finished":
                assert {"scores.npz", "confusion_val.png", "attention_val.png"} <= artifacts, (
                    artifacts
                )
            else:
                assert run.data.tags["avfusion.status"] == "stopped_early"
        assert any(r.data.tags["avfusion.status"] == "finished" for r in trials)
        # The artifacts went through the server into its own folder.
        assert any((tmp_path / "server" / "artifacts").rglob("scores.npz"))
    finally:
        procs.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_nodes(dashboard: str, count: int, worker: subprocess.Popen, log: Path) -> None:
    import json

    deadline = time.time() + 120
    while time.time() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"ray worker node exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{dashboard}/nodes?view=summary", timeout=5) as response:
                summary = json.loads(response.read())["data"]["summary"]
            alive = [n for n in summary if n.get("raylet", {}).get("state") == "ALIVE"]
            if len(alive) >= count:
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(1)
    pytest.fail(f"the cluster did not reach {count} nodes:\n{log.read_text()[-3000:]}")
