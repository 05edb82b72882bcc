"""A client's ``quota`` (issue 23) with real traffic and the real ``nft``: the formula's
table, planned and applied by the real host adapter in the server's namespace, stops a
client (real WireGuard, wireguard-go, from a second namespace) after its 1 MiB; the count
survives a change of the table and a table lost as a reboot loses it (the saver's file
brings it back); the saver sends ``wireguard/client/over_quota`` once and restarts the
count in a new period. This machine's PID 1 is no systemd: the adapter arms OpenRC's
detached saver loop, killed at the end; ``salt-call`` is a stub on PATH that logs."""

import datetime
import json
import os
import shutil
import subprocess
import time

import pytest

import wgf_firewall
import wgf_host
import wgf_keys
import wgf_layout
import wgf_openrc
import wgf_plan
import wgf_quota
from tests.support import pipeline
from tests.support.transfer import COUNTER, PUSHER
from tests.support.waiters import stop_waiter

MiB = 2**20
SERVER, CLIENT = "10.77.0.1", "10.77.0.2"

IDLE, STALL = "3", "5"  # seconds: see tests/support/transfer.py


def run_all(argv, python_shell=False, ignore_retcode=True, stdin=None, output_loglevel=None):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture
def box(loaders, pair, tmp_path, monkeypatch):
    """``pair``'s local interface (the server) with the client ``phone`` (10.77.0.2) in
    the remote namespace, the quota state directory of this test, a ``salt-call`` stub."""
    key = pair.add_remote(loaders.modules, 2, route=True)
    pair.local.run(
        [
            *("wg", "set", pair.ifname, "peer", key, "allowed-ips", f"{CLIENT}/32"),
            *("endpoint", "198.18.10.2:51822"),
        ]
    )
    stubs, log = tmp_path / "bin", tmp_path / "fired.log"
    stubs.mkdir()
    (stubs / "salt-call").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\necho \'{{"local": true}}\'\n'
    )
    (stubs / "rc-update").write_text(f'#!/bin/sh\necho "$*" >> "{tmp_path}/rc-update.log"\n')
    for stub in ("salt-call", "rc-update"):
        os.chmod(stubs / stub, 0o755)
    monkeypatch.setenv("PATH", f"{stubs}:{os.environ['PATH']}")
    monkeypatch.setattr(wgf_quota, "STATE_DIR", str(tmp_path / "quota"))
    monkeypatch.setattr(wgf_layout, "INIT_SCRIPT_DIR", str(tmp_path / "init.d"))
    monkeypatch.setattr(wgf_layout, "RUNLEVELS_DIR", str(tmp_path / "runlevels"))
    (tmp_path / "init.d").mkdir()
    host = wgf_host.Host({"cmd.run_all": run_all, "cmd.has_exec": shutil.which})
    try:
        yield pair, key, host, log
    finally:
        # the loop left the test's cgroup for its own, as it leaves salt-minion's
        stop_waiter(tmp_path / "quota" / wgf_quota.WAITER, wgf_quota.UNIT)


def iface(pair, key, firewall="nftables", **extra):
    return pipeline.interfaces(
        {
            "interfaces": {
                pair.ifname: {
                    "address": f"{SERVER}/24",
                    "listen_port": 51820,
                    "endpoint": "198.18.10.1",
                    "clients": {
                        "phone": {
                            "public_key": key,
                            "address": CLIENT,
                            "limits": {"quota": "1MiB", "period": "day"},
                        }
                    },
                    **extra,
                }
            }
        },
        "vpn",
        own_public_keys={pair.ifname: wgf_keys.pubkey(pair.local_key)},
        client_records={pair.ifname: None},
        firewall=firewall,
    )[pair.ifname]


def apply(host, interfaces, backend="nftables"):
    """What ``wireguard.firewall`` does: the plan's table and saver, applied."""
    plan = {
        **wgf_plan.firewall(host, interfaces, backend),
        **wgf_plan.quota_saver(host, interfaces, backend),
    }
    for _, _, act in plan.values():
        act()
    return plan


def used(pair):
    return wgf_quota.parse_live(
        pair.local.out(["nft", "-j", "list", "quotas", "table", "inet", "wireguard"])
    )["quota_" + pair.ifname + "_phone"]


def moved(pair, size, port):
    """Bytes of ``size`` the client sends over TCP that reach the server."""
    receiver = pair.local.popen(["python3", "-c", COUNTER, SERVER, str(port), IDLE])
    try:
        assert receiver.stdout.readline().strip() == "ready"
        pair.remote.run(["python3", "-c", PUSHER, SERVER, str(port), str(size), STALL], timeout=60)
        return int(receiver.stdout.readline().strip())
    finally:
        receiver.kill()
        receiver.wait()


PROBE = """table inet probe {
    chain input {
        type filter hook input priority filter + 10; policy accept;
        iifname "%(i)s" ip saddr %(c)s counter
    }
    chain output {
        type filter hook output priority filter + 10; policy accept;
        oifname "%(i)s" ip daddr %(c)s counter
    }
}
"""


