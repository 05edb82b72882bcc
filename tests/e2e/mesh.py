"""examples/mesh as the e2e tests that change it use it."""

from __future__ import annotations

import contextlib
import copy

from tests.lab.saltmaster import describe_failures, summarize
from tests.lab.topologies import Deployment, diagnostics

MESH_IP = {"mesh1": "10.10.0.1", "mesh2": "10.10.0.2", "mesh3": "10.10.0.3"}


def handshake(dep: Deployment, within: float = 30) -> None:
    """Every node reaches every other through the tunnel."""
    for src in MESH_IP:
        for dst, ip in MESH_IP.items():
            if src != dst:
                assert dep[src].ping_until(ip, within=within).received, (
                    f"{src} -> {dst}\n{diagnostics(dep)}")


@contextlib.contextmanager
def deployed_mesh(lab):
    """The mesh built, applied and handshaking; `dep.base` keeps the example's pillar."""
    with lab.section():
        dep = Deployment(lab, "mesh").build()
        dep.base = copy.deepcopy(dep.pillar)
        dep.apply()
        handshake(dep)
        yield dep


def apply(dep: Deployment, pillar: dict, minions: list[str]) -> dict:
    """Give the master this pillar and apply it on `minions`; fail on failed states."""
    dep.pillar = pillar
    dep.lab.master.write_pillar(pillar)
    ret = dep.lab.master.state_apply(minions)
    assert sorted(ret) == sorted(minions), ret
    failures = describe_failures(ret)
    assert not failures, failures
    return summarize(ret)
