"""Issue 12, "let no one in": the head's MLflow server as conf/cluster/*.yaml start it
(conf/cluster/mlflow-server.sh, MLflow's basic-auth app; issue 17: on SQLite and on PostgreSQL),
started for real on loopback: a smoke
search and an ensemble run through it with MLFLOW_TRACKING_USERNAME/PASSWORD, and a client
without (or with wrong) credentials is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from mlflow_server import SERVER, free_port, http_status, serve
from test_search_support import REPO, cli_env, run_cli, search_args, write_tiny_stores

CLUSTERS = sorted((REPO / "conf" / "cluster").glob("*.yaml"))


@pytest.mark.parametrize("path", CLUSTERS, ids=lambda p: p.stem)
def test_cluster_configs_start_mlflow_behind_auth_with_no_secret_in_the_repo(path: Path):
    config = yaml.safe_load(path.read_text())
    head = " ".join(config["head_start_ray_commands"])
    assert "conf/cluster/start-head.sh" in head and "mlflow server" not in head
    start_head = (REPO / "conf" / "cluster" / "start-head.sh").read_text()
    assert "conf/cluster/mlflow-server.sh" in start_head and " postgres" in start_head
    assert "--app-name basic-auth" in SERVER.read_text()
    text = path.read_text().lower()
    assert "password=" not in text and "mlflow_tracking_password" not in text
    mounts = config["file_mounts"]
    assert any(k.endswith(".mlflow/credentials") for k in mounts)  # every node's trials


def test_the_server_refuses_to_start_without_a_password(tmp_path: Path):
    done = subprocess.run(
        [str(SERVER), str(tmp_path / "mlruns"), "127.0.0.1", str(free_port())],
        env=cli_env({"AVFUSION_MLFLOW_SECRETS": str(tmp_path / "absent.env")}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "refusing to serve without authentication" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_search_and_an_ensemble_through_an_authenticated_server(tmp_path: Path, backend: str):
    with serve(tmp_path / "server", backend) as server:
        uri, password = server.uri, server.password
        api = f"{uri}/api/2.0/mlflow/experiments/search?max_results=5"
        assert http_status(api) == 401  # no credentials
        assert http_status(api, "admin", "wrong") == 401
        assert http_status(api, "admin", password) == 200

        creds = server.credentials
        root = write_tiny_stores(tmp_path / "stores")
        extra = ["--num-cpus", "2"]
        if backend == "postgres":  # the Optuna study in the same server's database `optuna`
            port = server.env["AVFUSION_PG_PORT"]
            study_url = f"postgresql+psycopg://mlflow@127.0.0.1:{port}/optuna"
            extra += ["--set", f"tracking.optuna_storage={study_url}"]
            creds = {**creds, "PGPASSWORD": server.pg_password}
        search = run_cli("search", search_args(root, tmp_path, *extra), tmp_path, 480, creds)
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
        if backend == "postgres":  # the runs are in PostgreSQL (role mlflow, its password)
            assert not (tmp_path / "server" / "mlruns" / "mlflow.db").exists()
            import psycopg

            dsn = f"host=127.0.0.1 port={server.env['AVFUSION_PG_PORT']} dbname=mlflow user=mlflow"
            with psycopg.connect(dsn, password=server.pg_password) as db:
                count = db.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'")
                assert count.fetchone()[0] >= 2  # the search's parent run and its trials
            with psycopg.connect(
                dsn.replace("mlflow user", "optuna user"), password=server.pg_password
            ) as db:
                trials = db.execute(
                    "SELECT count(*) FROM trials JOIN studies USING (study_id)"
                    " WHERE study_name = 'demo' AND state = 'COMPLETE'"
                )
                assert trials.fetchone()[0] >= 1
