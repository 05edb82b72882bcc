"""Client quotas under ``lookup:firewall: iptables`` (issue 23): the counting rules in the
formula's ``WIREGUARD-*`` chains, one count per client over both directions and both IP
versions, carried across replacements (``iptables-restore --counters``) and reboots (the
saver's file), the DROP once the quota is used up, and the saver run for real against
the real ``iptables``/``ip6tables`` in a scratch network namespace."""

import copy
import datetime
import os
import subprocess

import wgf_firewall
import wgf_keys
import wgf_plan
import wgf_quota
from tests.support import pipeline
from tests.support.fake_host import FakeHost

SERVER_PRIV = wgf_keys.genkey()
UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 6, 12, tzinfo=UTC)
MiB = 2**20

COMMENT = '-m comment --comment "wg0 client phone quota quota_wg0_phone"'


def server(firewall="iptables", **extra):
    """wg0 (as in test_quota): a 1 MiB/day client, a group's 10 GiB/month client, an
    unlimited client and a disabled one with a quota."""
    clients, groups = copy.deepcopy(pipeline.QUOTA_CLIENTS), copy.deepcopy(pipeline.QUOTA_GROUPS)
    keys = {"clients": clients, "client_groups": groups, **extra}
    return pipeline.client_server(SERVER_PRIV, firewall, **keys)


def _host():
    host = FakeHost()
    host.has_exec = lambda name: True
    host.clock = NOW.timestamp()
    host.iptables = {4: "", 6: ""}
    return host


def _phone(version):
    iface = server("iptables")
    return iface, next(
        a for a in iface["clients"]["phone"]["address"] if (":" in a) == (version == 6)
    )


def test_counting_rules_come_first_and_count_both_directions_of_each_version():
    for version, prefix in ((4, 32), (6, 128)):
        iface, address = _phone(version)
        chains = wgf_firewall.iptables_rules([server("iptables", open_port=True)], version)
        filter_ = chains["filter"]
        sent, received = f"-s {address}/{prefix} -i wg0", f"-d {address}/{prefix} -o wg0"
        assert f"{sent} {COMMENT}" in filter_["WIREGUARD-INPUT"]
        assert filter_["WIREGUARD-OUTPUT"] == [
            f'-d {a}/{prefix} -o wg0 -m comment --comment "wg0 client {c} quota quota_wg0_{c}"'
            for c in ("alice", "phone")
            for a in iface["clients"][c]["address"]
            if (":" in a) == (version == 6)
        ]
        assert f"{sent} {COMMENT}" in filter_["WIREGUARD-FORWARD"]
        assert f"{received} {COMMENT}" in filter_["WIREGUARD-FORWARD"]
        # before every accept of open_port; no target: counted, then on to the rest
        for chain in ("WIREGUARD-INPUT", "WIREGUARD-FORWARD"):
            rules = filter_[chain]
            last = max(i for i, r in enumerate(rules) if "quota quota_" in r)
            assert not any("-j " in r for r in rules[: last + 1])
        text = "\n".join(r for rules in filter_.values() for r in rules)
        assert "quota_wg0_off" not in text and "plain" not in text


def test_a_client_over_its_quota_has_a_drop_before_each_counting_rule():
    iface, address = _phone(4)
    forward = wgf_firewall.iptables_rules([iface], 4, {"quota_wg0_phone"})["filter"][
        "WIREGUARD-FORWARD"
    ]
    phone = [r for r in forward if "quota_wg0_phone" in r]
    assert phone == [
        f"-s {address}/32 -i wg0 {COMMENT} -j DROP",
        f"-s {address}/32 -i wg0 {COMMENT}",
        f"-d {address}/32 -o wg0 {COMMENT} -j DROP",
        f"-d {address}/32 -o wg0 {COMMENT}",
    ]
    assert not any("DROP" in r for r in forward if "quota_wg0_alice" in r)


def test_a_client_without_ipv4_carries_its_count_in_one_ipv4_rule():
    iface = {
        "name": "wg0",
        "clients": {"six": {"address": ["fd08::9"], "limits": {"quota": 5, "period": "day"}}},
    }
    assert wgf_quota.ipt_rules([iface], 4) == {
        "WIREGUARD-INPUT": [
            '-s 0.0.0.0/32 -i wg0 -m comment --comment "wg0 client six quota quota_wg0_six"'
        ]
    }
    assert sum(len(r) for r in wgf_quota.ipt_rules([iface], 6).values()) == 4


