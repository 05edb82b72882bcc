"""Client quotas (issue 23) in the lab, through a real master and real systemd: a client
device with a 1 MiB/day quota (its exported config up with plain `wg-quick` in a bare
namespace) is stopped after about 1 MiB, counted both ways; `wireguard/client/over_quota`
reaches the master; `wireguard.clients` says `over quota`; the count survives a change of
the firewall table and a reboot of the minion that loses the table; a new period (the
saved count's period id moved back, as a day's end would) lets the client pass again."""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest

from tests.e2e.events import Events
from tests.lab.util import wait_for
from tests.support.transfer import COUNTER, PUSHER

HUB = "198.18.23.1"
SERVER = "10.23.0.1"
MiB = 2**20
EVENT = "wireguard/client/over_quota"
COUNTERS = "/var/lib/wireguard-formula/quota/counters"
PILLAR = {
    "wireguard": {
        "lookup": {"firewall": "nftables"},
        "interfaces": {
            "wg0": {
                "address": [f"{SERVER}/24"],
                "listen_port": 51820,
                "endpoint": HUB,
                "clients": {"phone": {"limits": {"quota": "1MiB", "period": "day"}}},
            }
        },
    }
}

IDLE, STALL = "4", "6"  # seconds: see tests/support/transfer.py

#: A table of the test's own after the formula's (a later priority): it counts the
#: phone's packets the formula's table let pass, both ways.
PROBE = """table inet probe {
    chain input {
        type filter hook input priority filter + 10; policy accept;
        iifname "wg0" ip saddr %(c)s counter
    }
    chain output {
        type filter hook output priority filter + 10; policy accept;
        oifname "wg0" ip daddr %(c)s counter
    }
}
"""


def apply(lab, pillar):
    ret = lab.master.state_apply("vpn", {"vpn": pillar})
    assert "'result': False" not in repr(ret), ret
    return ret


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    with lab.section():
        inet = lab.bridge("qt-inet")
        vpn = lab.container("vpn")
        inet.attach(vpn, "eth0", [f"{HUB}/24"])
        phone = lab.namespace("qt-phone")
        inet.attach(phone, "eth0", ["198.18.23.10/24"])
        lab.wait_ready()
        state = {"lab": lab, "vpn": vpn, "phone": phone, "up": []}
        apply(lab, copy.deepcopy(PILLAR))
        try:
            yield state
        finally:
            for conf in state["up"]:
                phone.run(["wg-quick", "down", str(conf)], check=False)


def listed(site):
    return site["lab"].master.salt("vpn", "wireguard.clients", "wg0")["vpn"]["wg0"]["phone"]


def live_used(vpn):
    shown = json.loads(vpn.out(["nft", "-j", "list", "quotas", "table", "inet", "wireguard"]))
    (quota,) = [item["quota"] for item in shown["nftables"] if "quota" in item]
    return quota["used"]


def passes(site):
    return site["phone"].ping(SERVER, count=2, wait=1).received > 0


def test_a_1mib_quota_stops_the_client_and_its_count_outlives_a_table_change_and_a_reboot(
    site, tmp_path
):
    lab, vpn, phone = site["lab"], site["vpn"], site["phone"]
    assert vpn.unit_state("wireguard-quota.timer") == ("active", "enabled")
    assert vpn.unit_state("wireguard-quota-shutdown.service") == ("active", "enabled")
    text = lab.master.salt("vpn", "wireguard.client_config", "wg0", "phone")["vpn"]
    conf = tmp_path / f"q{uuid.uuid4().hex[:6]}ph.conf"
    conf.write_text(text)
    conf.chmod(0o600)
    phone.run(["wg-quick", "up", str(conf)])
    site["up"].append(conf)
    assert phone.ping_until(SERVER, within=20).received
    address = listed(site)["address"][0]
    vpn.run(["nft", "-f", "-"], input=PROBE % {"c": address})

    # 3 MiB offered: about 1 MiB passes, both directions counted
    events = Events(lab.master, EVENT)
    receiver = vpn.popen(["python3", "-c", COUNTER, SERVER, "5023", IDLE])
    assert receiver.stdout.readline().strip() == "ready"
    phone.run(["python3", "-c", PUSHER, SERVER, "5023", str(3 * MiB), STALL], timeout=60)
    got = int(receiver.stdout.readline().strip())
    receiver.wait(timeout=10)
    probe = json.loads(vpn.out(["nft", "-j", "list", "table", "inet", "probe"]))
    passed = sum(
        expr["counter"]["bytes"]
        for item in probe["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    )
    vpn.run(["nft", "delete", "table", "inet", "probe"])
    assert 0.9 * MiB <= passed <= 1.1 * MiB, (passed, got)
    assert 0 < got < passed and not passes(site)

    # the saver (every 30 s, without salt-minion) sends the event once
    found = events.wait(EVENT, 90)
    assert [(e["interface"], e["client"], e["quota"]) for e in found] == [("wg0", "phone", MiB)]
    use = listed(site)
    assert use["status"] == "over quota", use
    assert use["use"]["used"] == MiB and use["use"]["remaining"] == 0
    assert use["use"]["period"] == "day" and use["use"]["period_end"].endswith("T00:00:00Z")
    metrics = lab.master.salt("vpn", "wireguard.metrics", "wg0")["vpn"]
    assert [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("wireguard_client_quota_used_bytes{") and 'peer="phone"' in line
    ] == [MiB]

    # a change of the firewall table carries the count
    before = live_used(vpn)
    changed = copy.deepcopy(PILLAR)
    changed["wireguard"]["interfaces"]["wg0"]["open_port"] = True
    apply(lab, changed)
    assert "udp dport 51820 accept" in vpn.out(["nft", "list", "table", "inet", "wireguard"])
    assert live_used(vpn) >= before and not passes(site)

    # a reboot loses the table (a real one would: the lab's keeps its namespace), the
    # counts come back from the file at the next apply
    wait_for(lambda: int(vpn.read(COUNTERS).split()[2]) >= MiB, 40, "the saved count", 1)
    assert vpn.out(["stat", "-c", "%a %U", COUNTERS]).split() == ["600", "root"]
    vpn.run(["nft", "delete", "table", "inet", "wireguard"])
    vpn.reboot()
    assert vpn.unit_state("wireguard-quota.timer")[0] == "active"
    assert int(vpn.read(COUNTERS).split()[2]) >= MiB  # the stop's save kept it
    lab.master.wait_minions(["vpn"], timeout=60)
    apply(lab, changed)
    assert live_used(vpn) >= MiB
    assert listed(site)["status"] == "over quota"
    phone.ping(SERVER, count=3, wait=1)  # the handshake again, from the client's side
    assert not passes(site)

    # the day ends: the saver finds the count of an earlier period and restarts it
    saved = vpn.read(COUNTERS)
    today = saved.split()[1]
    vpn.run(["sh", "-c", f"sed -i 's/ {today} / 2020-01-01 /' {COUNTERS}"])
    vpn.run(["systemctl", "start", "wireguard-quota.service"])
    assert live_used(vpn) < 10_000
    assert phone.ping_until(SERVER, within=30).received
    after = listed(site)
    assert after["status"] == "active" and after["use"]["remaining"] > MiB - 20_000
    time.sleep(0.1)
