"""The confirm states of issue 21 (``_states/wireguard_confirm.py``) with Salt's dunders
faked and the fake host adapter (``tests/support/fake_host.py``): whether a run arms an
undo for each kind of change, test mode, what is recorded and how, the probes after the
change (confirmed, not applicable, undone), the rollout's hold, the report of an undo,
and bad pillar refused before anything changes."""

import gc
import json
import os
import stat

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_confirm
import wgf_confirm_run
import wgf_confirm_undo
import wgf_keys
import wgf_layout
from tests.support import pipeline
from tests.support.fake_minion import IF, FakeMinion, hand_in
from tests.unit.conftest import StateModule, load

FILES = ("wireguard", "wireguard_files", "wireguard_interface", "wireguard_confirm")
MASTER = "10.7.0.254"
MASTER_LABEL = f"master {MASTER}:4506"
SPOKE = "10.7.0.2"


@pytest.fixture
def minion(tmp_path):
    return FakeMinion(tmp_path / "etc")


@pytest.fixture
def hold():
    return {"value": None}


@pytest.fixture
def states(minion, host, hold, tmp_path, monkeypatch):
    os.makedirs(minion.config_dir, exist_ok=True)
    salt = minion.functions()
    salt["pillar.get"] = lambda key, default=None, unmask=False: (
        minion.pillar
        if key == "wireguard"
        else hold["value"]
        if key == "wireguard_rollout:hold"
        else default
    )
    opts = {"test": False, "master": MASTER, "master_port": 4506, "file_client": "remote"}
    module = StateModule(FILES, salt, opts, tag="confirm_under_test")
    # after loading: loading the files reads the utils again
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    monkeypatch.setattr(wgf_layout, "SYSTEMD_UNIT_DIR", str(tmp_path / "systemd"))
    monkeypatch.setattr(wgf_layout, "INIT_SCRIPT_DIR", str(tmp_path / "init.d"))
    monkeypatch.setattr(wgf_confirm, "STATE_ROOT", str(tmp_path / "confirm"))
    hand_in(monkeypatch, host)
    return module


@pytest.fixture
def host():
    from tests.support.fake_host import FakeHost

    return FakeHost()


def state_dir():
    return wgf_confirm_run.state_dir(IF)


@pytest.fixture
def steady(states, minion, host):
    """A running interface exactly as pillar says, with confirm on (10 s; master, an
    address); the boot-time unit already installed by an earlier run."""
    private = wgf_keys.genkey()
    with open(os.path.join(minion.config_dir, f"{IF}.key"), "w") as handle:
        handle.write(private + "\n")
    minion.pillar["interfaces"][IF].update(
        mtu=1420, listen_port=51820, confirm={"timeout": 10, "probes": ["master", SPOKE]}
    )
    minion.live.update(public_key=wgf_keys.pubkey(private), listen_port=51820)
    host.ip[("addr", "show", "dev", IF)] = [
        {"mtu": 1420, "addr_info": [{"local": "10.7.0.1", "prefixlen": 24}]}
    ]
    assert states.config(IF, config_dir=minion.config_dir)["result"] is True
    assert "runs as its config file says" in states.interface(IF, minion.config_dir)["comment"]
    first = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert first["changes"] == {
        "boot_unit": {"old": None, "new": wgf_layout.confirm_restore_path(IF)}
    }
    host.done.clear()
    host.asked.clear()
    return private


def armed(host):
    return [d for d in host.done if d[0] == "arm_undo"]


# ------------------------------------------------------------------ the decision


def test_a_run_that_changes_nothing_arms_nothing(states, minion, host, steady):
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == f"{IF}: nothing changes, nothing to confirm"
    assert host.done == [] and not os.path.exists(state_dir())
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and ret["changes"] == {}
    assert "nothing armed" in ret["comment"]


def _file_change(minion, host):
    minion.pillar["interfaces"][IF]["post_up"] = ["logger up"]


