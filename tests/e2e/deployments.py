"""The topologies of examples/ deployed for the e2e tests that change them (the `mesh`
and `restore` fixtures of conftest.py, the hardening tests' `tunnel`), and the pieces
the mine-driven network tests share (containers on one internet switch, the
orchestration)."""

from __future__ import annotations

import contextlib
import copy

from tests.lab.topologies import Deployment, diagnostics

MESH_IP = {"mesh1": "10.10.0.1", "mesh2": "10.10.0.2", "mesh3": "10.10.0.3"}


def orchestrate(master):
    """`salt-run state.orch wireguard.orchestrate`, every step of it successful."""
    ret = master.salt_run("state.orch", "wireguard.orchestrate", timeout=600)
    text = str(ret)
    assert "'result': False" not in text and '"result": false' not in text, text[:4000]
    return ret


def containers_on_internet(lab, bridge, nodes, prefix):
    """A container per node on one internet switch, ``<prefix>.<n>``; (switch, hosts)."""
    inet = lab.bridge(bridge)
    hosts = {}
    for name, i in nodes.items():
        hosts[name] = lab.container(name)
        inet.attach(hosts[name], "eth0", [f"{prefix}.{i}/24"])
    lab.wait_ready()
    return inet, hosts


def reachable(dep: Deployment, within: float = 30) -> None:
    """Every ping the topology says must pass gets a reply: the tunnels handshake."""
    for ping in dep.topo.passes:
        assert dep.ping(ping, within=within).received, f"{ping}\n{diagnostics(dep)}"


@contextlib.contextmanager
def deployment(lab, topology: str):
    """The topology built, applied and reachable; `dep.base` keeps the example's pillar."""
    with lab.section():
        dep = Deployment(lab, topology).build()
        dep.base = copy.deepcopy(dep.pillar)
        dep.apply()
        reachable(dep)
        yield dep
