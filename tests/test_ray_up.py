"""Issue 17: the cluster path exactly as users run it. ``ray up`` of a cluster YAML derived from
conf/cluster/local.yaml (same file mounts, setup and start scripts; only the machines, the user, the
key and the ports differ) over real SSH to two loopback machines (tests/loopback_nodes.py); Ray's
own NodeUpdater installs the project on each node from the synced checkout and starts the head's
PostgreSQL-backed, authenticated tracking server, and the head's autoscaler brings up the worker.
Then ``ray rsync-up`` of tiny stores, ``ray submit`` of the smoke search (trials at the same time
on different nodes, recorded through the head's server), ``ray exec`` of ``python -m search
status``, and ``ray down``, after which neither machine runs anything (Ray, MLflow, PostgreSQL) but
its sshd."""

from __future__ import annotations

import copy
import json
import os
import secrets
import shlex
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
import torch
import yaml
from conftest import missing
from loopback_nodes import (
    USER,
    Node,
    check_tools,
    ensure_user,
    machine_lock,
    make_key,
    pip_conf,
    port_free,
    wait_empty,
)
from test_search_cluster import free_port, ray_cli
from test_search_support import REPO, check_trial_placement, cli_env, write_tiny_stores

LOCAL_YAML = REPO / "conf" / "cluster" / "local.yaml"
HEAD, WORKER = "127.0.0.1", "127.0.0.2"


def _ports(*names: str) -> str:
    return " ".join(f"--{name}={free_port()}" for name in names)


def derive_config(folder: Path, key: Path, secrets_file: Path, credentials: Path) -> dict:
    """local.yaml for the two loopback machines: its commands unchanged but for options a shared
    host needs (ports picked free, each node's own IP and one CPU) and the CPU torch build of this
    checkout; local secrets from ``folder``, never from this machine's ~/.avfusion."""
    config = yaml.safe_load(LOCAL_YAML.read_text())
    derived = copy.deepcopy(config)
    derived["cluster_name"] = f"avfusion-test-{secrets.token_hex(4)}"
    derived["provider"] = {"type": "local", "head_ip": HEAD, "worker_ips": [WORKER]}
    derived["auth"] = {"ssh_user": USER, "ssh_private_key": str(key)}
    derived["min_workers"] = derived["max_workers"] = 1
    mounts = derived["file_mounts"]
    assert mounts.pop("~/.avfusion/mlflow-auth.env") and mounts.pop("~/.mlflow/credentials")
    mounts |= {
        "~/.avfusion/mlflow-auth.env": str(secrets_file),
        "~/.mlflow/credentials": str(credentials),
    }
    gcs, mlflow, postgres = free_port(), free_port(), free_port()
    ports = {"gcs": gcs, "mlflow": mlflow, "postgres": postgres, "dashboard": free_port()}
    common = "--num-cpus=1 --object-store-memory=100000000 --disable-usage-stats"
    node_ports = ("node-manager-port", "object-manager-port", "metrics-export-port",
                  "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port")  # fmt: skip
    head_env = f"AVFUSION_RAY_PORT={gcs} AVFUSION_MLFLOW_PORT={mlflow} AVFUSION_PG_PORT={postgres}"
    head_options = f"{common} --dashboard-port={ports['dashboard']} " + _ports(
        "ray-client-server-port", *node_ports
    )
    worker_options = f"--node-ip-address={WORKER} {common} " + _ports(*node_ports)
    torch_spec = f"AVFUSION_TORCH_SPEC=torch=={torch.__version__}"

    def edit(commands: list[str], prefix: str, script: str, suffix: str = "") -> list[str]:
        edited = [f"{prefix} {c}{suffix}" if script in c else c for c in commands]
        assert edited != commands, f"local.yaml no longer runs {script}"
        return edited

    derived["head_setup_commands"] = edit(
        config["head_setup_commands"], torch_spec, "node-setup.sh"
    )
    derived["worker_setup_commands"] = edit(
        config["worker_setup_commands"], torch_spec, "node-setup.sh"
    )
    derived["head_start_ray_commands"] = edit(
        config["head_start_ray_commands"], head_env, "start-head.sh", f" {head_options}"
    )
    derived["worker_start_ray_commands"] = edit(
        config["worker_start_ray_commands"], f"AVFUSION_RAY_PORT={gcs}", "start-worker.sh",
        f" {worker_options}",
    )  # fmt: skip
    derived["_test_ports"] = ports
    return derived