def _live_change(minion, host):
    minion.live["listen_port"] = 40000  # drifted: the file already says 51820


def _peer_change(minion, host):
    minion.live["peers"][wgf_keys.pubkey(wgf_keys.genkey())] = {
        "allowed_ips": ["10.7.0.9/32"],
        "endpoint": None,
        "persistent_keepalive": None,
        "preshared_key_sha256": None,
    }  # not in pillar: purged


def _firewall_change(minion, host):
    minion.firewall = "nftables"
    host.executables.add("nft")
    minion.pillar["interfaces"][IF]["access"] = {"default": "drop"}


@pytest.mark.parametrize(
    ("change", "part"),
    [
        (_file_change, "file"),
        (_live_change, "live"),
        (_peer_change, "peers"),
        (_firewall_change, "firewall"),
    ],
)
def test_each_kind_of_change_to_a_running_interface_arms_the_undo(
    states, minion, host, steady, change, part
):
    change(minion, host)
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["result"] is True, ret["comment"]
    assert f"{IF}: " in ret["comment"] and part in ret["comment"].split(" change on ")[0]
    assert ret["changes"]["confirm"] == {
        "old": None,
        "new": {"timeout": 10, "probes": ["master", SPOKE]},
    }
    argv = armed(host)[0][1]
    assert argv[0] == "systemd-run" and "--unit=wireguard-confirm-wg7" in argv
    assert "--on-active=10" in argv and "--timer-property=AccuracySec=1s" in argv
    # the contract's path: the host adapter names it as systemd will run it
    assert argv[-3:] == ["/bin/sh", "/var/lib/wireguard-formula/confirm/wg7/undo", "timer"]
    assert os.path.exists(os.path.join(state_dir(), "armed"))


def test_a_firewall_change_records_the_live_table_for_the_undo(states, minion, host, steady):
    _firewall_change(minion, host)
    host.nft = "table inet wireguard {\n}\n"
    states.confirm_armed(IF, config_dir=minion.config_dir)
    with open(os.path.join(state_dir(), "firewall")) as handle:
        recorded = handle.read()
    assert recorded.startswith("table inet wireguard\ndelete table inet wireguard\n")
    assert recorded.endswith(host.nft)
    with open(os.path.join(state_dir(), "undo")) as handle:
        assert 'nft -f "$dir/firewall"' in handle.read()


#: ip(6)tables-save before the change: the formula's input chain, its jump, a rule of
#: the admin's own.
IPT_SAVED = """*filter
:INPUT ACCEPT [0:0]
:WIREGUARD-INPUT - [0:0]
-A INPUT -j WIREGUARD-INPUT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A WIREGUARD-INPUT -p udp -m udp --dport 51820 -m comment --comment "wg7 open_port" -j ACCEPT
COMMIT
"""


def _iptables_change(minion, host, v6=True):
    minion.firewall = "iptables"
    host.executables.update({"iptables-save", "ip6tables-save"})
    host.iptables = {4: IPT_SAVED, 6: IPT_SAVED if v6 else None}
    minion.pillar["interfaces"][IF]["access"] = {"default": "drop"}


