"""The topologies of examples/ deployed for the e2e tests that change them (the `mesh`
and `restore` fixtures of conftest.py, the hardening tests' `tunnel`), and the pieces
the mine-driven network tests share (containers on one internet switch, the
orchestration)."""

from __future__ import annotations

import copy

import pytest

from tests.lab.saltmaster import describe_failures
from tests.lab.topologies import Deployment, diagnostics
from tests.lab.util import LabError

MESH_IP = {"mesh1": "10.10.0.1", "mesh2": "10.10.0.2", "mesh3": "10.10.0.3"}


def orchestrate(master, step_timeout=None):
    """`salt-run state.orch wireguard.orchestrate`, every step of it successful;
    ``step_timeout``: the orchestration's `wireguard_orchestrate:timeout`."""
    kwargs = {}
    if step_timeout:
        kwargs["pillar"] = {"wireguard_orchestrate": {"timeout": step_timeout}}
    ret = master.salt_run("state.orch", "wireguard.orchestrate", timeout=900, **kwargs)
    text = str(ret)
    assert "'result': False" not in text and '"result": false' not in text, (
        "\n".join(_failed(ret))[:6000] or text[:4000]
    )
    return ret


def _failed(data, where="") -> list[str]:
    """Each state result False in an orchestration's return, with where it is."""
    found = []
    if isinstance(data, dict):
        if data.get("result") is False:
            found.append(f"{where}: {str(data.get('comment', data))[:1500]}")
        for key, value in data.items():
            found += _failed(value, f"{where}/{str(key)[:80]}")
    elif isinstance(data, list):
        for value in data:
            found += _failed(value, where)
    return found


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


def first_apply(dep: Deployment) -> dict:
    """The return of the deployment's first `state.apply` (a test fails here when that
    did not run)."""
    if isinstance(dep.first, Exception):
        pytest.fail(f"{dep.name}: state.apply did not run: {dep.first}")
    return dep.first


class SharedDeployments:
    """The topologies of examples/, each built and applied once per session and shared
    by every test module that uses it (test_topologies, the `mesh` fixture, the
    hardening tests' `tunnel`). `dep.first` keeps the first apply's return (or the
    LabError it raised), `dep.base` the example's pillar; a module that changes a
    deployment puts it back (`restore`). A deployment stays until the session ends, or
    until a test wants the name of one of its hosts (the lab asks the pool to let it go;
    the next `get` builds it again)."""

    def __init__(self, lab):
        self.lab = lab
        self.built: dict[str, tuple[Deployment, list]] = {}
        lab.release_shared = self._release_holder

    def get(self, topology: str) -> Deployment:
        if topology not in self.built:
            try:
                with self.lab.shared() as created:
                    dep = Deployment(self.lab, topology).build()
            except BaseException:
                self.lab.remove(created)
                raise
            self.built[topology] = (dep, created)
            dep.base = copy.deepcopy(dep.pillar)
            try:
                dep.first = dep.apply(check=False)
            except LabError as exc:
                dep.first = exc
        return self.built[topology][0]

    def release(self, topology: str) -> None:
        _, created = self.built.pop(topology)
        self.lab.remove(created)

    def _release_holder(self, host) -> bool:
        for topology, (_, created) in list(self.built.items()):
            if host in created:
                self.release(topology)
                return True
        return False

    def close(self) -> None:
        for topology in list(self.built):
            self.release(topology)


def reset(dep: Deployment) -> Deployment:
    """The minions whose last apply was not the example's pillar (a test changed it,
    or the run failed) get the example's pillar again."""
    changed = sorted(m for m in dep.base if dep.applied.get(m) != dep.base[m])
    if changed:
        dep.apply(copy.deepcopy(dep.base), changed)
    return dep


def ready(dep: Deployment) -> Deployment:
    """A shared deployment as its example describes it: the first apply succeeded, the
    example's pillar is what runs (`reset`), and every tunnel handshakes."""
    failures = describe_failures(first_apply(dep))
    assert not failures, f"{dep.name}: the first apply failed\n{failures}"
    reset(dep)
    reachable(dep)
    return dep
