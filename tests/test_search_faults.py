"""Issue 12, search faults: one driver per search name, preflight errors in seconds with nothing left
RUNNING, one line per failed trial and a non-zero exit when none finished, a local Ray that listens
on loopback only and leaves no process behind a SIGKILLed driver."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_tool
from test_search_support import cli_env, run_cli, search_args, write_tiny_stores

from search import watchdog
from search.lock import SearchLock

HOLD = """
import sys, time
from search.lock import SearchLock
with SearchLock(sys.argv[1], "demo"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_driver_on_the_same_name_exits_2_naming_the_holder(tmp_path: Path):
    storage = tmp_path / "ray_results"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(storage)], stdout=subprocess.PIPE, text=True, env=cli_env()
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        root = write_tiny_stores(tmp_path / "stores")
        for args in (search_args(root, tmp_path), ["resume", "demo", "--storage", str(storage)]):
            second = run_cli("search", args, tmp_path, timeout=60)
            assert second.returncode == 2, second.stderr
            line = second.stderr.strip()
            assert len(line.splitlines()) == 1
            assert f"search 'demo' is already driven by pid {holder.pid} on" in line
    finally:
        holder.send_signal(signal.SIGKILL)  # a crashed driver: the kernel releases its lock
        holder.wait()
    with SearchLock(str(storage), "demo") as held:
        assert f"pid {os.getpid()}" in held


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _runs(work: Path) -> list:
    from mlflow.tracking import MlflowClient

    if not (work / "mlruns" / "mlflow.db").exists():
        return []
    client = MlflowClient(f"sqlite:///{work}/mlruns/mlflow.db")
    return client.search_runs([e.experiment_id for e in client.search_experiments()])


@pytest.mark.parametrize(
    ("env", "extra", "expected"),
    [
        ({"RAY_ADDRESS": f"127.0.0.1:{_free_port()}"}, [], "no Ray head answers at 127.0.0.1:"),
        ({"RAY_ADDRESS": "not an address"}, [], "expected HOST:PORT of a Ray head"),
        ({}, ["--set", "storage_path=/proc/avfusion-runs"], "cannot write in /proc"),
    ],
    ids=["nothing-there", "unjoinable", "read-only-storage"],
)
def test_preflight_errors_are_one_line_in_seconds_with_nothing_running(
    tmp_path: Path, env, extra, expected
):
    root = write_tiny_stores(tmp_path / "stores")
    started = time.monotonic()
    result = run_cli("search", search_args(root, tmp_path, *extra), tmp_path, timeout=120, env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not [r for r in _runs(tmp_path) if r.info.status == "RUNNING"]
    print(f"preflight answered in {elapsed:.1f} s")  # reported, never a pass condition


def _listening(pids: set[int]) -> list[str]:
    """Local addresses ``ss`` shows listening for any of ``pids``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [
        line.split()[3] for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids)
    ]


def _loopback(address: str) -> bool:
    return address.startswith(("127.", "[::1]", "[::ffff:127."))


@pytest.mark.slow
def test_every_trial_failing_is_one_line_each_and_exit_1_on_loopback_only(tmp_path: Path):
    require_tool("ss")
    root = write_tiny_stores(tmp_path / "stores")
    args = search_args(root, tmp_path, "--num-cpus", "2", "--set", "trial.device=cuda")
    args += ["--set", "budget.max_failures=1"]  # each trial is retried once, counted once
    args += ["--set", "budget.time_limit_s=3000"]  # the resume below runs on the same budget
    driver = subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    addresses: set[str] = set()
    while driver.poll() is None:
        addresses.update(_listening({driver.pid, *watchdog.descendants(driver.pid)}))
        time.sleep(1)
    stdout, stderr = driver.communicate(timeout=300)
    assert addresses, "the local Ray never listened: the check saw nothing"
    assert all(_loopback(a) for a in addresses), sorted(addresses)
    assert driver.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 8, stderr
    assert "no trial finished (0 finished, 0 stopped early, 4 failed)" in stderr
    lines = [line.strip() for line in stdout.replace("\r", "\n").splitlines()]
    ended = [line for line in lines if line.startswith("trial ")]  # one line per ended trial
    assert len(ended) == 4 and all("failed: ConfigError: device: " in e for e in ended), ended
    runs = _runs(tmp_path)
    parent = [r for r in runs if r.data.tags.get("avfusion.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("avfusion.kind") == "trial"]
    assert [r.info.status for r in parent] == ["FAILED"]
    assert len(trials) == 4 and {r.info.status for r in trials} == {"FAILED"}
    assert len({r.data.tags["avfusion.trial_id"] for r in trials}) == 4  # retries replaced
    assert parent[0].data.tags["avfusion.driver"].startswith(f"pid {driver.pid} on ")
    assert {r.data.tags["avfusion.visual_deep_validated"] for r in trials} == {"false"}

    # `resume` reruns every trial of the budget that has no finished or stopped-early run: the
    # failed ones train again (and fail again), each still with exactly one run.
    storage = str(tmp_path / "ray_results")
    resumed = run_cli("search", ["resume", "demo", "--storage", storage, "--num-cpus", "2"],
                      tmp_path, timeout=300)  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr[-3000:]
    again = [r for r in _runs(tmp_path) if r.data.tags.get("avfusion.kind") == "trial"]
    assert len(again) == 4 and len({r.data.tags["avfusion.trial_id"] for r in again}) == 4
    assert not {r.info.run_id for r in again} & {r.info.run_id for r in trials}


@pytest.mark.slow
def test_a_sigkilled_driver_leaves_no_ray_process_behind(tmp_path: Path):
    root = write_tiny_stores(tmp_path / "stores")
    args = search_args(root, tmp_path, "--num-cpus", "2", "--set", "budget.epochs=50")
    args += ["--set", "budget.grace_period=50", "--set", "budget.time_limit_s=600"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "search", *args],
        cwd=tmp_path, env=cli_env(), stdout=open(tmp_path / "out.txt", "w"),  # noqa: SIM115
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    noted: dict[int, int] = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # until a trial trains (it has an MLflow run)
        noted.update(watchdog.descendants(driver.pid))
        # The database is ours to read once the driver has made the parent run in it.
        started = "parent run" in (tmp_path / "out.txt").read_text()
        if started and any(r.data.tags.get("avfusion.kind") == "trial" for r in _runs(tmp_path)):
            break
        assert driver.poll() is None, "the search ended before a trial ran"
        time.sleep(2)
    else:
        pytest.fail("no trial started within 240 s")
    noted.update(watchdog.descendants(driver.pid))
    assert len(noted) >= 3  # gcs, raylet, agents, workers, the watchdog
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        alive = [pid for pid, started in noted.items() if watchdog.same_process(pid, started)]
        if not alive:
            break
        time.sleep(1)
    assert not alive, [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in alive]