def test_an_iptables_change_records_the_formulas_chains_for_the_undo(states, minion, host, steady):
    """Backend iptables: the formula's chains of each IP version are recorded
    (``firewall``, ``firewall6``: the iptables-restore input that puts them back), and
    the undo loads them and keeps the recorded jump; the admin's rule is no part of it."""
    _iptables_change(minion, host)
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and "firewall" in ret["comment"], ret["comment"]
    expected = (
        "*filter\n:WIREGUARD-INPUT - [0:0]\n:WIREGUARD-FORWARD - [0:0]\n"
        ":WIREGUARD-OUTPUT - [0:0]\n"
        '-A WIREGUARD-INPUT -p udp -m udp --dport 51820 -m comment --comment "wg7 open_port" '
        "-j ACCEPT\nCOMMIT\n*nat\n:WIREGUARD-POSTROUTING - [0:0]\nCOMMIT\n"
    )
    for name in ("firewall", "firewall6"):
        with open(os.path.join(state_dir(), name)) as handle:
            assert handle.read() == expected, name
        assert stat.S_IMODE(os.stat(os.path.join(state_dir(), name)).st_mode) == 0o600
    with open(os.path.join(state_dir(), "undo")) as handle:
        script = handle.read()
    for tool, record in (("iptables", "firewall"), ("ip6tables", "firewall6")):
        assert f'{tool}-restore --noflush --counters "$dir/{record}" || failed=1' in script
        assert (
            f"{tool} -w -t filter -C INPUT -j WIREGUARD-INPUT 2>/dev/null || "
            f"{tool} -w -t filter -I INPUT 1 -j WIREGUARD-INPUT || failed=1"
        ) in script
        assert f"{tool} -w -t filter -X WIREGUARD-FORWARD || failed=1" in script
        assert f"{tool} -w -t filter -X WIREGUARD-INPUT" not in script
    assert "dport 22" not in script
    # confirmed: the records go with the rest
    host.clock += 1
    assert states.confirm_checked(IF, config_dir=minion.config_dir)["result"] is True
    assert sorted(os.listdir(state_dir())) == ["meta.json"]


def test_the_iptables_record_carries_the_clients_quota_counts(states, minion, host, steady):
    """A client's quota count (both IP versions' counting rules) goes back with the
    undo's IPv4 record, on its first counting rule (``iptables-restore --counters``)."""
    _iptables_change(minion, host)
    rule = '-s 10.0.0.9/32 -i wg7 -m comment --comment "wg7 client c quota quota_wg7_c"'
    saved = IPT_SAVED.replace("COMMIT", f"-A WIREGUARD-INPUT {rule}\nCOMMIT", 1)
    host.iptables = {4: saved, 6: saved}
    host.iptables_counted = {
        4: f"[3:500] -A WIREGUARD-INPUT {rule}\n",
        6: f"[1:70] -A WIREGUARD-INPUT {rule.replace('10.0.0.9/32', 'fd00::9/128')}\n",
    }
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["result"] is True, ret["comment"]
    with open(os.path.join(state_dir(), "firewall")) as handle:
        assert f"[0:570] -A WIREGUARD-INPUT {rule}\n" in handle.read()
    with open(os.path.join(state_dir(), "firewall6")) as handle:
        assert "[0:" not in handle.read().replace("[0:0]", "")


def test_without_ip6tables_only_iptables_is_recorded(states, minion, host, steady):
    _iptables_change(minion, host, v6=False)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    assert os.path.exists(os.path.join(state_dir(), "firewall"))
    assert not os.path.exists(os.path.join(state_dir(), "firewall6"))
    with open(os.path.join(state_dir(), "undo")) as handle:
        script = handle.read()
    assert "iptables-restore" in script
    assert "ip6tables-restore" not in script and "ip6tables -w" not in script


def test_the_recorded_drop_in_is_reloaded_before_the_restart(states, minion, host, steady):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    with open(os.path.join(state_dir(), "undo")) as handle:
        script = handle.read()
    dropin = wgf_layout.dropin_path(IF, f"wg-quick@{IF}")
    reload = '[ "$reload" = 0 ] || systemctl daemon-reload || failed=1'
    assert dropin in script and reload in script
    assert script.index(reload) < script.index("systemctl restart")


def test_an_interface_not_running_or_taken_down_is_not_confirmed(states, minion, host, steady):
    minion.pillar["interfaces"][IF]["post_up"] = ["logger up"]
    minion.up = False
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and "not running before the change" in ret["comment"]
    minion.up = True
    minion.pillar["interfaces"][IF]["enabled"] = False
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert "taken down or removed" in ret["comment"]
    assert armed(host) == [] and not os.path.exists(state_dir())


