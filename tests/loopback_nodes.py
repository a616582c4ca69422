"""Machines for ``ray up`` on one host: each node is an OpenSSH server on its own loopback address
(head 127.0.0.1, worker 127.0.0.2, port 22, as Ray's SSH runner expects), in its own mount and PID
namespace. A node therefore has what a real machine has: its own home for the cluster's user (the
synced checkout, its venv, ``mlruns``), its own ``/tmp`` (Ray's session and the local provider's
state) and its own process table, so ``ray stop`` (run by ``ray up`` and ``ray down``) stops that
node's Ray only, never another node's or another engineer's. The network is the host's.

The cluster's SSH user is a non-root account made here (``USER``); its key is made per test. Every
process a node starts lives in its PID namespace, so stopping a node (its sshd is the namespace's
first process) ends whatever was left there. One cluster test at a time per machine (port 22):
``machine_lock`` serialises them across worktrees."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import missing, require_tool

USER = "avfusion-ray"
HOME = Path("/home") / USER
LOCK = Path("/run/lock/avfusion-loopback-nodes.lock")
SSHD_CONFIG = """\
ListenAddress {address}:22
HostKey {host_key}
PidFile none
UsePAM no
AllowUsers {user}
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
MaxStartups 50:30:100
MaxSessions 50
"""


def check_tools() -> str:
    """What the nodes need, skipping (failing under CI) when a piece is missing; returns sshd."""
    sshd = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/usr/local/sbin")
    if not sshd:
        missing("openssh-server is not installed (.ci/run installs it)")
    for tool in ("ssh", "ssh-keygen", "rsync", "unshare", "useradd"):
        require_tool(tool)
    if os.geteuid() != 0:
        missing("loopback SSH nodes need root (a user account, sshd on port 22, namespaces)")
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"], capture_output=True
    )
    if probe.returncode != 0:
        missing(f"cannot make mount/PID namespaces for the nodes: {probe.stderr.decode().strip()}")
    return sshd


@contextlib.contextmanager
def machine_lock(timeout: float = 1800) -> Iterator[None]:
    """One loopback cluster per machine at a time (they all need port 22 on 127.0.0.1/.2)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another loopback cluster holds {LOCK}") from None
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_user() -> pwd.struct_passwd:
    """The cluster's SSH user: no password (locked for passwords, open for keys), no real home of
    its own (each node mounts one over ``HOME``)."""
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--no-create-home", "--home-dir", str(HOME), "--shell", "/bin/bash", USER],
            check=True,
        )
        entry = pwd.getpwnam(USER)
    subprocess.run(["usermod", "-p", "*", USER], check=True)  # "!" would refuse key logins too
    HOME.mkdir(parents=True, exist_ok=True)
    return entry


def port_free(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def make_key(folder: Path) -> Path:
    key = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "avfusion-test", "-f", str(key)],
        check=True,
    )
    return key


@dataclass
class Node:
    """One machine: ``home`` is its ``~avfusion-ray``, ``tmp`` its ``/tmp``."""

    name: str
    address: str
    folder: Path
    proc: subprocess.Popen | None = None
    home: Path = field(init=False)
    tmp: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home, self.tmp = self.folder / "home", self.folder / "tmp"

    def provision(self, sshd: str, user: pwd.struct_passwd, public_key: str, pip_conf: str) -> None:
        """A fresh machine: the user's home (login key, shell rc, pip's configuration as on the
        machine running the test), an empty /tmp, then sshd in the node's namespaces."""
        for path in (self.home / ".ssh", self.home / ".config" / "pip", self.tmp):
            path.mkdir(parents=True, exist_ok=True)
        (self.home / ".ssh" / "authorized_keys").write_text(public_key)
        skel = Path("/etc/skel/.bashrc")
        (self.home / ".bashrc").write_text(skel.read_text() if skel.exists() else "")
        (self.home / ".config" / "pip" / "pip.conf").write_text(pip_conf)
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        self.home.chmod(0o755)
        (self.home / ".ssh").chmod(0o700)
        self.tmp.chmod(0o1777)
        # sshd's own files in the node's /tmp (root's, mode 700): the only paths it still sees
        # there once the node's /tmp is mounted.
        own = self.tmp / ".sshd"
        own.mkdir(mode=0o700)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(own / "host_key")], check=True
        )
        (own / "sshd_config").write_text(
            SSHD_CONFIG.format(address=self.address, host_key="/tmp/.sshd/host_key", user=USER)
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation root
        boot = (
            f"mount --bind {self.home} {HOME} && mount --bind {self.tmp} /tmp && "
            f"exec {sshd} -D -e -f /tmp/.sshd/sshd_config"
        )
        with open(self.folder / "sshd.log", "w") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
                 "sh", "-c", boot],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while port_free(self.address, 22):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: sshd did not start:\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        path = self.folder / "sshd.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def init_pid(self) -> int | None:
        """The namespace's first process (sshd), a child of ``unshare``."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = children.read_text().split() if children.exists() else []
        return int(pids[0]) if pids else None

    def processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process in the node's PID namespace but its sshds (the
        listener and the sessions of SSH connections still open)."""
        init = self.init_pid()
        if init is None:
            return []
        namespace = os.readlink(f"/proc/{init}/ns/pid")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != namespace:
                    continue
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
                name = (entry / "comm").read_text().strip()
            except OSError:
                continue  # ended while we looked
            if name not in ("sshd", "sshd-session") and not command.startswith("sshd"):
                found.append((int(entry.name), command))
        return found

    def stop(self) -> None:
        """Ends sshd, and with the namespace's first process every process left in it."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None


def wait_empty(nodes: list[Node], timeout: float) -> dict[str, list[tuple[int, str]]]:
    """Waits until no node runs anything but sshd; returns what is still running at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = {node.name: node.processes() for node in nodes}
        left = {name: procs for name, procs in left.items() if procs}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(2)


def pip_conf() -> str:
    """pip's effective settings of the machine running the test (files and PIP_* variables), as
    a node's pip.conf: the nodes install from the same indexes, wheels and caches' sources."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    settings = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        if sep and "." in key:
            settings[key.split(".", 1)[1]] = value.strip().strip("'\"")
    return "[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items()))
