"""Client quotas under ``lookup:firewall: iptables`` (issue 23): each counted client's
chain (``wgf_quota_ipt``), jumped to from the formula's ``WIREGUARD-*`` chains, with the
kernel's quota match and one count per client over both directions and both IP versions,
carried across replacements (``iptables-restore --counters``) and reboots (the saver's
file), and the saver run for real against the real ``iptables``/``ip6tables`` in a
scratch network namespace."""

import copy
import datetime
import os
import subprocess

import wgf_iptables
import wgf_keys
import wgf_plan
import wgf_quota
import wgf_quota_ipt
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


def _chain(client):
    return wgf_quota_ipt.chain(f"quota_wg0_{client}")


def test_every_packet_of_a_client_in_both_directions_passes_its_chain_first():
    for version, prefix in ((4, 32), (6, 128)):
        iface, address = _phone(version)
        chains = wgf_iptables.iptables_rules([server("iptables", open_port=True)], version)
        filter_ = chains["filter"]
        sent, received = f"-s {address}/{prefix} -i wg0", f"-d {address}/{prefix} -o wg0"
        jump = f'-m comment --comment "wg0 client phone quota" -j {_chain("phone")}'
        assert f"{sent} {jump}" in filter_["WIREGUARD-INPUT"]
        assert filter_["WIREGUARD-OUTPUT"] == [
            f'-d {a}/{prefix} -o wg0 -m comment --comment "wg0 client {c} quota" -j {_chain(c)}'
            for c in ("alice", "phone")
            for a in iface["clients"][c]["address"]
            if (":" in a) == (version == 6)
        ]
        assert f"{sent} {jump}" in filter_["WIREGUARD-FORWARD"]
        assert f"{received} {jump}" in filter_["WIREGUARD-FORWARD"]
        # before every accept of open_port
        for chain in ("WIREGUARD-INPUT", "WIREGUARD-FORWARD"):
            rules = filter_[chain]
            last = max(i for i, r in enumerate(rules) if "WIREGUARD-Q-" in r)
            assert all("WIREGUARD-Q-" in r for r in rules[: last + 1])
        # the chain: the quota match lets the quota through, the rest is dropped
        assert filter_[_chain("phone")] == [
            f"-m quota --quota {MiB} {COMMENT} -j RETURN",
            f'-m comment --comment "wg0 client phone quota quota_wg0_phone of {MiB}" -j DROP',
        ]
        text = "\n".join(r for rules in filter_.values() for r in rules)
        assert "quota_wg0_off" not in text and "plain" not in text


def test_the_quota_match_starts_at_what_is_left_and_a_used_up_quota_drops_first():
    iface, _ = _phone(4)
    chain = wgf_iptables.iptables_rules([iface], 4, {"quota_wg0_phone": 1000})["filter"]
    assert chain[_chain("phone")][0] == f"-m quota --quota {MiB - 1000} {COMMENT} -j RETURN"
    carry = {"quota_wg0_phone": MiB + 1500}
    for version in (4, 6):
        chains = wgf_iptables.iptables_rules([iface], version, carry)["filter"]
        assert chains[_chain("phone")][0] == f"-m quota --quota 0 {COMMENT} -j RETURN"
        assert f"--quota {10 * 2**30} " in chains[_chain("alice")][0]


def test_the_count_and_the_saver_s_drop_are_no_change_of_the_rules():
    chain = _chain("phone")
    live = [
        f"filter -A {chain} -m comment --comment quota_wg0_phone-over -j DROP",
        f"filter -A {chain} -m quota --quota 12 {COMMENT} -j RETURN",
    ]
    wanted = [f"filter -A {chain} -m quota --quota {MiB} {COMMENT} -j RETURN"]
    assert wgf_quota_ipt.without_counting(live) == wgf_quota_ipt.without_counting(wanted)
    other = [f"filter -A {chain} -m quota --quota {MiB} {COMMENT} -j ACCEPT"]
    assert wgf_quota_ipt.without_counting(other) != wgf_quota_ipt.without_counting(wanted)


def test_a_client_without_ipv4_carries_its_count_in_one_ipv4_rule():
    iface = {
        "name": "wg0",
        "clients": {"six": {"address": ["fd08::9"], "limits": {"quota": 5, "period": "day"}}},
    }
    assert wgf_quota_ipt.rules([iface], 4) == {
        "WIREGUARD-INPUT": [
            '-s 0.0.0.0/32 -i wg0 -m comment --comment "wg0 client six quota quota_wg0_six"'
        ]
    }
    six = wgf_quota_ipt.rules([iface], 6)
    assert sum(len(r) for c, r in six.items() if c.startswith("WIREGUARD-Q-")) == 2
    assert sum(len(r) for c, r in six.items() if not c.startswith("WIREGUARD-Q-")) == 4