def test_confirm_off_arms_nothing(states, minion, host, steady):
    minion.pillar["interfaces"][IF]["confirm"] = False
    minion.pillar["interfaces"][IF]["post_up"] = ["logger up"]
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["comment"] == f"{IF}: confirm is off" and host.done == []


def test_test_mode_says_it_would_arm_with_which_probes_and_writes_nothing(
    states, minion, host, steady
):
    _file_change(minion, host)
    states.__opts__["test"] = True
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert ret["result"] is None
    assert ret["comment"].startswith("a confirm would be armed: wg7: file change")
    assert "unless master, 10.7.0.2 answer" in ret["comment"]
    assert host.done == [] and not os.path.exists(state_dir())
    assert not [a for a in host.asked if a[0] in ("tcp_answers", "icmp_answers")]


# ---------------------------------------------------------------- the records


@pytest.mark.parametrize("had_rates", [True, False])
def test_the_undo_puts_the_clients_rates_script_back_or_removes_a_new_one(
    states, minion, host, steady, tmp_path, monkeypatch, had_rates
):
    """The restart of the undo runs the rates script (wg-quick's PostUp): the script of
    before the change, or none when there was none."""
    import wgf_tc

    monkeypatch.setattr(wgf_tc, "STATE_ROOT", str(tmp_path / "rates"))
    path = wgf_tc.script_path(IF)
    if had_rates:
        os.makedirs(tmp_path / "rates")
        with open(path, "w") as handle:
            handle.write("tc qdisc replace dev wg7 root handle 1: htb default 1\n")
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    with open(os.path.join(state_dir(), "undo")) as handle:
        script = handle.read()
    if had_rates:
        assert f'cp -p "$dir/rates" {path}.wgf-undo && mv -f {path}.wgf-undo {path}' in script
        with open(os.path.join(state_dir(), "rates")) as handle:
            assert handle.read().startswith("tc qdisc replace dev wg7")
    else:
        assert f"rm -f {path} || failed=1" in script
    assert script.index(path) < script.index("systemctl restart")


def test_the_records_are_root_only_and_no_key_is_in_any_argv_or_output(
    states, minion, host, steady
):
    private = steady
    _file_change(minion, host)
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    directory = state_dir()
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.dirname(directory)).st_mode) == 0o700
    for name in os.listdir(directory):
        assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600, name
    with open(os.path.join(directory, "key")) as handle:
        assert handle.read().strip() == private  # the undo puts the key file back
    with open(os.path.join(directory, "conf")) as handle:
        assert private in handle.read()
    for name in ("undo", "meta.json", "before.json", "armed"):
        with open(os.path.join(directory, name)) as handle:
            assert private not in handle.read(), name
    assert private not in repr(host.done) and private not in repr(ret)
    with open(wgf_layout.confirm_restore_path(IF)) as handle:
        assert private not in handle.read()


def test_the_probes_answers_before_the_change_are_recorded(states, minion, host, steady):
    _file_change(minion, host)
    host.answers[("icmp", SPOKE)] = False
    states.confirm_armed(IF, config_dir=minion.config_dir)
    with open(os.path.join(state_dir(), "before.json")) as handle:
        before = json.load(handle)
    assert before["targets"] == {MASTER_LABEL: True, SPOKE: False}
    assert ("tcp_answers", MASTER, 4506) in host.asked


# ---------------------------------------------------------------- after the change


def test_probes_that_answer_confirm_and_disarm(states, minion, host, steady):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    host.clock += 3
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is True
    assert ret["comment"] == f"{IF}: confirmed in 3 s"
    assert ret["changes"] == {"confirm": {"old": "armed", "new": "confirmed"}}
    assert ("disarm_undo", ["systemctl", "stop", "wireguard-confirm-wg7.timer"]) in host.done
    assert sorted(os.listdir(state_dir())) == ["meta.json"]  # the key is gone
    assert wgf_confirm_run.status(IF)["armed"] is False


