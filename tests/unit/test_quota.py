"""Client quotas (issue 23, ``limits.quota``/``period``): the nftables quota objects and
rules, the periods, the counts carried across table replacements, the saver script
(run for real, with a stand-in ``nft`` and ``salt-call``) and the plan of the state."""

import copy
import datetime
import json
import os
import subprocess

import pytest

import wgf_firewall
import wgf_keys
import wgf_plan
import wgf_quota
from tests.support import pipeline
from tests.support.fake_host import FakeHost

SERVER_PRIV = wgf_keys.genkey()
UTC = datetime.timezone.utc
MiB = 2**20


def server(firewall="nftables", **extra):
    """wg0: a 1 MiB/day client, a group's 10 GiB/month client with a rate, an unlimited
    client and a disabled one with a quota."""
    clients, groups = copy.deepcopy(pipeline.QUOTA_CLIENTS), copy.deepcopy(pipeline.QUOTA_GROUPS)
    keys = {"clients": clients, "client_groups": groups, **extra}
    return pipeline.client_server(SERVER_PRIV, firewall, **keys)


def at(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


# ------------------------------------------------------------------------ periods


@pytest.mark.parametrize(
    ("period", "now", "pid", "end"),
    [
        ("day", "2026-12-06T23:59:59", "2026-12-06", "2026-12-07T00:00:00"),
        ("day", "2026-12-07T00:00:00", "2026-12-07", "2026-12-08T00:00:00"),
        # ISO weeks start on Monday; 2026-12-06 is a Sunday
        ("week", "2026-12-06T12:00:00", "2026-W49", "2026-12-07T00:00:00"),
        ("week", "2026-12-07T00:00:00", "2026-W50", "2026-12-14T00:00:00"),
        ("week", "2027-01-01T00:00:00", "2026-W53", "2027-01-04T00:00:00"),
        ("month", "2026-12-31T23:00:00", "2026-12", "2027-01-01T00:00:00"),
        ("month", "2027-02-10T00:00:00", "2027-02", "2027-03-01T00:00:00"),
    ],
)
def test_periods_are_utc_days_iso_weeks_and_months(period, now, pid, end):
    assert wgf_quota.period_id(period, at(now)) == pid
    assert wgf_quota.period_end(period, at(now)) == at(end)


def test_the_shell_and_python_period_ids_agree():
    """The saver names periods with ``date -u``: the same ids as the apply."""
    now = datetime.datetime.now(UTC)
    shell = subprocess.run(
        ["date", "-u", "+%Y-%m-%d %G-W%V %Y-%m"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shell == [wgf_quota.period_id(p, now) for p in ("day", "week", "month")]


# ------------------------------------------------------------------- the counts


NOW = at("2026-12-06T12:00:00")


@pytest.mark.parametrize(
    ("live", "saved", "expected"),
    [
        ({"q": 500}, {"q": ("2026-12-06", 100, None)}, 500),  # the live table's count
        ({}, {"q": ("2026-12-06", 100, None)}, 100),  # the table is gone: the saved one
        ({"q": 500}, {"q": ("2026-12-05", 100, None)}, 0),  # an ended period's count
        ({}, {"q": ("2026-12-05", 100, None)}, 0),
        ({"q": 500}, {}, 500),  # not saved yet
        ({}, {}, 0),
    ],
)
def test_a_count_continues_from_the_table_else_the_file_within_its_period(live, saved, expected):
    assert wgf_quota.count("q", "day", live, saved, NOW) == expected


def test_the_counters_file_reads_back_what_it_wrote():
    counters = {"quota_wg0_a": ("2026-12", 5, None), "quota_wg0_b": ("2026-W49", 9, "2026-W49")}
    text = wgf_quota.counters_text(counters)
    assert text == "quota_wg0_a 2026-12 5 -\nquota_wg0_b 2026-W49 9 2026-W49\n"
    assert wgf_quota.parse_counters(text + "garbage\n") == counters


def test_live_counts_are_read_from_nft_json():
    shown = json.dumps(
        {
            "nftables": [
                {"metainfo": {"version": "1.0.6"}},
                {"quota": {"name": "quota_wg0_a", "table": "wireguard", "bytes": 9, "used": 7}},
                {"quota": {"name": "x", "table": "other", "bytes": 9, "used": 1}},
            ]
        }
    )
    assert wgf_quota.parse_live(shown) == {"quota_wg0_a": 7}
    assert wgf_quota.parse_live(None) == {} and wgf_quota.parse_live("not json") == {}


def test_use_shows_used_remaining_and_the_periods_end():
    iface = server()
    live = {"quota_wg0_phone": MiB + 5000, "quota_wg0_alice": 3 * MiB}
    use = wgf_quota.use(iface, live, {}, NOW)
    assert use["phone"] == {
        "used": MiB,  # what went over the quota was dropped
        "quota": MiB,
        "remaining": 0,
        "period": "day",
        "period_end": "2026-12-07T00:00:00Z",
        "over_quota": True,
    }
    assert use["alice"]["remaining"] == 10 * 2**30 - 3 * MiB
    assert not use["alice"]["over_quota"] and use["alice"]["period_end"] == "2027-01-01T00:00:00Z"
    assert "plain" not in use and use["off"]["used"] == 0


# ---------------------------------------------------------------- the nft table


def test_each_live_client_with_a_quota_gets_one_object_counting_both_directions():
    iface = server(open_port=True)
    assert [c[0] for c in wgf_quota.quota_clients(iface)] == ["alice", "phone"]
    table = wgf_firewall.nft_table([iface], {"quota_wg0_phone": 4242})
    lines = [line.strip() for line in table.splitlines()]
    assert lines[lines.index("quota quota_wg0_phone {") + 1] == (
        f"over {MiB} bytes used 4242 bytes"
    )
    assert lines[lines.index("quota quota_wg0_alice {") + 1] == f"over {10 * 2**30} bytes"
    v4, v6 = iface["clients"]["phone"]["address"]
    chains = _chains(table)
    counted = 'quota name "quota_wg0_phone" drop comment "wg0 client phone quota"'
    for chain in ("input", "forward"):
        assert f'iifname "wg0" ip saddr {v4} {counted}' in chains[chain]
        assert f'iifname "wg0" ip6 saddr {v6} {counted}' in chains[chain]
    for chain in ("forward", "output"):
        assert f'oifname "wg0" ip daddr {v4} {counted}' in chains[chain]
        assert f'oifname "wg0" ip6 daddr {v6} {counted}' in chains[chain]
    # after the rates (a dropped packet is not counted), before any accept
    forward = chains["forward"]
    first_quota = next(i for i, r in enumerate(forward) if "quota name" in r)
    assert all("limit name" in r for r in forward[:first_quota])
    inputs = chains["input"]
    last_quota = max(i for i, r in enumerate(inputs) if "quota name" in r)
    assert not any("accept" in r for r in inputs[:last_quota]) and "accept" in inputs[-1]
    assert "quota_wg0_off" not in table and "plain" not in table


def _chains(table):
    chains, current = {}, None
    for line in table.splitlines():
        line = line.strip()
        if line.startswith("chain "):
            current = chains.setdefault(line.split()[1], [])
        elif current is not None and line and line != "}" and not line.startswith("type "):
            current.append(line)
    return chains


def test_a_quota_alone_needs_the_table_and_its_output_chain():
    iface = server(client_groups={}, clients={"phone": {"limits": {"quota": "1MiB"}}})
    assert wgf_firewall.needs_table(iface)
    assert "chain output" in wgf_firewall.nft_table([iface])
    assert iface["warnings"] == []


def test_iptables_counts_too_and_is_warned_about_nothing():
    assert server("iptables")["warnings"] == []


def test_the_counts_are_no_change_of_the_table():
    listed = "table inet wireguard {\n\tquota q {\n\t\tover 1 mbytes used 5 kbytes\n\t}\n}\n"
    assert wgf_quota.strip_used(listed) == (
        "table inet wireguard {\n\tquota q {\n\t\tover 1 mbytes\n\t}\n}\n"
    )


# ------------------------------------------------------------------ the plan


def _quotas_json(counts):
    return json.dumps(
        {
            "nftables": [
                {"quota": {"name": n, "table": "wireguard", "bytes": 1, "used": u}}
                for n, u in counts.items()
            ]
        }
    )


def _host(now=NOW):
    host = FakeHost()
    host.has_exec = lambda name: True
    host.clock = now.timestamp()
    host.iptables = {4: None, 6: None}
    return host


def test_a_changing_count_alone_replaces_nothing_and_a_replacement_keeps_it():
    iface = server()
    host = _host()
    plan = wgf_plan.firewall(host, [iface], "nftables")
    plan["nftables"][2]()
    assert "over 1048576 bytes\n" in host.nft
    # traffic was counted: the live table differs only in its counts
    host.nft = host.nft.replace("over 1048576 bytes\n", "over 1048576 bytes used 777 bytes\n")
    host.quotas_json = _quotas_json({"quota_wg0_phone": 777})
    assert wgf_plan.firewall(host, [iface], "nftables") == {}
    # another change of the table carries the live count into the new one
    changed = server(masquerade=["eth0"])
    plan = wgf_plan.firewall(host, [changed], "nftables")
    host.quotas_json = _quotas_json({"quota_wg0_phone": 900})  # counted on meanwhile
    plan["nftables"][2]()
    assert "over 1048576 bytes used 900 bytes" in host.nft and "masquerade" in host.nft


def test_after_a_reboot_the_new_table_starts_from_the_saved_count(tmp_path):
    host = _host()
    os.makedirs(wgf_quota.STATE_DIR)
    with open(os.path.join(wgf_quota.STATE_DIR, wgf_quota.COUNTERS), "w") as handle:
        handle.write("quota_wg0_phone 2026-12-06 600000 -\nquota_wg0_alice 2026-11 99 -\n")
    plan = wgf_plan.firewall(host, [server()], "nftables")
    plan["nftables"][2]()
    assert "over 1048576 bytes used 600000 bytes" in host.nft
    # alice's count is of November: December starts at 0
    assert f"over {10 * 2**30} bytes\n" in host.nft


def test_the_saver_is_armed_with_the_counted_clients_and_removed_without_them():
    iface = server()
    host = _host()
    plan = wgf_plan.quota_saver(host, [iface], "nftables")
    assert plan["quota saver"][:2] == (
        None,
        f"quota_wg0_alice wg0 alice {10 * 2**30} month\nquota_wg0_phone wg0 phone {MiB} day\n",
    )
    plan["quota saver"][2]()
    assert host.quota_armed
    script = os.path.join(wgf_quota.STATE_DIR, wgf_quota.SCRIPT)
    with open(script, encoding="utf-8") as handle:
        assert "/opt/salt/bin/salt-call" in handle.read()
    assert wgf_plan.quota_saver(host, [iface], "nftables") == {}
    host.quota_armed = False  # e.g. the OpenRC loop was killed
    assert "quota saver" in wgf_plan.quota_saver(host, [iface], "nftables")
    host.quota_armed = True
    # iptables counts the same clients with the same saver
    assert wgf_plan.quota_saver(host, [iface], "iptables") == {}
    # no quota left (or no firewall): stopped, its client list removed
    plan = wgf_plan.quota_saver(host, [iface], "none")
    plan["quota saver"][2]()
    assert not host.quota_armed
    assert not os.path.exists(os.path.join(wgf_quota.STATE_DIR, wgf_quota.CLIENTS))
    assert not os.path.exists(os.path.join(wgf_quota.STATE_DIR, wgf_quota.SCRIPT))
    host.asked.clear()
    assert wgf_plan.quota_saver(host, [iface], "none") == {}
    assert ("quota_saver_armed",) not in host.asked  # nothing there: systemd is not asked
    assert wgf_plan.quota_saver(host, [server(clients={})], "nftables") == {}


def test_the_systemd_units_save_often_after_boot_and_at_shutdown():
    units = wgf_quota.units()
    assert "OnUnitActiveSec=30s" in units["wireguard-quota.timer"]
    assert "OnBootSec=30s" in units["wireguard-quota.timer"]
    shutdown = units["wireguard-quota-shutdown.service"]
    assert f"ExecStop=/bin/sh {wgf_quota.STATE_DIR}/save" in shutdown
    assert "After=network.target nftables.service" in shutdown  # stops before its flush
    assert wgf_quota.enabled_units() == [
        "wireguard-quota.timer",
        "wireguard-quota-shutdown.service",
    ]


def test_the_openrc_loop_is_told_by_its_command_line():
    argv = wgf_quota.waiter_argv()
    assert wgf_quota.is_waiter("\0".join(argv).encode() + b"\0")
    assert not wgf_quota.is_waiter(b"/bin/sh\0-c\0sleep 1\0")


# ------------------------------------------------------------- the saver itself


@pytest.fixture
def saver(tmp_path):
    """The saver script in a directory of its own, with stand-ins for ``nft`` (its
    quotas from ``live.json``, each ``reset`` logged) and ``salt-call`` (answers while
    ``master`` exists)."""
    root = tmp_path / "state"
    root.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nft").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = reset ]; then echo "$@" >> {tmp_path}/resets; exit 0; fi\n'
        f"cat {tmp_path}/live.json 2>/dev/null || exit 1\n"
    )
    (bin_dir / "salt-call").write_text(
        "#!/bin/sh\n"
        f'[ -e {tmp_path}/master ] || exit 1\necho "$@" >> {tmp_path}/fired\n'
        "echo '{\"local\": true}'\n"
    )
    for tool in ("nft", "salt-call"):
        os.chmod(bin_dir / tool, 0o755)
    (root / "save").write_text(wgf_quota.script_text(None, str(root)))
    (root / "clients").write_text("quota_wg0_phone wg0 phone 1000 day\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def run(live=None):
        if live is not None:
            (tmp_path / "live.json").write_text(_quotas_json(live))
        subprocess.run(["sh", str(root / "save")], env=env, check=True, timeout=30)
        return wgf_quota.parse_counters((root / "counters").read_text())

    run.root, run.tmp = root, tmp_path
    return run


def _read(path):
    return path.read_text() if path.exists() else ""


def test_the_saver_keeps_the_live_count_and_keeps_it_when_the_table_is_gone(saver):
    today = wgf_quota.period_id("day", datetime.datetime.now(UTC))
    assert saver({"quota_wg0_phone": 300}) == {"quota_wg0_phone": (today, 300, None)}
    (saver.tmp / "live.json").unlink()  # a reboot: no table
    assert saver() == {"quota_wg0_phone": (today, 300, None)}
    assert os.stat(saver.root / "counters").st_mode & 0o777 == 0o600


def test_the_saver_restarts_the_count_in_a_new_period(saver):
    (saver.root / "counters").write_text("quota_wg0_phone 2020-01-01 1500 2020-01-01\n")
    today = wgf_quota.period_id("day", datetime.datetime.now(UTC))
    assert saver({"quota_wg0_phone": 1500}) == {"quota_wg0_phone": (today, 0, None)}
    assert _read(saver.tmp / "resets") == "reset quota inet wireguard quota_wg0_phone\n"


def test_the_saver_sends_the_over_quota_event_once_per_period_and_queues_it(saver):
    today = wgf_quota.period_id("day", datetime.datetime.now(UTC))
    saver({"quota_wg0_phone": 999})
    assert not (saver.root / "events").exists() or not os.listdir(saver.root / "events")
    saver({"quota_wg0_phone": 1000})  # used up; no master answers
    queued = os.listdir(saver.root / "events")
    assert len(queued) == 1
    data = json.loads((saver.root / "events" / queued[0]).read_text())
    assert data == {
        "interface": "wg0",
        "client": "phone",
        "quota": 1000,
        "period": "day",
        "period_id": today,
        "used": 1000,
    }
    (saver.tmp / "master").touch()
    saver({"quota_wg0_phone": 1400})
    fired = _read(saver.tmp / "fired").splitlines()
    assert len(fired) == 1 and fired[0].endswith(" wireguard/client/over_quota")
    assert os.listdir(saver.root / "events") == []
    saver({"quota_wg0_phone": 1600})  # still over: no second event this period
    assert len(_read(saver.tmp / "fired").splitlines()) == 1
    assert saver()["quota_wg0_phone"] == (today, 1600, today)
