"""Ray for a search: join the cluster a submitted job runs in, else start a Ray on this machine
bound to 127.0.0.1, and check that some node fits one trial before any trial is queued.

A wrong ``RAY_ADDRESS`` fails in seconds with one line (Ray itself would wait minutes for a head
that is not there); a GPU request on a cluster without GPUs fails here instead of leaving every
trial pending forever; a tracking URI only this machine can reach (a loopback server, a SQLite
file) on a cluster with other machines fails here instead of failing every trial placed there.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import urllib.parse
from typing import Any

from search import watchdog
from search.config import SearchConfig
from search.errors import ClusterError
from search.quiet import quiet_third_party

LOOPBACK = "127.0.0.1"


def init_ray(num_cpus: int | None = None) -> None:
    """Join the cluster a submitted job runs in (``RAY_ADDRESS``, or one ``ray start`` brought up
    here), else start a local Ray bound to 127.0.0.1 (no dashboard): nothing of it listens
    beyond this machine."""
    import ray

    from search.adapter import cluster_started_here, serve_this_host_only

    if ray.is_initialized():
        return
    quiet_third_party()
    address = os.environ.get("RAY_ADDRESS") or cluster_started_here()
    if address:
        check_ray_address(address)
        options: dict[str, Any] = {}
    else:
        serve_this_host_only()
        options = {"num_cpus": num_cpus, "include_dashboard": False, "_node_ip_address": LOOPBACK}
    try:
        ray.init(log_to_driver=True, logging_level="WARNING", **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise ClusterError(
            f"cannot join the Ray cluster at RAY_ADDRESS={address}: {first}"
        ) from None
    if not address:
        watchdog.start()  # ends the local Ray's processes should this driver be SIGKILLed


def check_ray_address(address: str, timeout: float = 3.0) -> None:
    """Something answers at ``RAY_ADDRESS`` (``host:port`` or a dashboard URL), within seconds."""
    if address == "auto" or address.startswith("ray://"):
        return
    target = urllib.parse.urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = target.hostname, target.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterError(f"RAY_ADDRESS={address}: expected HOST:PORT of a Ray head (or auto)")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"RAY_ADDRESS={address}: no Ray head answers at {host}:{port} "
            f"({exc.strerror or exc}); start one (`ray start --head`) or unset RAY_ADDRESS"
        ) from None


def check_resources(config: SearchConfig) -> None:
    """Some alive node must fit one trial, or Tune would leave it pending forever."""
    import ray

    want = {"CPU": config.resources.cpus, "GPU": config.resources.gpu}
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0) >= v for k, v in want.items()) for node in nodes):
        return
    total_gpus = sum(n.get("GPU", 0) for n in nodes)
    if config.resources.gpu > 0 and total_gpus < config.resources.gpu:
        raise ClusterError(
            f"resources.gpu={config.resources.gpu} but the Ray cluster has "
            f"{total_gpus if total_gpus else 'no'} GPU{'' if total_gpus == 1 else 's'}; "
            "run with --set resources.gpu=0 or start GPU workers (conf/cluster/gpu.yaml)"
        )
    biggest = max((n.get("CPU", 0) for n in nodes), default=0)
    raise ClusterError(
        f"resources.cpus={config.resources.cpus} but the largest Ray node has {biggest:g} CPUs; "
        "lower resources.cpus"
    )


def check_tracking_reach(uri: str) -> None:
    """Every trial logs to ``uri`` from the node Ray places it on: refuse one that the cluster's
    other machines cannot reach (``local_only_reason``)."""
    import ray

    driver = ray.util.get_node_ip_address()
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]
    reason = local_only_reason(uri, driver, nodes)
    if reason:
        raise ClusterError(reason)


def local_only_reason(uri: str, driver_ip: str, node_ips: list[str]) -> str | None:
    """Why trials on other machines could not log to ``uri``, or None. Another machine is a node
    whose address is neither the driver's nor a loopback one (nodes on 127.0.0.x share this host,
    as ``ray up`` over SSH to loopback addresses does)."""
    others = sorted({ip for ip in node_ips if ip != driver_ip and not _loopback(ip)})
    if not others:
        return None
    target = urllib.parse.urlsplit(uri)
    if target.scheme in ("http", "https"):
        if not _loopback(target.hostname or ""):
            return None
        what = f"a server on this machine's loopback ({target.hostname})"
    elif target.scheme in ("sqlite", "file", ""):
        what = "a file on this machine"
    else:
        return None  # postgresql://, databricks, ...: reachable as configured
    return (
        f"tracking URI {uri} is {what}, but the Ray cluster has {len(others)} other "
        f"machine{'s' if len(others) > 1 else ''} ({', '.join(others[:3])}) whose trials log to "
        "it: serve MLflow on an address they reach and pass it "
        "(--set tracking.uri=http://HEAD_IP:5000, README 'Cluster')"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
