"""`salt-run wireguard.audit`, the `wireguard` beacon and the reactor example, in the lab:
real master, real minions, real tunnels (issue 7).

- every topology of examples/, healthy, audits clean (in test_topologies.py, on
  the deployments built there);
- pairs of the mesh broken on purpose (a swapped key, a narrowed AllowedIPs, an endpoint
  at the wrong port, one side's peer removed) are named exactly, with both minions;
- powering a node off fires the beacon's stale event on its peers, booting it again
  fires the recovery event;
- with the reactor example on the master, a peer whose DNS name moved comes back by
  itself.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import subprocess
import threading
import time

import pytest
from nacl.bindings import crypto_scalarmult_base

from tests.e2e.auditing import (
    REACTOR_CONF,
    REACTOR_CONF_PATH,
    SERIOUS,
    audit,
    local_serious,
    report,
    serious,
)
from tests.e2e.deployments import MESH_IP
from tests.lab.util import CLEAN_ENV, wait_for

MESH_KEY = {
    "mesh1": "4MVu+Y/eM0PbZeZQw+e8nqrm9R3HeYsry+yQATUQrTE=",
    "mesh2": "o1uteuVMiyuG1k2dMsi5fLR42ybYWCPaymrdmm2r/Vk=",
    "mesh3": "bKA/tQpWYRFtIAZxR+gYhl0J2KB4RXFYQoKbR9b5XRo=",
}
STALE_AFTER = 20  # seconds; the tests send traffic only while a node is unreachable


def fresh_public_key() -> str:
    return base64.b64encode(crypto_scalarmult_base(os.urandom(32))).decode()


# ---------------------------------------------------------------- the mesh, broken on purpose


def test_a_healthy_mesh_audits_clean_and_is_drawn(mesh):
    lab = mesh.lab
    data = audit(lab, MESH_IP)
    text = report(lab, MESH_IP)
    assert data["ok"] and data["problems"] == [] and data["local"] == {}, text
    assert text.startswith("WireGuard audit: OK"), text
    assert [(link["a"], link["b"], link["state"]) for link in data["links"]] == [
        ("mesh1", "mesh2", "up"),
        ("mesh1", "mesh3", "up"),
        ("mesh2", "mesh3", "up"),
    ]
    out = lab.master.salt_run("wireguard.graph", tgt="mesh*", svg="/tmp/wireguard.svg")
    assert out["graph"].startswith("graph wireguard {")
    assert out["graph"].count(" -- ") == 3 and out["graph"].count("up ") == 3, out["graph"]
    # the lab's master has Graphviz: the picture is written there, with every node in it
    assert out["svg"] == "/tmp/wireguard.svg" and out["graph_error"] is None, out
    svg = lab.master.read("/tmp/wireguard.svg")
    assert svg.lstrip().startswith(("<?xml", "<svg")), svg[:200]
    assert all(minion in svg for minion in MESH_IP), svg


def swap_key(pillar):
    peer = pillar["mesh1"]["wireguard"]["interfaces"]["wg0"]["peers"]["mesh2"]
    peer["public_key"] = fresh_public_key()


def narrow_allowed_ips(pillar):
    peer = pillar["mesh1"]["wireguard"]["interfaces"]["wg0"]["peers"]["mesh2"]
    peer["allowed_ips"] = ["10.10.0.16/28"]


def wrong_endpoint_port(pillar):
    peer = pillar["mesh1"]["wireguard"]["interfaces"]["wg0"]["peers"]["mesh2"]
    peer["endpoint"] = "198.18.0.2:51999"


def remove_one_side(pillar):
    del pillar["mesh1"]["wireguard"]["interfaces"]["wg0"]["peers"]["mesh2"]


BREAKS = {
    "swapped key": (swap_key, {("key", "mesh1", "wg0", "mesh2", "wg0")}),
    "narrowed AllowedIPs": (narrow_allowed_ips, {("allowed_ips", "mesh1", "wg0", "mesh2", "wg0")}),
    "endpoint at the wrong port": (
        wrong_endpoint_port,
        {("endpoint", "mesh1", "wg0", "mesh2", "wg0")},
    ),
    "one side's peer removed": (remove_one_side, {("asymmetric", "mesh2", "wg0", "mesh1", "wg0")}),
}


@pytest.mark.parametrize("broken", list(BREAKS))
def test_the_audit_names_exactly_the_broken_pair(restore, broken):
    dep, (breaker, expected) = restore, BREAKS[broken]
    pillar = copy.deepcopy(dep.base)
    breaker(pillar)
    dep.apply(pillar, ["mesh1"])
    # both ends try to talk: what a user would do before calling the audit
    for src, dst in (("mesh1", "mesh2"), ("mesh2", "mesh1")):
        dep[src].ping(MESH_IP[dst], count=2, interval=0.2, wait=1)
    data = audit(dep.lab, MESH_IP)
    text = report(dep.lab, MESH_IP)
    assert not data["ok"], text
    assert serious(data) == expected, text
    (problem,) = [p for p in data["problems"] if p["severity"] in SERIOUS]
    assert (
        problem["minion"] in problem["message"] and problem["peer_minion"] in (problem["message"])
    ), problem
    assert problem["fix"].endswith("."), problem
    assert problem["fix"].count(". ") == 0, f"one sentence: {problem['fix']}"
    # whatever a single minion notices is about that pair, never about mesh3
    assert set(local_serious(data)) <= {"mesh1", "mesh2"}, text
    states = {(link["a"], link["b"]): link["state"] for link in data["links"]}
    assert states[("mesh1", "mesh3")] == states[("mesh2", "mesh3")] == "up", text
    assert states[("mesh1", "mesh2")] in ("broken", "one-way"), text


# ---------------------------------------------------------------- beacon and reactor


class MasterEvents:
    """`salt-run state.event` in the master container, read line by line."""

    def __init__(self, master):
        self.events: list[tuple[str, dict]] = []
        self.proc = subprocess.Popen(
            [
                "nsenter",
                "-t",
                str(master.pid1),
                "-a",
                "salt-run",
                "state.event",
                "*",
                "pretty=False",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=CLEAN_ENV,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # listening once an event fired after the start shows up
        wait_for(
            lambda: (
                master.run(["salt-run", "event.send", "wgaudit/listening"], check=False)
                and self.seen("wgaudit/listening")
            ),
            60,
            "the master's event bus listener",
        )

    def _read(self):
        for line in self.proc.stdout:
            tag, _, data = line.rstrip("\n").partition("\t")
            try:
                self.events.append((tag, json.loads(data) if data else {}))
            except ValueError:
                continue

    def seen(self, prefix):
        return [(t, d) for t, d in list(self.events) if t.startswith(prefix)]

    def beacon(self, minion=None):
        """(minion, tag suffix, data) of every wireguard beacon event so far. The master
        may publish one event twice (same tag, same time stamp): it is counted once."""
        out, stamps = [], set()
        for tag, data in self.seen("salt/beacon/"):
            parts = tag.split("/")
            if (tag, data.get("_stamp")) in stamps:
                continue
            stamps.add((tag, data.get("_stamp")))
            if len(parts) == 5 and parts[3] == "wireguard" and minion in (None, parts[2]):
                out.append((parts[2], parts[4], data))
        return out

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def events(mesh):
    listener = MasterEvents(mesh.lab.master)
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def beacons(mesh):
    """The wireguard beacon on mesh2 and mesh3 (interval 1 s, stale after 20 s)."""
    master = mesh.lab.master
    config = [{"interval": 1}, {"stale_after": STALE_AFTER}, {"renotify": 0}]
    ret = master.salt(["mesh2", "mesh3"], "beacons.add", "wireguard", config)
    assert all(v.get("result") for v in ret.values()), ret
    try:
        yield ["mesh2", "mesh3"]
    finally:
        master.salt(["mesh2", "mesh3"], "beacons.delete", "wireguard")


class Pinger:
    """`ping -i 0.5` as a transient unit inside a container."""

    def __init__(self, host, dst):
        self.host = host
        self.unit = host.systemd_run(["ping", "-i", "0.5", dst], "wgaudit-ping")

    def stop(self):
        self.host.run(["systemctl", "stop", self.unit], check=False)


def beacon_diagnostics(master, host, events) -> str:
    """What a missing beacon event needs explained: the events so far, the minion's
    beacons, its link states and its interface (``wg show``: no key but public ones)."""
    return "\n".join(
        [
            json.dumps(events.beacon(), indent=1),
            json.dumps(master.salt(host.name, "beacons.list", return_yaml=False), indent=1),
            json.dumps(master.salt(host.name, "wireguard.link_states"), indent=1),
            host.out(["wg", "show", "wg0"]),
        ]
    )


def wait_beacon(events, minion, tag, timeout, detail=None, after=0, peer=MESH_KEY["mesh1"]):
    """The events ``tag`` about ``peer`` from ``minion``, once there is one (among those
    after the first ``after`` events of that minion)."""
    return wait_for(
        lambda: [
            d for m, t, d in events.beacon(minion)[after:] if t == tag and d.get("peer") == peer
        ],
        timeout,
        f"the wireguard beacon's '{tag}' event from {minion}",
        detail=detail or (lambda: json.dumps(events.beacon(), indent=1)),
    )


def test_powering_a_node_off_and_on_fires_stale_then_recovered(mesh, events, beacons):
    lab, mesh1 = mesh.lab, mesh["mesh1"]
    pingers, down = {}, False
    try:
        mesh1.signal_poweroff()
        mesh1.wait_stopped()
        down = True
        # the others send to it now; nothing comes back
        pingers = {m: Pinger(mesh[m], MESH_IP["mesh1"]) for m in beacons}
        for minion in beacons:
            (stale,) = wait_beacon(events, minion, "stale", STALE_AFTER + 60)
            assert stale["interface"] == "wg0" and stale["peer"] == MESH_KEY["mesh1"]
            assert stale["name"] == "mesh1" and stale["id"] == minion
            assert stale["age"] > STALE_AFTER and stale["endpoint"] == "198.18.0.1:51820"
        mesh1.start()
        mesh1.wait_booted()
        down = False
        for minion in beacons:
            (recovered,) = wait_beacon(events, minion, "recovered", 90)
            pingers.pop(minion).stop()  # a working link: no traffic needed any more
            assert recovered["peer"] == MESH_KEY["mesh1"] and recovered["age"] <= STALE_AFTER
            assert recovered["stale_for"] > 0
        time.sleep(3)
        for minion in beacons:  # one event each way, and none about the other links
            assert [(t, d["name"]) for _, t, d in events.beacon(minion)] == [
                ("stale", "mesh1"),
                ("recovered", "mesh1"),
            ], events.beacon()
        assert {m for m, _, _ in events.beacon()} == set(beacons)
    finally:
        for pinger in pingers.values():
            pinger.stop()
        if down:
            mesh1.start()
            mesh1.wait_booted()
        lab.master.wait_minions(["mesh1"])


@pytest.fixture
def reactor(mesh):
    """The master with the reactor example: the e2e lab's master has it from its start
    (no restart of the master here); the jids of jobs from now on sort after `since`."""
    master = mesh.lab.master
    assert REACTOR_CONF in master.read(REACTOR_CONF_PATH)
    master.since = master.out(["date", "+%Y%m%d%H%M%S%6N"]).strip()
    return master


def move_address(host, old, new):
    """The node moves: its internet address changes (the primary goes first, so the
    kernel does not drop the new one with it)."""
    host.run(f"ip addr del {old}/24 dev eth0 && ip addr add {new}/24 dev eth0")


def test_the_reactor_brings_back_a_peer_whose_dns_name_moved(restore, reactor, events, beacons):
    dep = restore
    mesh1, mesh2 = dep["mesh1"], dep["mesh2"]
    pillar = copy.deepcopy(dep.base)
    pillar["mesh2"]["wireguard"]["interfaces"]["wg0"]["peers"]["mesh1"]["endpoint"] = (
        "mesh1.example.net:51820"
    )
    hosts = mesh2.read("/etc/hosts")
    mesh2.write("/etc/hosts", hosts + "198.18.0.1 mesh1.example.net\n")
    moved = False
    pinger = None
    try:
        dep.apply(pillar, ["mesh2"])
        assert mesh2.ping_until(MESH_IP["mesh1"], within=30).received
        # mesh1 gets a new address and its DNS record follows; mesh2 still sends to the
        # old one (mesh1 sends nothing, so WireGuard's roaming cannot fix it)
        move_address(mesh1, "198.18.0.1", "198.18.0.21")
        moved = True
        mesh2.write("/etc/hosts", hosts + "198.18.0.21 mesh1.example.net\n")
        before = len(events.beacon("mesh2"))
        pinger = Pinger(mesh2, MESH_IP["mesh1"])
        (stale,) = wait_beacon(
            events,
            "mesh2",
            "stale",
            STALE_AFTER + 60,
            after=before,
            detail=lambda: beacon_diagnostics(dep.lab.master, mesh2, events),
        )
        assert stale["endpoint"] == "198.18.0.1:51820", stale
        (recovered,) = wait_beacon(
            events,
            "mesh2",
            "recovered",
            90,
            after=before,
            detail=lambda: mesh2.out(["wg", "show", "wg0"]) + json.dumps(events.beacon()),
        )
        # found at its new address; its session may be the same (no new handshake)
        assert recovered["endpoint"] == "198.18.0.21:51820", recovered
        jobs = reactor.salt_run("jobs.list_jobs")
        assert isinstance(jobs, dict), jobs
        assert any(
            job.get("Function") == "wireguard.reresolve"
            and job.get("Target") in ("mesh2", ["mesh2"])
            and jid > reactor.since
            for jid, job in jobs.items()
        ), ("the reactor called wireguard.reresolve on mesh2 during this test", jobs)
    finally:
        if pinger:
            pinger.stop()
        if moved:
            move_address(mesh1, "198.18.0.21", "198.18.0.1")
        mesh2.write("/etc/hosts", hosts)
