"""The head's tracking server exactly as the cluster YAMLs start it (conf/cluster/mlflow-server.sh,
basic-auth, SQLite or PostgreSQL), started for real on loopback by tests: start, stop, restart."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import missing
from test_search_support import REPO, cli_env

SERVER = REPO / "conf" / "cluster" / "mlflow-server.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, user: str | None = None, password: str | None = None) -> int:
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


@dataclass
class Server:
    """One ``mlflow-server.sh`` on 127.0.0.1; ``stop`` and ``start`` again keep its data."""

    folder: Path
    backend: str
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    # A quote in it: the script must pass it on to PostgreSQL intact.
    pg_password: str = field(default_factory=lambda: secrets.token_urlsafe(16) + "'q")
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.secrets = self.folder / "mlflow-auth.env"
        self.secrets.write_text(
            f"MLFLOW_AUTH_ADMIN_PASSWORD={self.password}\n"
            f'AVFUSION_PG_PASSWORD="{self.pg_password}"\n'
        )
        self.secrets.chmod(0o600)
        self.env = {"AVFUSION_MLFLOW_SECRETS": str(self.secrets)}
        if self.backend == "postgres":
            if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
                missing("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
            # The postgres system user (the server runs as root here) must reach its data.
            self.pg_parent = Path(tempfile.mkdtemp(prefix="avfusion-pg-"))
            self.pg_parent.chmod(0o755)
            self.env |= {
                "AVFUSION_PGDATA": str(self.pg_parent / "pgdata"),
                "AVFUSION_PG_PORT": str(free_port()),
            }

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }

    def start(self, wait: bool = True) -> None:
        log = open(self.folder / "server.log", "a")  # noqa: SIM115 - the child holds it
        command = [str(SERVER), str(self.folder / "mlruns"), "127.0.0.1", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, self.backend], env=cli_env(self.env),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()
        if wait:
            self.wait_up()

    def wait_up(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while http_status(f"{self.uri}/health") != 200:
            assert self.proc.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up\n" + self.log()
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM to the script's process group: the server, its workers and its PostgreSQL."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text() if path.exists() else ""


@contextlib.contextmanager
def serve(folder: Path, backend: str = "sqlite") -> Iterator[Server]:
    folder.mkdir(parents=True, exist_ok=True)
    server = Server(folder, backend)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if backend == "postgres":
            shutil.rmtree(server.pg_parent, ignore_errors=True)
