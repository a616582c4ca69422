"""The ground floor: the tracking probe's one behaviour, ``key=value`` and pydantic lines, the
results contract's ``scores.npz`` round trip and refusals, and the CLI frame's exit codes."""

from __future__ import annotations

import http.server
import socket
import threading

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from avcore import results, tracking
from avcore.cli import Command, run_cli
from avcore.errors import TrackingError, UserError
from avcore.parsing import parse_key_value, pydantic_line


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    def start(status: int) -> str:
        handler = type("Handler", (_Health,), {"status": status})
        httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        started.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    started: list[http.server.HTTPServer] = []
    yield start
    for httpd in started:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("status", [200, 401, 403, 404])
def test_probe_counts_any_answer_below_500_as_a_server(server, status):
    tracking.probe(server(status))


def test_probe_fails_on_5xx_and_on_silence(server):
    uri = server(502)
    with pytest.raises(TrackingError, match=f"MLflow tracking server {uri} answered 502"):
        tracking.probe(uri)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(KeyError, match=f"127.0.0.1:{port} does not answer"):
        tracking.probe(f"http://127.0.0.1:{port}", error=KeyError)
    tracking.probe("sqlite:///nowhere/mlflow.db")  # nothing to probe


def test_open_uri_makes_sqlite_absolute_and_creates_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.open_uri()
    assert uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db" and (tmp_path / "mlruns").is_dir()
    assert tracking.artifact_root(uri) == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert tracking.artifact_root("http://h:5000") is None
    assert tracking.resolve_uri("runs") == (tmp_path / "runs").as_uri()


def test_key_value():
    assert parse_key_value("lr=1e-3") == ("lr", 1e-3)
    assert parse_key_value(" fbp_sqrt = no") == ("fbp_sqrt", False)
    assert parse_key_value("note=") == ("note", "")
    with pytest.raises(ValueError, match=r"--set 'lr': expected key=value"):
        parse_key_value("lr")
    with pytest.raises(ValueError, match=r"--set 'x=\[1': value is not valid YAML"):
        parse_key_value("x=[1")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lr: float = Field(gt=0)
    name: str


def test_pydantic_line_names_source_key_and_value():
    with pytest.raises(ValidationError) as error:
        _Model.model_validate({"lr": -1, "colour": 1})
    line = pydantic_line(error.value, "a.yaml", show_input=True)
    assert line == "a.yaml: lr: Input should be greater than 0 (got -1) (and 2 more)"
    with pytest.raises(ValidationError) as error:
        _Model.model_validate({"lr": 1, "name": "x", "colour": 1})
    assert pydantic_line(error.value) == "colour: unknown key"


def _scores(n_val: int = 3, n_test: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "clip_ids_val": np.array([f"v{i}" for i in range(n_val)]),
        "val": rng.dirichlet(np.ones(7), n_val).astype(np.float32),
        "labels_val": np.arange(n_val, dtype=np.int64) % 7,
        "clip_ids_test": np.array([f"t{i}" for i in range(n_test)]),
        "test": rng.dirichlet(np.ones(7), n_test).astype(np.float32),
    }


def test_scores_round_trip_and_refusals(tmp_path):
    written = results.write_scores(tmp_path / "scores.npz", _scores())
    read = results.read_scores(written, "trial 1")
    for key, value in _scores().items():
        np.testing.assert_array_equal(read[key], value)
    with pytest.raises(ValueError, match="and may have classes"):
        results.write_scores(tmp_path / "bad.npz", {**_scores(), "extra": np.zeros(1)})
    bad = _scores()
    bad["val"][1, 2] = np.nan
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(
        UserError, match="trial 1: .*nan.npz has NaN, Inf or negative scores for clip 'v1'"
    ):
        results.read_scores(tmp_path / "nan.npz", "trial 1")
    np.savez(tmp_path / "pickle.npz", **{**_scores(), "val": np.array([object()], dtype=object)})
    with pytest.raises(KeyError, match="cannot read"):
        results.read_scores(tmp_path / "pickle.npz", "trial 1", error=KeyError)


def test_cli_frame_exit_codes(capsys):
    def fail(args):
        raise TrackingError("server away")

    def validate(args):
        _Model.model_validate({"lr": 0, "name": "x"})

    def bug(args):
        raise RuntimeError("a bug")

    commands = {
        "fail": Command("fails", lambda p: None, fail),
        "validate": Command("validates", lambda p: None, validate),
        "bug": Command("a bug", lambda p: None, bug),
        "ok": Command("works", lambda p: None, lambda args: None),
    }
    assert run_cli("prog", "test", commands, ["ok"]) == 0
    assert run_cli("prog", "test", commands, ["fail"]) == 2
    assert capsys.readouterr().err == "prog fail: error: server away\n"
    assert run_cli("prog", "test", commands, ["validate"]) == 2
    assert capsys.readouterr().err == "prog validate: error: lr: Input should be greater than 0\n"
    with pytest.raises(RuntimeError, match="a bug"):
        run_cli("prog", "test", commands, ["bug"])
    assert run_cli("prog", "test", commands, []) == 2


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_in_a_log(monkeypatch):
    """One progress for every long loop: in a log, a status line every ``interval`` seconds and
    a last one (never a carriage return); ``leave=False`` leaves no last line; on a terminal, a
    tqdm bar."""
    import io

    from avcore import progress as module
    from avcore.progress import Progress, progress

    clock = iter(range(0, 1000, 4))  # every update 4 s after the one before
    monkeypatch.setattr(module.time, "perf_counter", lambda: float(next(clock)))
    log = io.StringIO()
    assert list(progress(range(6), desc="crops", unit="crop", stream=log, interval=10)) == [
        *range(6)
    ]
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0].startswith("crops: 3/6 crops (50.0%), ") and "ETA" in lines[0]
    assert lines[-1].startswith("crops: 6/6 crops (100.0%), ") and "took" in lines[-1]
    passing = io.StringIO()
    with Progress(3, desc="epoch 1", unit="batch", stream=passing, leave=False) as bar:
        bar.update(3)
    assert passing.getvalue() == ""
    quiet = io.StringIO()
    with Progress(3, desc="x", stream=quiet, enabled=False) as bar:
        bar.update(3)
        bar.write("a message still shows")
    assert quiet.getvalue() == "a message still shows\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    with Progress(2, desc="stores", unit="store", stream=terminal) as bar:
        bar.update(2)
    assert "\r" in terminal.getvalue() and "2/2" in terminal.getvalue()