def ray(*args: str, timeout: float, log: Path) -> subprocess.CompletedProcess:
    """A ``ray`` cluster command as a user types it, in the checkout, its output kept in ``log``."""
    env = cli_env({"RAY_USAGE_STATS_ENABLED": "0"})
    result = subprocess.run(
        [ray_cli(), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    with open(log, "a") as out:
        out.write(
            f"$ ray {shlex.join(args)}\n{result.stdout}\n{result.stderr}\nrc={result.returncode}\n"
        )
    return result


def tail(result: subprocess.CompletedProcess, node_logs: str = "") -> str:
    return (result.stdout[-6000:] + "\n" + result.stderr[-4000:] + "\n" + node_logs)[-12000:]


def monitor_logs(head: Node) -> str:
    """The head autoscaler's log (it sets the worker up), for a failure message."""
    logs = sorted((head.tmp / "ray").glob("session_*/logs/monitor.*"))
    return "".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs if p.is_file())


def wait_nodes(dashboard: str, count: int, timeout: float, head: Node) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{dashboard}/nodes?view=summary", timeout=10) as response:
                summary = json.loads(response.read())["data"]["summary"]
            if sum(n.get("raylet", {}).get("state") == "ALIVE" for n in summary) >= count:
                return
        except (OSError, KeyError, ValueError):
            pass
        time.sleep(5)
    pytest.fail(f"the worker did not join within {timeout} s:\n{monitor_logs(head)[-8000:]}")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_ray_up_submit_exec_down_on_two_loopback_machines(tmp_path: Path):
    sshd = check_tools()
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        missing("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
    tmp_path.chmod(0o755)
    with machine_lock():
        if not (port_free(HEAD, 22) and port_free(WORKER, 22)):
            missing(
                "port 22 on 127.0.0.1 or 127.0.0.2 is taken (a system sshd?): the nodes need it"
            )
        _run_cluster(tmp_path, sshd)


def _run_cluster(tmp_path: Path, sshd: str) -> None:
    from mlflow.tracking import MlflowClient

    user = ensure_user()
    key = make_key(tmp_path)
    password, pg_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16) + "'q"
    secrets_file, credentials = tmp_path / "mlflow-auth.env", tmp_path / "credentials"
    secrets_file.write_text(
        f'MLFLOW_AUTH_ADMIN_PASSWORD={password}\nAVFUSION_PG_PASSWORD="{pg_password}"\n'
    )
    credentials.write_text(
        f"[mlflow]\nmlflow_tracking_username = admin\nmlflow_tracking_password = {password}\n"
    )
    secrets_file.chmod(0o600), credentials.chmod(0o600)
    config = derive_config(tmp_path, key, secrets_file, credentials)
    ports = config.pop("_test_ports")
    cluster_yaml = tmp_path / "cluster.yaml"
    cluster_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    log = tmp_path / "ray-cli.log"
    nodes = [Node("head", HEAD, tmp_path / "head"), Node("worker", WORKER, tmp_path / "worker")]
    down = False
    try:
        settings = pip_conf()
        for node in nodes:
            node.provision(sshd, user, key.with_suffix(".pub").read_text(), settings)
        head = nodes[0]

        up = ray("up", "-y", "--no-config-cache", "--disable-usage-stats", str(cluster_yaml),
                 timeout=1800, log=log)  # fmt: skip
        assert up.returncode == 0, tail(up, monitor_logs(head))
        assert "MLflow tracking server on port" in up.stdout + up.stderr, tail(up)
        dashboard = f"http://127.0.0.1:{ports['dashboard']}"
        wait_nodes(dashboard, 2, 1800, head)

        stores = write_tiny_stores(
            tmp_path / "stores", visual=("basic", "f-mean", "f-meanstd", "f-ar-mean"),
            audio=("spectrogram", "logmel"),
        )  # fmt: skip
        synced = ray("rsync-up", str(cluster_yaml), f"{stores}/", "stores/", timeout=300, log=log)
        assert synced.returncode == 0, tail(synced)

        uri = f"http://{HEAD}:{ports['mlflow']}"
        submit = ray(
            "submit", str(cluster_yaml), "search/run.py", "--",
            "avfusion/conf/search/demo.yaml", "--smoke-test", "--set", "stores.root=stores",
            "--set", f"tracking.uri={uri}", "--set", "budget.time_limit_s=900",
            timeout=1500, log=log,
        )  # fmt: skip
        assert submit.returncode == 0, tail(submit, monitor_logs(head))
        assert "leaderboard" in submit.stdout, tail(submit)

        status = ray("exec", str(cluster_yaml), f"python -m search status demo --tracking-uri {uri}",
                     timeout=300, log=log)  # fmt: skip
        assert status.returncode == 0, tail(status)

        os.environ.pop("MLFLOW_TRACKING_URI", None)
        client_env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
        os.environ.update(client_env)
        try:
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name("demo")
            assert experiment.artifact_location.startswith("mlflow-artifacts:")
            runs = client.search_runs([experiment.experiment_id])
        finally:
            for name in client_env:
                os.environ.pop(name, None)
        trials = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
        assert len(trials) == 4, [r.data.tags.get("avfusion.status") for r in trials]
        trial_nodes = {r.data.tags["avfusion.node_id"] for r in trials}
        overlapping = check_trial_placement(trials)  # trials at the same time: both machines
        print(f"{overlapping} overlapping trial pairs, trials on {len(trial_nodes)} node(s)")
        statuses = {r.data.tags["avfusion.status"] for r in trials}
        assert "finished" in statuses and statuses <= {"finished", "stopped_early"}, statuses
        for run in trials:  # `search status` on the head lists every trial
            assert run.info.run_id[:8] in status.stdout, status.stdout
        # The runs are in the head's PostgreSQL, and nothing went to a SQLite file.
        with psycopg.connect(host="127.0.0.1", port=ports["postgres"], dbname="mlflow",
                             user="mlflow", password=pg_password) as db:  # fmt: skip
            count = db.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'").fetchone()[0]
        assert count >= len(trials)
        assert not list((head.home / "avfusion").rglob("mlflow.db"))
        assert list((head.home / "avfusion" / "mlruns" / "artifacts").rglob("scores.npz"))

        result = ray("down", "-y", str(cluster_yaml), timeout=600, log=log)
        down = result.returncode == 0
        assert down, tail(result)
        # Ray's head stops at once; the worker's raylet ends when it loses the head, the tracking
        # server and its PostgreSQL when track-head.sh sees Ray's head gone.
        left = wait_empty(nodes, timeout=240)
        assert not left, json.dumps(left, indent=1)
        assert port_free("127.0.0.1", ports["mlflow"]) and port_free("127.0.0.1", ports["postgres"])
    finally:
        if not down:
            ray("down", "-y", str(cluster_yaml), timeout=600, log=log)
        for node in nodes:
            node.stop()
        for suffix in ("state", "lock"):
            Path(f"/tmp/ray/cluster-{config['cluster_name']}.{suffix}").unlink(missing_ok=True)
        # Each node's home holds a full venv: not kept among pytest's last three tmp folders.
        for node in nodes:
            shutil.rmtree(node.home, ignore_errors=True)