def probe(pair):
    """A table of the test's own, after the formula's (a later priority): it counts the
    client's packets the formula's table let pass."""
    pair.local.run(["nft", "-f", "-"], input=PROBE % {"i": pair.ifname, "c": CLIENT})


def passed_bytes(pair):
    shown = json.loads(pair.local.out(["nft", "-j", "list", "table", "inet", "probe"]))
    return sum(
        expr["counter"]["bytes"]
        for item in shown["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    )


def pings(pair):
    return pair.remote.run(["ping", "-c", "2", "-W", "1", SERVER], check=False).returncode == 0


def saved_in_a_past_period(today):
    """The saver's file as if its counts were of a period long gone (a boundary the
    test can move: the saver compares the period it saved with the current one)."""
    path = f"{wgf_quota.STATE_DIR}/{wgf_quota.COUNTERS}"
    with open(path, encoding="utf-8") as handle:
        text = handle.read().replace(today, "2020-01-01")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def save(host):
    out = host.run_all([wgf_quota.SHELL, f"{wgf_quota.STATE_DIR}/{wgf_quota.SCRIPT}"])
    assert out["retcode"] == 0, out
    with open(f"{wgf_quota.STATE_DIR}/{wgf_quota.COUNTERS}", encoding="utf-8") as handle:
        return wgf_quota.parse_counters(handle.read())


def openrc(action):
    """Run the saver's OpenRC boot script's ``start`` or ``stop`` as openrc-run would."""
    script = wgf_openrc.script_path(wgf_quota.UNIT)
    run = subprocess.run(["sh", "-c", f'. "{script}" && {action}'], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_a_1mib_quota_stops_the_client_and_its_count_survives_until_a_new_period(box, tmp_path):
    pair, key, host, log = box
    name = f"quota_{pair.ifname}_phone"
    interfaces = [iface(pair, key)]
    assert pings(pair)  # the handshake, before any table
    plan = apply(host, interfaces)
    assert set(plan) == {"nftables", "quota saver"}
    assert host.quota_saver_armed()  # the OpenRC loop (no systemd here)
    rc_update = tmp_path / "rc-update.log"
    assert rc_update.read_text() == f"add {wgf_quota.UNIT} default\n"  # and its boot script
    assert apply(host, interfaces) == {}  # a second apply changes nothing

    probe(pair)
    got = moved(pair, 3 * MiB, 5001)
    # what passed the formula's table, both directions (the data, its ACKs, any
    # retransmission, with their headers): the quota, within 10%
    passed = passed_bytes(pair)
    assert 0.9 * MiB <= passed <= 1.1 * MiB, (passed, got, used(pair))
    assert 0 < got < passed and used(pair) >= MiB
    assert not pings(pair)

    today = wgf_quota.period_id("day", datetime.datetime.now(datetime.timezone.utc))
    counters = save(host)
    assert counters[name][:2] == (today, used(pair)) and counters[name][2] == today
    fired = log.read_text().splitlines()
    assert len(fired) == 1 and fired[0].endswith(" wireguard/client/over_quota"), fired
    event = json.loads(fired[0].split(" ", 2)[2].rsplit(" ", 1)[0])
    assert (event["interface"], event["client"], event["quota"]) == (pair.ifname, "phone", MiB)
    assert os.stat(f"{wgf_quota.STATE_DIR}/{wgf_quota.COUNTERS}").st_mode & 0o777 == 0o600

    # a change of the table carries the count: still over
    before = used(pair)
    assert "nftables" in apply(host, [iface(pair, key, open_port=True)])
    assert "udp dport 51820 accept" in pair.local.out(["nft", "list", "ruleset"])
    assert used(pair) >= before and not pings(pair)

    # a reboot: at shutdown OpenRC stops the saver's service, which saves once more;
    # the loop and the table go; at boot the service starts the loop again, which keeps
    # the saved count while there is no table, and the next apply starts from it
    openrc("stop")
    assert save(host)[name][1] == used(pair)
    stop_waiter(tmp_path / "quota" / wgf_quota.WAITER, wgf_quota.UNIT)
    assert not host.quota_saver_armed()
    pair.local.run(["nft", "delete", "table", "inet", "wireguard"])
    openrc("start")
    for _ in range(50):  # setsid execs the loop an instant after the record is written
        if host.quota_saver_armed():
            break
        time.sleep(0.1)
    assert host.quota_saver_armed()
    assert save(host)[name][1] >= before  # no table: the file keeps the count
    assert "nftables" in apply(host, [iface(pair, key, open_port=True)])
    assert used(pair) >= before and not pings(pair)
    save(host)
    assert len(log.read_text().splitlines()) == 1  # once per period

    # a new period: the saver resets the live count and the client passes again
    saved_in_a_past_period(today)
    assert save(host)[name] == (today, 0, None)
    assert used(pair) < 2000 and pings(pair)

    # no quota left: the table and the saver go
    plan = apply(host, [iface(pair, key, clients={})])
    assert set(plan) == {"nftables", "quota saver"} and not host.quota_saver_armed()
    assert not os.path.exists(wgf_openrc.script_path(wgf_quota.UNIT))
    assert wgf_firewall.TABLE not in pair.local.out(["nft", "list", "tables"])
    time.sleep(0.1)


# ------------------------------------------------------------------------ iptables


def ipt_used(pair):
    return wgf_quota.parse_ipt_live(
        pair.local.out(["iptables-save", "-c", "-t", "filter"]),
        pair.local.out(["ip6tables-save", "-c", "-t", "filter"]),
    )["quota_" + pair.ifname + "_phone"]


def ipt_probe(pair):
    """Rules of the test's own, after the jumps to the formula's chains: they count the
    client's packets the formula's rules let pass."""
    pair.local.run(["iptables", "-A", "INPUT", "-i", pair.ifname, "-s", CLIENT])
    pair.local.run(["iptables", "-A", "OUTPUT", "-o", pair.ifname, "-d", CLIENT])


def ipt_passed(pair):
    return sum(
        int(line.split("]")[0].split(":")[1])
        for line in pair.local.out(["iptables-save", "-c", "-t", "filter"]).splitlines()
        if line.startswith("[") and (" -A INPUT -s " in line or " -A OUTPUT -d " in line)
    )


def test_under_iptables_a_1mib_quota_stops_the_client_and_its_count_survives(box):
    """Under iptables the client's chains (one per IP version) count both directions and
    the kernel's quota match stops the client after its 1 MiB, within 10%; the saver
    keeps the count and sends the event; a change of the chains and a reboot carry the
    count; a new period lets a whole MiB through again."""
    pair, key, host, log = box
    name = f"quota_{pair.ifname}_phone"
    interfaces = [iface(pair, key, "iptables")]
    assert pings(pair)  # the handshake, before any rule
    plan = apply(host, interfaces, "iptables")
    assert set(plan) == {"iptables", "ip6tables", "quota saver"}
    assert host.quota_saver_armed()
    assert apply(host, interfaces, "iptables") == {}  # a second apply changes nothing

    ipt_probe(pair)
    got = moved(pair, 3 * MiB, 5011)
    passed = ipt_passed(pair)
    # what passed the formula's rules, both directions: the quota, within 10%
    assert 0.9 * MiB <= passed <= 1.1 * MiB, (passed, got, ipt_used(pair))
    assert 0 < got < passed and ipt_used(pair) >= MiB
    assert not pings(pair)
    assert apply(host, interfaces, "iptables") == {}  # a count that moved is no change
    today = wgf_quota.period_id("day", datetime.datetime.now(datetime.timezone.utc))
    counters = save(host)  # the saver's run: the count kept, the event sent
    assert counters[name][0] == today and counters[name][1] >= MiB and counters[name][2] == today
    fired = log.read_text().splitlines()
    assert len(fired) == 1 and fired[0].endswith(" wireguard/client/over_quota"), fired
    assert apply(host, interfaces, "iptables") == {}  # the saver's DROP is the apply's

    # a change of the chains carries the count: still over
    before = ipt_used(pair)
    plan = apply(host, [iface(pair, key, "iptables", open_port=True)], "iptables")
    assert {"iptables", "ip6tables"} <= set(plan)
    assert "--dport 51820" in pair.local.out(["iptables-save", "-t", "filter"])
    assert ipt_used(pair) >= before and not pings(pair)

    # a reboot loses the chains: the next apply starts them from the saver's file
    save(host)
    for _, _, act in wgf_plan.firewall(host, [], "none").values():
        act()
    assert "WIREGUARD-" not in pair.local.out(["iptables-save", "-t", "filter"])
    assert save(host)[name][1] >= before  # no rules: the file keeps the count
    apply(host, [iface(pair, key, "iptables", open_port=True)], "iptables")
    assert ipt_used(pair) >= before and not pings(pair)
    save(host)
    assert len(log.read_text().splitlines()) == 1  # once per period

    # a new period: the saver resets the count, takes the DROP away, and the client
    # gets a whole MiB again
    saved_in_a_past_period(today)
    assert save(host)[name] == (today, 0, None)
    assert ipt_used(pair) < 2000 and pings(pair)
    before = ipt_passed(pair)
    moved(pair, 3 * MiB, 5012)
    assert 0.9 * MiB <= ipt_passed(pair) - before <= 1.1 * MiB

    # no quota left: the chains and the saver go
    plan = apply(host, [iface(pair, key, "iptables", clients={})], "iptables")
    assert {"iptables", "quota saver"} <= set(plan) and not host.quota_saver_armed()
    assert "WIREGUARD-" not in pair.local.out(["iptables-save", "-t", "filter"])
    time.sleep(0.1)