def test_a_probe_that_failed_before_the_change_is_not_applicable(states, minion, host, steady):
    _file_change(minion, host)
    host.answers[("icmp", SPOKE)] = False
    states.confirm_armed(IF, config_dir=minion.config_dir)
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is True
    assert ret["comment"] == (
        f"{IF}: confirmed in 0 s; {SPOKE}: not applicable (did not answer before the change)"
    )
    assert not [d for d in host.done if d[0] == "run_undo"]


def test_a_probe_that_stops_answering_undoes_the_change_at_once(states, minion, host, steady):
    _file_change(minion, host)
    host.answers[("tcp", MASTER, 4506)] = [True, False]
    states.confirm_armed(IF, config_dir=minion.config_dir)
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is False
    assert ret["comment"] == f"{IF}: change undone: {MASTER_LABEL} did not answer within 10 s"
    assert ret["changes"] == {
        "confirm": {"old": "armed", "new": "undone"},
        "failed": {"old": [], "new": [MASTER_LABEL]},
    }
    assert ("run_undo", IF, "now") in host.done
    # it kept trying until 2 s before the timer's deadline, not after it
    assert 1_000_000 + 8 <= host.clock <= 1_000_000 + 9
    status = wgf_confirm_run.status(IF)
    assert status["armed"] is False
    assert status["undone"]["mode"] == "now" and status["undone"]["failed"] == [MASTER_LABEL]
    assert not os.path.exists(os.path.join(state_dir(), "key"))


def test_a_probe_that_answers_late_but_in_time_confirms(states, minion, host, steady):
    _file_change(minion, host)
    host.answers[("icmp", SPOKE)] = [True, False, False, False, True]
    states.confirm_armed(IF, config_dir=minion.config_dir)
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and ret["comment"] == f"{IF}: confirmed in 3 s"


def test_the_probes_wait_with_the_garbage_collector_running(states, minion, host, steady):
    """The collector is paused while states build data (``wgf_gc``), not while confirm's
    probes wait for up to their deadline."""
    _file_change(minion, host)
    host.answers[("icmp", SPOKE)] = [True, False, True]
    collecting, sleep = [], host.sleep
    host.sleep = lambda seconds: collecting.append(gc.isenabled()) or sleep(seconds)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    assert states.confirm_checked(IF, config_dir=minion.config_dir)["result"] is True
    assert collecting and all(collecting)


def test_an_undo_the_timer_made_fails_the_check(states, minion, host, steady):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    host.run_undo(IF, "timer")  # the deadline passed while the run hung
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is False and "undone by the timer" in ret["comment"]
    # the next run changes nothing: the old marker is no failure of it
    states.__context__.clear()
    minion.pillar["interfaces"][IF].pop("post_up")
    assert states.confirm_armed(IF, config_dir=minion.config_dir)["result"] is True
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is True and "nothing armed" in ret["comment"]


def test_a_timer_that_fires_while_the_probes_answer_is_no_confirm(states, minion, host, steady):
    """The deadline passes during the last probe: the timer's undo takes the lock
    first, so the change is undone, and the state says so instead of "confirmed"."""
    _file_change(minion, host)
    host.answers[("tcp", MASTER, 4506)] = [True, lambda: host.run_undo(IF, "timer")]
    states.confirm_armed(IF, config_dir=minion.config_dir)
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is False
    assert ret["comment"].startswith(f"{IF}: change undone by the timer at the deadline (10 s)")


