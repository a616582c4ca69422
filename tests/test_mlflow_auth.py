"""Issue 12, "let no one in": the head's MLflow server as conf/cluster/*.yaml start it
(conf/cluster/mlflow-server.sh, MLflow's basic-auth app), started for real on loopback: a smoke
search and an ensemble run through it with MLFLOW_TRACKING_USERNAME/PASSWORD, and a client
without (or with wrong) credentials is refused."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from test_search_support import REPO, cli_env, run_cli, search_args, write_tiny_stores

SERVER = REPO / "conf" / "cluster" / "mlflow-server.sh"
CLUSTERS = sorted((REPO / "conf" / "cluster").glob("*.yaml"))


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.stem)
def test_cluster_configs_start_mlflow_behind_auth_with_no_secret_in_the_repo(path: Path):
    config = yaml.safe_load(path.read_text())
    head = " ".join(config["head_start_ray_commands"])
    assert "conf/cluster/mlflow-server.sh" in head and "mlflow server" not in head
    assert "--app-name basic-auth" in SERVER.read_text()
    text = path.read_text().lower()
    assert "password=" not in text and "mlflow_tracking_password" not in text
    mounts = config["file_mounts"]
    assert any(k.endswith(".mlflow/credentials") for k in mounts)  # every node's trials


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0  # not listening (yet)


def test_the_server_refuses_to_start_without_a_password(tmp_path: Path):
    done = subprocess.run(
        [str(SERVER), str(tmp_path / "mlruns"), "127.0.0.1", str(_free_port())],
        env=cli_env({"AVFUSION_MLFLOW_SECRETS": str(tmp_path / "absent.env")}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "refusing to serve without authentication" in done.stderr


@pytest.mark.slow
def test_a_search_and_an_ensemble_through_an_authenticated_server(tmp_path: Path):
    password = secrets.token_urlsafe(16)
    secrets_file = tmp_path / "mlflow-auth.env"
    secrets_file.write_text(f"MLFLOW_AUTH_ADMIN_PASSWORD={password}\n")
    secrets_file.chmod(0o600)
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [str(SERVER), str(tmp_path / "mlruns"), "127.0.0.1", str(port)],
        env=cli_env({"AVFUSION_MLFLOW_SECRETS": str(secrets_file)}),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while _status(f"{uri}/health") != 200:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(1)
        api = f"{uri}/api/2.0/mlflow/experiments/search?max_results=5"
        assert _status(api) == 401  # no credentials
        assert _status(api, "admin", "wrong") == 401
        assert _status(api, "admin", password) == 200

        creds = {
            "MLFLOW_TRACKING_URI": uri,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": password,
        }
        root = write_tiny_stores(tmp_path / "stores")
        search = run_cli(
            "search", search_args(root, tmp_path, "--num-cpus", "2"), tmp_path, 480, creds
        )
        assert search.returncode == 0, search.stdout[-2000:] + search.stderr[-3000:]
        assert "search demo: " in search.stdout and " finished" in search.stdout
        out = tmp_path / "ensemble"
        args = ["build", "--experiment", "demo", "--rounds", "5", "--out", str(out)]
        ensemble = run_cli("ensembling", args, tmp_path, 240, creds)
        assert ensemble.returncode == 0, ensemble.stderr[-3000:]
        assert (out / "submission.zip").is_file()

        # The same commands without credentials: one line each, exit 2, nothing written.
        stranger = {"MLFLOW_TRACKING_URI": uri}
        status = run_cli("search", ["status", "demo"], tmp_path, 120, stranger)
        assert status.returncode == 2 and "401" in status.stderr, status.stderr[-2000:]
        assert len(status.stderr.strip().splitlines()) == 1
        other = tmp_path / "stranger"
        refused = run_cli("ensembling", [*args[:-1], str(other)], tmp_path, 120, stranger)
        assert refused.returncode == 2 and not other.exists(), refused.stderr[-2000:]
        assert len(refused.stderr.strip().splitlines()) == 1
    finally:
        with contextlib.suppress(ProcessLookupError):  # the server and its workers, ours only
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