def test_one_count_per_client_over_its_rules_and_both_versions():
    v4 = (
        "*filter\n:WIREGUARD-INPUT - [0:0]\n"
        f"[3:1000] -A WIREGUARD-INPUT -s 10.8.0.4/32 -i wg0 {COMMENT}\n"
        f"[1:20] -A WIREGUARD-OUTPUT -d 10.8.0.4/32 -o wg0 {COMMENT} -j DROP\n"
        '[9:9999] -A WIREGUARD-INPUT -i wg0 -m comment --comment "wg0 default" -j DROP\n'
    )
    v6 = f"[2:300] -A WIREGUARD-FORWARD -d fd08::4/128 -o wg0 {COMMENT}\n"
    assert wgf_quota.parse_ipt_live(v4, v6, None) == {"quota_wg0_phone": 1320}


def test_the_count_and_the_drop_come_from_the_rules_else_the_file_within_the_period():
    iface = server("iptables")
    saved = {"quota_wg0_phone": ("2026-12-06", 600000, None), "quota_wg0_alice": ("x", 9, None)}
    over, carry = wgf_quota.ipt_state([iface], {"quota_wg0_phone": MiB}, saved, NOW)
    assert (over, carry) == ({"quota_wg0_phone"}, {"quota_wg0_phone": MiB, "quota_wg0_alice": 0})
    over, carry = wgf_quota.ipt_state([iface], {}, saved, NOW)  # a reboot: no rules
    assert (over, carry["quota_wg0_phone"]) == (set(), 600000)


def test_the_carried_count_goes_on_the_first_counting_rule_only():
    rules = wgf_firewall.iptables_rules([server("iptables")], 4, {"quota_wg0_phone"})
    text = wgf_firewall.iptables_restore(rules, set())
    carried = wgf_quota.ipt_with_counts(text, {"quota_wg0_phone": 4242, "quota_wg0_alice": 0})
    counted = [line for line in carried.splitlines() if line.startswith("[")]
    assert len(counted) == 1
    assert counted[0].startswith("[0:4242] -A WIREGUARD-INPUT -s ")
    assert counted[0].endswith(COMMENT)


# ------------------------------------------------------------------ the plan


def test_a_changing_count_alone_replaces_nothing_and_a_change_carries_it_into_ipv4():
    iface = server("iptables")
    host = _host()
    plan = wgf_plan.firewall(host, [iface], "iptables")
    assert set(plan) == {"iptables", "ip6tables"}
    for part in ("iptables", "ip6tables"):
        plan[part][2]()
    assert "quota_wg0_phone" in host.iptables[4] and "quota_wg0_phone" in host.iptables[6]
    # traffic was counted: only the counters differ
    host.iptables_counted = {
        4: f"[5:700] -A WIREGUARD-INPUT -s 10.8.0.4/32 -i wg0 {COMMENT}\n",
        6: f"[1:77] -A WIREGUARD-OUTPUT -d fd08::4/128 -o wg0 {COMMENT}\n",
    }
    assert wgf_plan.firewall(host, [iface], "iptables") == {}
    # a change of IPv4's chains alone replaces both, the whole count going to IPv4's
    changed = server("iptables", masquerade=["eth0"])
    plan = wgf_plan.firewall(host, [changed], "iptables")
    assert set(plan) == {"iptables", "ip6tables"}
    host.done.clear()
    for part in ("iptables", "ip6tables"):
        plan[part][2]()
    (v4, text4, *flag4), (v6, text6, *flag6) = [d[1:] for d in host.done]
    assert (v4, flag4, v6, flag6) == (4, ["counters"], 6, [])
    assert f"[0:777] -A WIREGUARD-INPUT -s 10.8.0.4/32 -i wg0 {COMMENT}" in text4
    assert "[0:" not in text6.replace("[0:0]", "")