@pytest.mark.parametrize("timer_fired", [True, False], ids=["timer-undid-it", "still-armed"])
def test_a_probe_that_finds_no_interface_while_the_timer_undoes_is_the_timers_undo(
    states, minion, host, steady, timer_fired
):
    """A run slower than the deadline: the timer's undo restarts the interface, and a
    probe running meanwhile finds none (`wg show` fails). The state says the timer
    undid the change; without the timer's undo the probe's error stands."""
    _file_change(minion, host)

    def interface_gone():
        if timer_fired:
            host.run_undo(IF, "timer")
        raise CommandExecutionError(f"wg show {IF} failed: Unable to access interface")

    host.answers[("tcp", MASTER, 4506)] = [True, interface_gone]
    states.confirm_armed(IF, config_dir=minion.config_dir)
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is False
    if timer_fired:
        assert ret["comment"] == f"{IF}: change undone by the timer at the deadline (10 s)"
        assert ("run_undo", IF, "now") not in host.done
    else:
        assert "Unable to access interface" in ret["comment"], ret["comment"]
        assert wgf_confirm_run.status(IF)["armed"] is True  # the timer still holds it


def _peer_line(key, handshake, rx, allowed="10.7.0.2/32"):
    return f"{key}\t(none)\t198.18.0.2:51820\t{allowed}\t{handshake}\t{rx}\t100\toff\n"


@pytest.mark.parametrize(
    ("handshake", "rx", "answered"),
    [(+5, 500, True), (-30, 900, True), (-30, 500, False)],
    ids=["handshook-again", "bytes-through-the-session", "silent"],
)
def test_the_peers_probe_wants_a_handshake_or_bytes_from_each_recent_peer(
    states, minion, host, steady, handshake, rx, answered
):
    peer = wgf_keys.pubkey(wgf_keys.genkey())
    iface = minion.pillar["interfaces"][IF]
    iface["peers"] = {"hub": {"public_key": peer, "allowed_ips": ["10.7.0.2/32"]}}
    iface["confirm"] = {"timeout": 10, "probes": ["peers"]}
    minion.live["peers"][peer] = {
        "allowed_ips": ["10.7.0.2/32"],
        "endpoint": None,
        "persistent_keepalive": None,
        "preshared_key_sha256": None,
    }
    _file_change(minion, host)
    head = "(hidden)\tpub\t51820\toff\n"
    now = int(host.clock)
    host.dumps[IF] = head + _peer_line(peer, now - 30, 500)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    host.dumps[IF] = head + _peer_line(peer, now + handshake, rx)
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ("icmp_answers", SPOKE, IF) in host.asked  # traffic sent to make it answer
    if answered:
        assert ret["result"] is True, ret["comment"]
    else:
        assert ret["comment"] == f"{IF}: change undone: peer hub did not handshake within 10 s"


# ---------------------------------------------------------------- rollout hold


def test_the_rollout_hold_keeps_a_confirmed_change_armed(states, minion, host, steady, hold):
    hold["value"] = 120
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    host.done.clear()
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is True
    assert ret["comment"].startswith(f"{IF}: confirmed in 0 s; kept armed for 120 s")
    assert ret["changes"] == {"confirm": {"old": "armed", "new": "held"}}
    assert host.done[0][0] == "disarm_undo"
    assert "--on-active=120" in armed(host)[0][1]
    status = wgf_confirm_run.status(IF)
    assert status["armed"] is True and status["deadline"] == host.clock + 120
    # the runner accepts: disarmed, the records deleted
    assert wgf_confirm_run.accept(host, IF) is True
    assert wgf_confirm_run.status(IF)["armed"] is False
    assert not os.path.exists(os.path.join(state_dir(), "key"))


@pytest.mark.parametrize("value", [1, 3601, "soon", True])
def test_a_bad_hold_is_refused_naming_it(states, minion, host, steady, hold, value):
    hold["value"] = value
    ret = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert ret["result"] is False and ret["comment"].startswith("wireguard_rollout:hold: ")
    assert host.done == []


# ---------------------------------------------------------------- the report