def test_a_clients_chain_is_named_by_its_object_alone():
    assert wgf_quota_ipt.chain("quota_wg0_phone") == _chain("phone") != _chain("alice")
    assert len(_chain("phone")) <= 28 and wgf_quota_ipt.is_quota_chain(_chain("phone"))
    for name in ("WIREGUARD-Q-", "WIREGUARD-Q-$(reboot)", "WIREGUARD-INPUT"):
        assert not wgf_quota_ipt.is_quota_chain(name)


def test_one_count_per_client_over_what_passed_and_was_dropped_in_both_versions():
    chain = _chain("phone")
    v4 = (
        "*filter\n:WIREGUARD-INPUT - [0:0]\n"
        f'[3:1000] -A WIREGUARD-INPUT -s 10.8.0.4/32 -i wg0 -m comment --comment "wg0 client'
        f' phone quota" -j {chain}\n'
        f"[1:20] -A {chain} -m comment --comment quota_wg0_phone-over -j DROP\n"
        f"[2:900] -A {chain} -m quota --quota 5 {COMMENT} -j RETURN\n"
        f'[1:100] -A {chain} -m comment --comment "wg0 client phone quota quota_wg0_phone of'
        f' {MiB}" -j DROP\n'
        '[9:9999] -A WIREGUARD-INPUT -i wg0 -m comment --comment "wg0 default" -j DROP\n'
    )
    v6 = f"[2:300] -A {chain} -m quota --quota 7 {COMMENT} -j RETURN\n"
    assert wgf_quota.parse_ipt_live(v4, v6, None) == {"quota_wg0_phone": 1300}


def test_the_carried_count_goes_on_the_counting_rule_only():
    rules = wgf_iptables.iptables_rules([server("iptables")], 4, {"quota_wg0_phone": 4242})
    text = wgf_iptables.iptables_restore(rules, set())
    carried = wgf_quota_ipt.with_counts(text, {"quota_wg0_phone": 4242, "quota_wg0_alice": 0})
    counted = [line for line in carried.splitlines() if line.startswith("[")]
    assert counted == [
        f"[0:4242] -A {_chain('phone')} -m quota --quota {MiB - 4242} {COMMENT} -j RETURN"
    ]


def test_a_chain_no_longer_wanted_goes_once_nothing_jumps_to_it():
    iface = server("iptables")
    rules = wgf_iptables.iptables_rules([iface], 4)
    present = {"WIREGUARD-INPUT", "WIREGUARD-Q-0123456789ab", _chain("phone")}
    text = wgf_iptables.iptables_restore(rules, set(), present)
    lines = text.splitlines()
    assert f":{_chain('phone')} - [0:0]" in lines
    assert lines.index("-X WIREGUARD-Q-0123456789ab") > lines.index(":WIREGUARD-INPUT - [0:0]")
    assert f"-X {_chain('phone')}" not in lines
    removal = wgf_iptables.iptables_removal(present, set()).splitlines()
    assert "-F WIREGUARD-Q-0123456789ab" in removal and f"-X {_chain('phone')}" in removal


# ------------------------------------------------------------------ the plan


def _counted(version, packets, count):
    address = "10.8.0.4/32" if version == 4 else "fd08::4/128"
    jump = f'-m comment --comment "wg0 client phone quota" -j {_chain("phone")}'
    return (
        f"[{packets}:{count}] -A WIREGUARD-INPUT -s {address} -i wg0 {jump}\n"
        f"[{packets}:{count}] -A {_chain('phone')} -m quota --quota {MiB} {COMMENT} -j RETURN\n"
    )


def test_a_changing_count_alone_replaces_nothing_and_a_change_carries_it_into_ipv4():
    iface = server("iptables")
    host = _host()
    plan = wgf_plan.firewall(host, [iface], "iptables")
    assert set(plan) == {"iptables", "ip6tables"}
    for part in ("iptables", "ip6tables"):
        plan[part][2]()
    assert _chain("phone") in host.iptables[4] and _chain("phone") in host.iptables[6]
    # traffic was counted: only the counters and what the quota match has left differ
    host.iptables_counted = {4: _counted(4, 5, 700), 6: _counted(6, 1, 77)}
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
    assert f"[0:777] -A {_chain('phone')} -m quota --quota {MiB - 777} {COMMENT}" in text4
    assert f"-m quota --quota {MiB - 777} {COMMENT}" in text6
    assert "[0:" not in text6.replace("[0:0]", "")