def test_a_used_up_quota_drops_and_a_reboot_starts_from_the_saved_count():
    iface = server("iptables")
    host = _host()
    os.makedirs(wgf_quota.STATE_DIR)
    with open(os.path.join(wgf_quota.STATE_DIR, wgf_quota.COUNTERS), "w") as handle:
        handle.write(f"quota_wg0_phone 2026-12-06 {MiB} 2026-12-06\n")
    plan = wgf_plan.firewall(host, [iface], "iptables")
    assert any(line.endswith(f"{COMMENT} -j DROP") for line in plan["iptables"][1])
    plan["iptables"][2]()
    assert f"[0:{MiB}] -A WIREGUARD-INPUT" in host.iptables[4]
    assert f"{COMMENT} -j DROP" in host.iptables[4]
    # the next day: no drop, nothing carried
    host.clock = (NOW + datetime.timedelta(days=1)).timestamp()
    host.iptables = {4: "", 6: ""}
    plan = wgf_plan.firewall(host, [iface], "iptables")
    plan["iptables"][2]()
    assert "DROP" not in "".join(line for line in host.iptables[4].splitlines() if "quota" in line)
    assert "[0:" not in host.iptables[4].replace("[0:0]", "")


def test_use_reads_the_iptables_counts():
    iface = server("iptables")
    host = _host()
    host.iptables_counted = {4: f"[5:700] -A WIREGUARD-INPUT -s 10.8.0.4/32 -i wg0 {COMMENT}\n"}
    host.nft_quotas = lambda table: None
    use = wgf_quota.use_of(host, {"wg0": iface}, NOW)
    assert use["wg0"]["phone"]["used"] == 700
    assert use["wg0"]["phone"]["remaining"] == MiB - 700


# ------------------------------------------------------------------ for real


def _scratch(script, env):
    return subprocess.run(
        ["unshare", "--net", "--", "sh", "-ec", script],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    ).stdout


def test_the_saver_counts_drops_and_restarts_with_the_real_iptables(tmp_path):
    """In a scratch namespace: the rules as the apply loads them (1 MiB carried into
    IPv4's), the saver keeps the count, puts the DROP before each counting rule exactly
    as the apply renders it for a used-up quota, and a new period takes it away again
    and counts from 0."""
    iface = server("iptables")
    root = tmp_path / "state"
    root.mkdir()
    (root / "save").write_text(wgf_quota.script_text(None, str(root)))
    (root / "clients").write_text(wgf_quota.clients_text([iface]))
    files = {}
    for version in (4, 6):
        rules = wgf_firewall.iptables_rules([iface], version)
        text = wgf_firewall.iptables_restore(rules, set())
        files[version] = tmp_path / f"rules{version}"
        files[version].write_text(wgf_quota.ipt_with_counts(text, {"quota_wg0_phone": MiB}))
    over = tmp_path / "over"
    jumps = {
        ("INPUT", "WIREGUARD-INPUT"),
        ("FORWARD", "WIREGUARD-FORWARD"),
        ("OUTPUT", "WIREGUARD-OUTPUT"),
        ("POSTROUTING", "WIREGUARD-POSTROUTING"),
    }
    over.write_text(
        wgf_firewall.iptables_restore(
            wgf_firewall.iptables_rules([iface], 4, {"quota_wg0_phone"}), jumps
        )
    )
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no salt-call: no event sent
    today = wgf_quota.period_id("day", datetime.datetime.now(UTC))
    out = _scratch(
        f"iptables-restore --noflush --counters {files[4]}\n"
        f"ip6tables-restore --noflush {files[6]}\n"
        f"sh {root}/save\n"
        f"cat {root}/counters; echo ==; iptables-save; echo ==; iptables-save -c -t filter\n"
        f"sed -i 's/^quota_wg0_phone [^ ]*/quota_wg0_phone 2020-01-01/' {root}/counters\n"
        f"sh {root}/save\n"
        f"echo ==; cat {root}/counters; echo ==; iptables-save -c; ip6tables-save -c\n"
        f"iptables-restore --noflush {over}; echo ==; iptables-save\n",
        env,
    )
    counters, saved, counted, counters2, after, apply_over = out.split("==\n")
    assert wgf_quota.parse_counters(counters)["quota_wg0_phone"] == (today, MiB, today)
    assert wgf_quota.parse_ipt_live(counted) == {"quota_wg0_phone": MiB, "quota_wg0_alice": 0}
    # what the saver made is what the apply renders for a used-up quota: no change
    assert wgf_firewall.iptables_ours(saved) == wgf_firewall.iptables_ours(apply_over)
    assert sum(line.endswith("-j DROP") for line in wgf_firewall.iptables_ours(saved)) == 4
    # a new period: the count starts at 0, the drops are gone
    assert wgf_quota.parse_counters(counters2)["quota_wg0_phone"] == (today, 0, None)
    assert "quota_wg0_phone" in after and "DROP" not in after
    assert wgf_quota.parse_ipt_live(after)["quota_wg0_phone"] == 0