def test_an_undo_not_reported_is_sent_once_as_an_event(states, minion, host, steady):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    host.run_undo(IF, "timer")
    minion.pillar["interfaces"][IF].pop("post_up")
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    assert "reported 1 earlier undo(s) (wireguard/confirm/undone)" in ret["comment"]
    assert host.events == [
        (
            "wireguard/confirm/undone",
            {
                "interface": IF,
                "mode": "timer",
                "time": int(host.clock),
                "failed": [],
                "steps_failed": False,
            },
        )
    ]
    assert not os.path.exists(os.path.join(state_dir(), "key"))
    states.confirm_armed(IF, config_dir=minion.config_dir)
    assert len(host.events) == 1


def test_on_openrc_a_detached_waiter_arms_and_an_init_script_restores_at_boot(
    states, minion, host, steady, tmp_path, monkeypatch
):
    host.systemd = False
    _file_change(minion, host)
    ret = states.confirm_armed(IF, config_dir=minion.config_dir)
    path = wgf_layout.confirm_restore_path(IF, "openrc")
    assert path == str(tmp_path / "init.d" / f"wireguard-confirm-restore.{IF}")
    assert ret["result"] is True and ret["changes"]["boot_unit"] == {"old": None, "new": path}
    assert ("install_init_script", path, f"wireguard-confirm-restore.{IF}", "boot") in host.done
    assert armed(host) == [("arm_undo", wgf_confirm_undo.waiter_argv(IF, 10))]
    with open(os.path.join(state_dir(), "undo")) as handle:
        script = handle.read()
    assert "rc-service" in script and "systemctl" not in script
    with open(path) as handle:
        assert handle.read().startswith("#!/sbin/openrc-run\n")
    check = states.confirm_checked(IF, config_dir=minion.config_dir)
    assert check["result"] is True and check["comment"].startswith(f"{IF}: confirmed in")
    assert ("disarm_undo", "kill the waiter", IF) in host.done
    ret = states.confirm_absent(IF)
    assert set(ret["changes"]) == {"boot_unit", "records"}
    assert ("remove_init_script", path, f"wireguard-confirm-restore.{IF}", "boot") in host.done
    assert not os.path.exists(path)


def test_confirm_absent_disarms_and_removes_the_unit_and_records(states, minion, host, steady):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    ret = states.confirm_absent(IF)
    assert ret["result"] is True and set(ret["changes"]) == {"boot_unit", "confirm", "records"}
    assert not os.path.exists(state_dir())
    assert not os.path.exists(wgf_layout.confirm_restore_path(IF))
    assert states.confirm_absent(IF)["changes"] == {}


# ---------------------------------------------------------------- bad pillar


def refused(pillar, **facts):
    with pytest.raises(SaltInvocationError) as info:
        pipeline.run(pillar, **facts)
    return str(info.value)


@pytest.mark.parametrize(
    ("confirm", "place"),
    [
        ({"timeout": 4}, "wireguard:interfaces:wg0:confirm:timeout"),
        ({"timeout": 30.5}, "wireguard:interfaces:wg0:confirm:timeout"),
        ({"probes": []}, "wireguard:interfaces:wg0:confirm:probes"),
        ({"probes": ["mastre"]}, "wireguard:interfaces:wg0:confirm:probes"),
        ({"probes": ["10.0.0.1:99999"]}, "wireguard:interfaces:wg0:confirm:probes"),
        ({"probes": ["10.0.0.300"]}, "wireguard:interfaces:wg0:confirm:probes"),
        ({"wait": 30}, "wireguard:interfaces:wg0:confirm"),
    ],
)
def test_a_bad_confirm_is_refused_naming_interface_and_key(confirm, place):
    message = refused({"interfaces": {"wg0": {"address": "10.0.0.1/24", "confirm": confirm}}})
    assert f"{place}: " in message


def test_a_bad_lookup_confirm_is_refused_by_the_map_check():
    with pytest.raises(SaltInvocationError) as info:
        wgf_layout.check_map({**_defaults(), "confirm": {"probes": []}})
    assert "wireguard:lookup:confirm:probes: " in str(info.value)