def test_a_used_up_quota_drops_and_a_reboot_starts_from_the_saved_count():
    iface = server("iptables")
    host = _host()
    os.makedirs(wgf_quota.STATE_DIR)
    with open(os.path.join(wgf_quota.STATE_DIR, wgf_quota.COUNTERS), "w") as handle:
        handle.write(f"quota_wg0_phone 2026-12-06 {MiB} 2026-12-06\n")
    plan = wgf_plan.firewall(host, [iface], "iptables")
    plan["iptables"][2]()
    assert f"[0:{MiB}] -A {_chain('phone')} -m quota --quota 0 {COMMENT}" in host.iptables[4]
    # the next day: no drop, nothing carried, the whole quota left
    host.clock = (NOW + datetime.timedelta(days=1)).timestamp()
    host.iptables = {4: "", 6: ""}
    plan = wgf_plan.firewall(host, [iface], "iptables")
    plan["iptables"][2]()
    assert "-over" not in host.iptables[4] and f"--quota {MiB} {COMMENT}" in host.iptables[4]
    assert "[0:" not in host.iptables[4].replace("[0:0]", "")


def test_use_reads_the_iptables_counts():
    iface = server("iptables")
    host = _host()
    host.iptables_counted = {4: _counted(4, 5, 700)}
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
    IPv4's, as if the client had used it over both IP versions, so the quota matches
    have not run out), the saver keeps the count, stops the client in both versions
    exactly as the apply renders a used-up quota, and a new period takes that away
    again: the count from 0, the whole quota left."""
    iface = server("iptables")
    root = tmp_path / "state"
    root.mkdir()
    (root / "save").write_text(wgf_quota.script_text(None, str(root)))
    (root / "clients").write_text(wgf_quota.clients_text([iface]))
    files = {}
    for version in (4, 6):
        rules = wgf_iptables.iptables_rules([iface], version)
        text = wgf_iptables.iptables_restore(rules, set())
        files[version] = tmp_path / f"rules{version}"
        files[version].write_text(wgf_quota_ipt.with_counts(text, {"quota_wg0_phone": MiB}))
    over = tmp_path / "over"
    jumps = {
        ("INPUT", "WIREGUARD-INPUT"),
        ("FORWARD", "WIREGUARD-FORWARD"),
        ("OUTPUT", "WIREGUARD-OUTPUT"),
        ("POSTROUTING", "WIREGUARD-POSTROUTING"),
    }
    carry = {"quota_wg0_phone": MiB}
    over.write_text(
        wgf_iptables.iptables_restore(wgf_iptables.iptables_rules([iface], 4, carry), jumps)
    )
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # no salt-call: no event sent
    today = wgf_quota.period_id("day", datetime.datetime.now(UTC))
    out = _scratch(
        f"iptables-restore --noflush --counters {files[4]}\n"
        f"ip6tables-restore --noflush {files[6]}\n"
        f"sh {root}/save\n"
        f"cat {root}/counters; echo ==; iptables-save; echo ==; iptables-save -c -t filter\n"
        f"echo ==; ip6tables-save\n"
        f"sed -i 's/^quota_wg0_phone [^ ]*/quota_wg0_phone 2020-01-01/' {root}/counters\n"
        f"sh {root}/save\n"
        f"echo ==; cat {root}/counters; echo ==; iptables-save -c; ip6tables-save -c\n"
        f"iptables-restore --noflush {over}; echo ==; iptables-save\n",
        env,
    )
    counters, saved, counted, saved6, counters2, after, apply_over = out.split("==\n")
    assert wgf_quota.parse_counters(counters)["quota_wg0_phone"] == (today, MiB, today)
    assert wgf_quota.parse_ipt_live(counted) == {"quota_wg0_phone": MiB, "quota_wg0_alice": 0}
    # what the saver made is what the apply renders for a used-up quota: no change
    ours, rendered = (
        wgf_quota_ipt.without_counting(wgf_iptables.iptables_ours(text))
        for text in (saved, apply_over)
    )
    assert ours == rendered
    marker = f"-A {_chain('phone')} -m comment --comment quota_wg0_phone-over -j DROP"
    assert marker in saved.splitlines() and marker in saved6.splitlines()
    # a new period: the count starts at 0, the drops are gone, the whole quota is left
    assert wgf_quota.parse_counters(counters2)["quota_wg0_phone"] == (today, 0, None)
    assert "-over" not in after and after.count(f"--quota {MiB} {COMMENT}") == 2
    assert wgf_quota.parse_ipt_live(after)["quota_wg0_phone"] == 0
