"""The driver's view of the Ray cluster: connect (loopback unless told otherwise), show the
dashboard, and refuse up front a run that no set of the cluster's nodes can ever hold
(Ray would otherwise queue it forever)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from experiments.grid import GridPoint
from experiments.resources import RunResources
from lab.errors import ConfigError

INSTALL_HINT = "pip install 'scaling-lab[ray]' (or pip install 'ray[default]>=2.9')"
HIDDEN = ("memory", "object_store_memory")  # every node has them; a run never asks for them


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}"
        ) from None
    return ray


LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@contextlib.contextmanager
def loopback_cluster(
    nodes: int = 2, num_cpus: float = 1, env: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """A Ray cluster of `nodes` nodes inside this machine, every process on 127.0.0.1 (for
    tests and benches: `ray.cluster_utils.Cluster`). Its processes, and so every task, see
    `env` (default: this process's environment)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({**(saved if env is None else env), **LOOPBACK_ENV})
    try:
        from ray.cluster_utils import Cluster

        node = {"num_cpus": num_cpus, "node_ip_address": "127.0.0.1"}
        cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
        for _ in range(nodes - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        addresses = [n.node_ip_address for n in cluster.list_all_nodes()]
        if not all(a.startswith("127.") for a in [*addresses, cluster.address]):
            raise RuntimeError(f"a Ray node left the loopback address: {addresses}")
        yield cluster
    finally:
        cluster.shutdown()


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(address: str | None) -> str:
    """`ray.init` for the sweep's driver; returns the dashboard's URL ('' when none runs).

    No address: a private Ray instance on this machine, bound to 127.0.0.1. A loopback
    HOST:PORT: this machine's cluster, driver on 127.0.0.1 too (Ray would otherwise pick the
    host's external address). `auto`: the cluster `ray start` began on this host.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # the lab never phones home
    kwargs: dict[str, Any] = {}
    if address is None or is_loopback(address):
        # Read when Ray is imported: take 127.0.0.1 as this node's address instead of asking
        # the network for the external one (and keep a loopback address as it is).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        kwargs["_node_ip_address"] = "127.0.0.1"
    ray = import_ray()
    try:
        context = ray.init(address=address, log_to_driver=True, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"cannot reach a Ray cluster at --address {address}: {first}; start one with "
            "`ray start --head` (then --address auto) or give the head's HOST:PORT"
        ) from None
    return str(getattr(context, "dashboard_url", "") or "")


def alive_nodes() -> list[dict[str, float]]:
    ray = import_ray()
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def nodes_that_fit(bundle: Mapping[str, float], nodes: Iterable[Mapping[str, float]]) -> int:
    """How many nodes could each hold one process of a run (total resources, not free)."""
    return sum(all(node.get(k, 0.0) >= v for k, v in bundle.items()) for node in nodes)


def describe_nodes(nodes: list[dict[str, float]]) -> str:
    """'2 nodes: CPU=1 | CPU=1' without the resources every node has."""
    shown = [
        ", ".join(
            f"{k}={v:g}"
            for k, v in sorted(n.items())
            if k not in HIDDEN and not k.startswith("node:")
        )
        or "nothing"
        for n in nodes
    ]
    return f"{len(nodes)} node(s): " + " | ".join(shown)


def check_placeable(
    requests: list[tuple[GridPoint, RunResources]], nodes: list[dict[str, float]]
) -> None:
    """A ConfigError naming the first run that can never start, and how to fix it."""
    bad = [
        (point, res) for point, res in requests if nodes_that_fit(res.bundle(), nodes) < res.hosts
    ]
    if not bad:
        return
    point, res = bad[0]
    fit = nodes_that_fit(res.bundle(), nodes)
    custom = {k: v for k, v in res.bundle().items() if k not in ("CPU", "GPU")}
    start = "ray start --address HEAD:6379" + (f" --resources='{_json(custom)}'" if custom else "")
    raise ConfigError(
        f"{len(bad)} run(s) can never start on this Ray cluster: {point.run_id} "
        f"(N={point.N:,}) asks for {res.describe()} and {fit} node(s) can hold one of its "
        f"{res.hosts} process(es); the cluster has {describe_nodes(nodes)}. Add nodes that "
        f"have it ({start}) or change [resources] in the sweep file"
    )


def _json(table: Mapping[str, float]) -> str:
    import json

    return json.dumps({k: (int(v) if float(v).is_integer() else v) for k, v in table.items()})