def _defaults():
    import yaml

    with open(
        os.path.join(os.path.dirname(__file__), "../../wireguard/parameters/defaults.yaml")
    ) as f:
        return yaml.safe_load(f)["values"]


@pytest.mark.parametrize("init", ["sysvinit", "runit", None])
def test_confirm_is_refused_where_neither_systemd_nor_openrc_can_undo(init):
    pillar = {"interfaces": {"wg0": {"address": "10.0.0.1/24", "confirm": True}}}
    message = refused(pillar, init=init)
    assert "wireguard:interfaces:wg0:confirm: " in message
    assert "systemd or OpenRC" in message and repr(init) in message


def test_confirm_is_taken_on_openrc():
    pillar = {"interfaces": {"wg0": {"address": "10.0.0.1/24", "confirm": True}}}
    got = pipeline.run(pillar, init="openrc")
    assert got["interfaces"]["wg0"]["confirm"] == {"timeout": 30, "probes": ["master"]}


def test_the_pipeline_carries_the_effective_confirm_per_interface():
    pillar = {
        "interfaces": {
            "wg0": {"address": "10.0.0.1/24"},
            "wg1": {"address": "10.1.0.1/24", "confirm": {"probes": ["peers", "10.1.0.2:22"]}},
            "wg2": {"address": "10.2.0.1/24", "confirm": False},
        }
    }
    got = pipeline.interfaces(pillar, confirm={"timeout": 60})
    assert got["wg0"]["confirm"] == {"timeout": 60, "probes": ["master"]}
    assert got["wg1"]["confirm"] == {"timeout": 60, "probes": ["peers", "10.1.0.2:22"]}
    assert got["wg2"]["confirm"] is None
    assert pipeline.interfaces(pillar)["wg0"]["confirm"] is None  # off unless asked for


# ------------------------------------------------------------ execution functions


@pytest.fixture
def module(states, host):
    """``_modules/wireguard_confirm.py`` with the fake host (``states`` handed it in)."""
    loaded = load("_modules/wireguard_confirm.py", "wireguard_confirm_module_under_test")
    loaded.__salt__ = {}
    return loaded


def test_status_accept_undo_and_report_as_the_runner_sees_them(
    states, module, minion, host, steady
):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    assert module.confirm_status() == {
        IF: {
            "armed": True,
            "deadline": host.clock + 10,
            "probes": ["master", SPOKE],
            "undone": None,
        }
    }
    assert module.confirm_undo(IF) == {IF: "undone"}
    assert ("run_undo", IF, "now") in host.done
    undone = module.confirm_status(IF)[IF]["undone"]
    assert undone["mode"] == "now" and undone["failed"] == []  # no probe failed: asked
    assert module.confirm_undo(IF) == {IF: "not armed"}
    assert module.confirm_accept(IF) == {IF: "not armed"}
    sent = module.confirm_report()
    assert [d["interface"] for d in sent] == [IF] and host.events[0][0] == wgf_confirm.EVENT_UNDONE
    assert module.confirm_report() == []


def test_accept_disarms_and_deletes_the_records(states, module, minion, host, steady):
    _file_change(minion, host)
    states.confirm_armed(IF, config_dir=minion.config_dir)
    assert module.confirm_accept() == {IF: "confirmed"}
    assert ("disarm_undo", ["systemctl", "stop", "wireguard-confirm-wg7.timer"]) in host.done
    assert module.confirm_status(IF)[IF]["armed"] is False
    assert not os.path.exists(os.path.join(state_dir(), "key"))


def test_status_lists_an_interface_by_its_boot_unit_too(states, module, minion, host, steady):
    """The boot unit the steady run installed is found without a state directory (clean
    removes it whatever pillar says)."""
    assert not os.path.exists(state_dir())
    assert module.confirm_status() == {
        IF: {"armed": False, "deadline": None, "probes": [], "undone": None}
    }
