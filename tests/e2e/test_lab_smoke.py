"""The lab itself, without the formula: containers boot real systemd, minions answer
the master, states run, and hand-made wg-quick tunnels pass packets. If these fail,
the e2e tests of the formula prove nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WG_CONF = """\
[Interface]
Address = {address}
ListenPort = 51820
PrivateKey = {private}

[Peer]
PublicKey = {peer_public}
AllowedIPs = {allowed}
Endpoint = {endpoint}:51820
"""


def test_master_minions_and_a_trivial_state(section):
    lab = section
    a = lab.container("smoke-a")
    b = lab.container("smoke-b")
    lab.wait_ready()
    master = lab.master
    assert master.salt(["smoke-a", "smoke-b"], "test.ping") == {"smoke-a": True, "smoke-b": True}
    assert master.salt("smoke-a", "grains.get", "init") == {"smoke-a": "systemd"}
    ret = master.salt(
        "smoke-b",
        "state.single",
        "file.managed",
        "/tmp/lab-smoke",
        contents="hello from the master",
    )
    (state,) = ret["smoke-b"].values()
    assert state["result"] is True and state["changes"]
    assert b.read("/tmp/lab-smoke").strip() == "hello from the master"
    # each container has its own overlay: a's file system did not see the write
    assert not a.file_exists("/tmp/lab-smoke")
    # the master serves the checkout: the formula's modules are on the minion (salt
    # '*' saltutil.sync_all), its runner on the master (salt-run saltutil.sync_all)
    assert a.file_exists("/var/cache/salt/minion/extmods/modules/wireguard.py")
    assert master.file_exists("/var/cache/salt/master/extmods/runners/wireguard.py")
    # the container's network namespace is the lab's, with /proc/sys/net writable
    a.run(["sysctl", "-w", "net.ipv4.ip_forward=1"])
    assert a.out(["cat", "/proc/sys/net/ipv4/ip_forward"]).strip() == "1"


def test_handmade_wg_quick_tunnel_survives_reboot(section):
    lab = section
    left = lab.container("wg-left", minion=False)
    right = lab.container("wg-right", minion=False)
    wire = lab.bridge("smoke")
    wire.attach(left, "eth0", "198.18.1.1/24")
    wire.attach(right, "eth0", "198.18.1.2/24")
    lab.wait_ready()
    keys = {}
    for host in (left, right):
        private = host.out(["wg", "genkey"]).strip()
        keys[host.name] = (private, host.out(["wg", "pubkey"], input=private).strip())
    for host, peer, addr, peer_addr in (
        (left, right, "10.99.0.1", "198.18.1.2"),
        (right, left, "10.99.0.2", "198.18.1.1"),
    ):
        host.write(
            "/etc/wireguard/wg0.conf",
            WG_CONF.format(
                address=f"{addr}/24",
                private=keys[host.name][0],
                peer_public=keys[peer.name][1],
                allowed=peer_addr.replace("198.18.1", "10.99.0") + "/32",
                endpoint=peer_addr,
            ),
            mode=0o600,
        )
        host.systemctl("enable", "--now", "wg-quick@wg0")
    assert left.ping_until("10.99.0.2").received
    assert right.ping("10.99.0.1", count=5, interval=0.05).ok
    # wireguard-go, not a kernel module, carries it
    assert "wireguard-go" in right.out(["ps", "-eo", "comm"])
    took = right.reboot()
    assert right.unit_state("wg-quick@wg0") == ("active", "enabled")
    assert right.ping_until("10.99.0.1", within=30).received, f"after reboot ({took:.1f}s)"


def test_section_leaves_nothing_behind(lab):
    with lab.section():
        c = lab.container("gone-soon", minion=False)
        n = lab.namespace("gone-ns")
        lab.link(c, n, "eth0", "eth0", "198.18.2.1/24", "198.18.2.2/24")
        c.wait_booted()
        assert c.ping("198.18.2.2").ok
        netns = {c.netns, n.netns}
        merged, cgroups = c.merged, c.cgroups
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in names for ns in netns)
    assert str(merged) not in Path("/proc/self/mountinfo").read_text()
    assert not any(cg.exists() for cg in cgroups)
    assert c.proc.poll() is not None


def test_a_shared_host_outlives_sections_until_its_name_is_wanted(lab):
    """What shared deployments rest on: a section leaves hosts of a shared() block
    alone; a new host of the same name has their owner let them go first, and the
    section around the new host still removes it."""
    released, old_hook = [], lab.release_shared

    def release(host):
        released.append(host.name)
        lab.remove(created)
        return True

    try:
        with lab.section(), lab.shared() as created:
            first = lab.namespace("shared-ns")
        assert lab.hosts.get("shared-ns") is first, "a section removed a shared host"
        lab.release_shared = release
        with lab.section():
            second = lab.namespace("shared-ns")
            assert released == ["shared-ns"] and lab.hosts["shared-ns"] is second
        assert "shared-ns" not in lab.hosts
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert first.netns not in names
    finally:
        lab.release_shared = old_hook
        if lab.hosts.get("shared-ns") is not None:
            lab.remove([lab.hosts["shared-ns"]])


CRASHING_LAB = """
import time
from tests.lab.lab import Lab
lab = Lab("crash", master=False).start()
c = lab.container("victim", minion=False)
n = lab.namespace("victim-lan")
lab.link(c, n, "eth0", "eth0", "198.18.3.1/24", "198.18.3.2/24")
c.wait_booted()
print(lab.id, flush=True)
time.sleep(600)
"""


def test_lab_clean_removes_what_a_killed_run_left(lab):
    """kill -9 of a lab process leaves everything behind; `./lab clean` removes it
    (and leaves the running session's own lab alone)."""
    from tests.lab.cleanup import clean, find_labs
    from tests.lab.util import REPO

    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_LAB], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        crashed = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait()
    assert crashed.startswith("wgflab-crash-")
    assert crashed in find_labs(), "the killed run left nothing to clean?"
    clean()
    assert crashed not in find_labs()
    assert lab.id in find_labs(), "clean removed a lab whose process still runs"
    assert (
        crashed
        not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    assert crashed not in Path("/proc/self/mountinfo").read_text()
    assert not any(
        (root / crashed).exists()
        for root in (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
    )
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert crashed not in ps
