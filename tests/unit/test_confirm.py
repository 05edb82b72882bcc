"""Confirmed changes (``_utils/wgf_confirm.py``, issue 21): the ``confirm`` settings, the
probes, whether a run arms an undo, the undo's units and command line, and the verdict
of the probes."""

import ipaddress
import itertools
import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError
from salt.utils.network import parse_host_port

import wgf_addr
import wgf_confirm as c
import wgf_confirm_undo as u
import wgf_iptables
import wgf_quota_ipt

KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
#: What systemd accepts in a unit name (``unit_name_is_valid``): these characters and
#: one ``.`` before the suffix.
UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.\\@-]+")

interface_names = st.from_regex(r"[a-zA-Z0-9_=.-]{1,15}", fullmatch=True).filter(
    lambda n: n not in (".", "..")
)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(1, 65535)


def refusal(value, interface=None):
    with pytest.raises(SaltInvocationError) as info:
        c.check(value, interface)
    return str(info.value)


# ------------------------------------------------------------------------- timeout


@given(st.integers(c.TIMEOUT_MIN, c.TIMEOUT_MAX))
def test_a_whole_timeout_from_5_to_3600_is_taken(seconds):
    assert c.check({"timeout": seconds}) == {"timeout": seconds}


@given(st.integers().filter(lambda n: not c.TIMEOUT_MIN <= n <= c.TIMEOUT_MAX))
def test_a_timeout_out_of_range_is_refused_naming_the_place(seconds):
    message = refusal({"timeout": seconds})
    assert message.startswith("wireguard:lookup:confirm:timeout: ")
    assert "5-3600" in message


@pytest.mark.parametrize("value", [True, False, 30.0, 30.5, "30", None, [30], {"s": 30}])
def test_a_timeout_that_is_no_whole_number_is_refused(value):
    message = refusal({"timeout": value}, "wg0")
    assert message.startswith("wireguard:interfaces:wg0:confirm:timeout: ")
    assert "whole number" in message


def test_a_huge_timeout_is_refused_without_showing_it():
    message = refusal({"timeout": 10**5000})
    assert message.startswith("wireguard:lookup:confirm:timeout")


# -------------------------------------------------------------------------- probes


def probes(*written):
    return c.check({"probes": list(written)})["probes"]


def test_the_probe_words_and_shapes_become_typed_records():
    assert probes("master", "peers", "10.0.0.1", "10.0.0.1:22", "[fd00::1]:22", "fd00::1") == (
        c.MasterProbe(),
        c.PeersProbe(),
        c.IcmpProbe("10.0.0.1"),
        c.TcpProbe("10.0.0.1", 22),
        c.TcpProbe("fd00::1", 22),
        c.IcmpProbe("fd00::1"),
    )
    assert probes("salt.example.com:4506") == (c.TcpProbe("salt.example.com", 4506),)


def test_duplicate_probes_count_once_in_their_first_place():
    assert probes("master", "10.0.0.1", "master", "10.0.0.1") == (
        c.MasterProbe(),
        c.IcmpProbe("10.0.0.1"),
    )
    assert probes("fd00:0::1", "fd00::1") == (c.IcmpProbe("fd00::1"),)


@given(st.one_of(ipv4, ipv6))
def test_an_address_is_an_icmp_probe_normalised(address):
    (probe,) = probes(address)
    assert probe == c.IcmpProbe(str(ipaddress.ip_address(address)))
    assert str(probe) == str(ipaddress.ip_address(address))


@given(st.one_of(ipv4, ipv6), ports)
def test_an_address_and_port_is_a_tcp_probe_written_back_the_same(address, port):
    written = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    (probe,) = probes(written)
    assert probe == c.TcpProbe(address, port)
    assert str(probe) == written
    assert parse_host_port(written) == (ipaddress.ip_address(address).compressed, port)


@pytest.mark.parametrize(
    "value, words",
    [
        ("mastr", "did you mean 'master'"),
        ("peer", "did you mean 'peers'"),
        ("ping", "unknown probe 'ping'"),
        ("salt.example.com", "unknown probe"),
        ("10.0.0.256", "not an IPv4 address"),
        ("10.0.0.300", "not an IPv4 address"),
        ("10.0.0.1:0", "out of range"),
        ("10.0.0.1:65536", "out of range"),
        ("10.0.0.1:70000", "70000 is out of range"),
        ("host:", "has no port"),
        ("10.0.0.1:ssh", "is not a number"),
        ("10.0.0.1:", "has no port"),
        ("[fd00::1]", "has no port"),
        ("[fd00::zz]:22", "is not an IPv6 address"),
        ("fd00::1%eth0", "IPv6 address without brackets"),
        ("bad host:22", "not a valid host name"),
        ("10.0.0.1\n", "control characters"),
    ],
)
def test_a_bad_probe_is_refused_naming_the_place_and_the_value(value, words):
    message = refusal({"probes": ["master", value]}, "wg0")
    assert message.startswith("wireguard:interfaces:wg0:confirm:probes: ")
    assert words in message
    if value.isprintable():  # which of the probes: the whole value, not a part of it
        assert repr(value) in message, message


@pytest.mark.parametrize("value", [22, True, None, ["master"], {"master": 1}])
def test_a_probe_that_is_no_string_is_refused(value):
    message = refusal({"probes": [value]})
    assert message.startswith("wireguard:lookup:confirm:probes: ")
    assert "no probe" in message


def test_an_empty_list_of_probes_is_refused():
    message = refusal({"probes": []})
    assert message.startswith("wireguard:lookup:confirm:probes: [] ")
    assert "empty" in message


@pytest.mark.parametrize("value", ["master", "master,peers", {"master": True}, 1, True])
def test_probes_that_are_no_list_are_refused(value):
    assert "expected a list" in refusal({"probes": value}, "wg1")


@pytest.mark.parametrize("value", [KEY, f"{KEY}:22", f"[{KEY}]:22", f"{KEY[:20]}:{KEY}"])
def test_a_key_typed_as_a_probe_is_not_shown(value):
    message = refusal({"probes": [value]})
    assert KEY not in message


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_any_text_is_a_probe_or_refused_with_the_place(value):
    try:
        (probe,) = probes(value)
    except SaltInvocationError as error:
        assert str(error).startswith("wireguard:lookup:confirm:probes: ")
        return
    assert isinstance(probe, (c.MasterProbe, c.PeersProbe, c.IcmpProbe, c.TcpProbe))
    assert probes(str(probe)) == (probe,)  # what a probe shows is read back as itself


# ------------------------------------------------------------------- the settings


@pytest.mark.parametrize("value", ["yes", 30, ["master"], "on"])
def test_confirm_must_be_a_mapping_or_a_bool(value):
    assert refusal(value, "wg0").startswith("wireguard:interfaces:wg0:confirm: expected")
    assert refusal(value).startswith("wireguard:lookup:confirm: expected")


def test_an_unknown_confirm_key_is_refused_with_a_hint():
    message = refusal({"timout": 30})
    assert message == "wireguard:lookup:confirm: unknown key 'timout'; did you mean 'timeout'?"
    assert "known keys: timeout, probes" in refusal({"when": 1})
    assert "unknown key" in refusal({7: 1})


def test_true_false_and_absent():
    assert c.check(None) is None
    assert c.check(False) is False
    assert c.check(True) == {}


def test_confirm_is_off_unless_lookup_or_the_interface_turns_it_on():
    assert c.effective(None, None, "wg0") is None
    assert c.effective(False, None, "wg0") is None
    assert c.effective(None, False, "wg0") is None
    assert c.effective({"timeout": 60}, False, "wg0") is None
    assert c.effective(True, None, "wg0") == c.Confirm(30, (c.MasterProbe(),))
    assert c.effective(None, {"timeout": 10}, "wg0") == c.Confirm(10, (c.MasterProbe(),))
    assert c.effective(None, True, "wg0") == c.Confirm()


def test_an_interface_overrides_lookup_key_by_key():
    lookup = {"timeout": 60, "probes": ["master"]}
    assert c.effective(lookup, None, "wg0") == c.Confirm(60, (c.MasterProbe(),))
    assert c.effective(lookup, {"probes": ["peers"]}, "wg0") == c.Confirm(60, (c.PeersProbe(),))
    assert c.effective(lookup, {"timeout": 5}, "wg0") == c.Confirm(5, (c.MasterProbe(),))
    assert c.effective(lookup, True, "wg0") == c.Confirm(60, (c.MasterProbe(),))


def test_every_value_is_checked_also_where_confirm_is_off():
    with pytest.raises(SaltInvocationError, match="wireguard:interfaces:wg1:confirm:timeout"):
        c.effective_all(None, {"wg0": {}, "wg1": {"confirm": {"timeout": 1}}})
    with pytest.raises(SaltInvocationError, match="wireguard:lookup:confirm:probes"):
        c.effective(
            {"probes": []},
            False,
            "wg0",
        )
    assert c.effective_all({"timeout": 9}, {"wg1": {"confirm": False}, "wg0": None}) == {
        "wg0": c.Confirm(9, (c.MasterProbe(),)),
        "wg1": None,
    }


def test_a_bad_interface_name_is_refused():
    with pytest.raises(SaltInvocationError):
        c.effective(True, None, "wg+")
    with pytest.raises(SaltInvocationError) as info:
        c.check({"timeout": 1}, "wg0\nx")
    assert "wg0\nx" not in str(info.value)


# ---------------------------------------------------------------------- the decision

PARTS = ("file", "live", "peers", "firewall")


@given(
    st.booleans(),
    st.booleans(),
    st.fixed_dictionaries({part: st.booleans() for part in PARTS}),
    st.sampled_from([None, c.Confirm()]),
)
def test_arm_only_for_a_change_to_a_running_interface_that_stays(running, kept, parts, confirm):
    changes = c.Changes(running=running, kept=kept, **parts)
    decision = c.decide("wg0", changes, confirm)
    assert decision.arm == bool(confirm and running and kept and any(parts.values()))
    assert decision.reason.startswith("wg0: ")
    if decision.arm:
        assert "undone in 30 s unless master answer" in decision.reason
        for part in PARTS:
            assert (part in decision.reason) == parts[part]


def test_the_reasons_not_to_arm():
    confirm = c.Confirm()
    reason = c.decide("wg0", c.Changes(running=True), confirm).reason
    assert reason == "wg0: nothing changes, nothing to confirm"
    reason = c.decide("wg0", c.Changes(running=False, file=True), confirm).reason
    assert "not running" in reason and "no working path" in reason
    reason = c.decide("wg0", c.Changes(running=True, kept=False, file=True), confirm).reason
    assert "removed" in reason
    assert c.decide("wg0", c.Changes(running=True, file=True), None).reason == (
        "wg0: confirm is off"
    )


def test_test_mode_says_whether_and_with_which_probes():
    confirm = c.Confirm(45, (c.MasterProbe(), c.TcpProbe("10.0.0.1", 22)))
    armed = c.decide("wg0", c.Changes(running=True, peers=True), confirm)
    assert c.test_comment("wg0", armed) == (
        "a confirm would be armed: wg0: peers change on a running interface: "
        "undone in 45 s unless master, 10.0.0.1:22 answer"
    )
    idle = c.decide("wg0", c.Changes(running=True), confirm)
    assert c.test_comment("wg0", idle).startswith("no confirm would be armed: ")


# ----------------------------------------------------------------- units and argv


def test_unit_names():
    assert c.timer_unit("wg0") == "wireguard-confirm-wg0.timer"
    assert c.service_unit("wg0") == "wireguard-confirm-wg0.service"
    assert c.restore_unit("wg0") == "wireguard-confirm-restore-wg0.service"
    assert c.unit_name("wg=0") == "wireguard-confirm-wg\\x3d0"
    with pytest.raises(SaltInvocationError):
        c.unit_name("wg0;reboot")


@given(interface_names, interface_names)
def test_unit_names_are_valid_and_one_per_interface(one, other):
    for name in (c.timer_unit(one), c.service_unit(one), c.restore_unit(one)):
        assert UNIT_CHARS.fullmatch(name) and len(name) <= 255
    assert (c.unit_name(one) == c.unit_name(other)) == (one == other)
    assert (c.restore_unit(one) == c.restore_unit(other)) == (one == other)


@pytest.mark.skipif(not shutil.which("systemd-escape"), reason="no systemd-escape")
def test_the_escape_is_the_one_systemd_writes():
    out = subprocess.run(["systemd-escape", "="], capture_output=True, text=True, check=True)
    assert c.unit_part("wg=0") == f"wg{out.stdout.strip()}0"


@given(interface_names, st.sampled_from(c.UNDO_MODES))
def test_the_undo_command_names_the_root_only_script_and_nothing_secret(interface, mode):
    argv = u.undo_argv(interface, mode)
    assert argv == [c.SHELL, f"/var/lib/wireguard-formula/confirm/{interface}/undo", mode]
    assert not any(wgf_addr.KEY_SHAPED.search(arg) for arg in argv)


def test_the_state_directory_and_its_modes():
    assert c.state_dir("wg0") == "/var/lib/wireguard-formula/confirm/wg0"
    assert (c.STATE_DIR_MODE, c.STATE_FILE_MODE) == (0o700, 0o600)
    with pytest.raises(SaltInvocationError):
        c.state_dir("..")
    with pytest.raises(ValueError):
        u.undo_argv("wg0", "later")


def test_arming_is_a_transient_timer_with_a_deadline_of_one_second_accuracy():
    argv = u.arm_argv("wg0", 30)
    assert argv[0] == "systemd-run"
    assert "--unit=wireguard-confirm-wg0" in argv
    assert "--on-active=30" in argv
    assert "--timer-property=AccuracySec=1s" in argv
    assert argv[-3:] == u.undo_argv("wg0", "timer")
    assert not any(wgf_addr.KEY_SHAPED.search(arg) for arg in argv)
    with pytest.raises(SaltInvocationError):
        u.arm_argv("wg0", 4)
    with pytest.raises(SaltInvocationError):
        u.arm_argv("wg0", True)


def test_disarming_stops_the_timer_and_never_an_undo_under_way():
    assert u.disarm_argv("wg0") == ["systemctl", "stop", "wireguard-confirm-wg0.timer"]


def test_the_openrc_waiter_waits_in_a_cgroup_of_its_own_then_runs_the_undo():
    argv = u.waiter_argv("wg0", 30)
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3:] == [
        "wireguard-confirm-wg0",
        "30",
        "/var/lib/wireguard-formula/confirm/wg0/undo",
    ]
    script = argv[2]
    assert 'echo $$ > "$root/$0/cgroup.procs"' in script
    assert script.rstrip().endswith('exec /bin/sh "$2" timer')
    assert not wgf_addr.KEY_SHAPED.search(" ".join(argv))
    with pytest.raises(SaltInvocationError):
        u.waiter_argv("wg0", 4)
    done = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_disarm_kills_only_the_waiter_of_its_interface_still_waiting():
    waiting = "\0".join(u.waiter_argv("wg0", 30)).encode() + b"\0"
    assert u.is_waiter(waiting, "wg0")
    assert not u.is_waiter(waiting, "wg1")
    # once it runs the undo, its command line is the script's: left to finish
    running = b"/bin/sh\0/var/lib/wireguard-formula/confirm/wg0/undo\0timer\0"
    assert not u.is_waiter(running, "wg0")
    assert not u.is_waiter(b"sleep\x0030\0", "wg0")  # a process id used again
    assert not u.is_waiter(b"", "wg0")


def test_the_openrc_boot_script_runs_before_the_interface_only_while_armed(tmp_path):
    text = u.restore_script_text("wg0", "wg-quick.wg0")
    lines = text.splitlines()
    assert lines[0] == "#!/sbin/openrc-run"
    assert "    before wg-quick.wg0 net" in lines
    assert "    [ -e /var/lib/wireguard-formula/confirm/wg0/armed ] || return 0" in lines
    assert "    /bin/sh /var/lib/wireguard-formula/confirm/wg0/undo boot" in lines
    assert not wgf_addr.KEY_SHAPED.search(text)
    # what openrc-run would call: start() runs the undo at boot only while armed
    root = tmp_path / "confirm"
    (root / "wg0").mkdir(parents=True)
    (root / "wg0" / "undo").write_text('echo "undo $1" >> "$(dirname "$0")/ran"\n')
    script = tmp_path / "script"
    script.write_text(u.restore_script_text("wg0", "wg-quick.wg0", root=str(root)))
    for armed in (False, True):
        if armed:
            (root / "wg0" / "armed").write_text("boot_id=x\n")
        done = subprocess.run(
            ["sh", "-c", '. "$1" && start', "sh", str(script)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    assert (root / "wg0" / "ran").read_text() == "undo boot\n"
    with pytest.raises(ValueError):
        u.restore_script_text("wg0", "wg-quick.wg0; reboot")


def test_the_boot_unit_runs_before_the_interface_only_while_armed():
    text = u.restore_unit_text("wg0", "wg-quick@wg0")
    lines = text.splitlines()
    assert "Before=wg-quick@wg0.service network-pre.target" in lines
    assert "ConditionPathExists=/var/lib/wireguard-formula/confirm/wg0/armed" in lines
    assert "ExecStart=/bin/sh /var/lib/wireguard-formula/confirm/wg0/undo boot" in lines
    # wanted at boot only: a unit the service wants runs at every restart of it
    assert "WantedBy=multi-user.target" in lines
    assert not any(line.startswith(("Wants=", "RequiredBy=", "PartOf=")) for line in lines)
    assert "DefaultDependencies=no" in lines
    assert "%" not in text and not wgf_addr.KEY_SHAPED.search(text)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_reads_the_boot_unit_without_complaint(tmp_path):
    unit = tmp_path / c.restore_unit("wg0")
    unit.write_text(u.restore_unit_text("wg0", "wg-quick@wg0"))
    out = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    complaints = [
        line
        for line in out.stderr.splitlines()
        if str(unit.name) in line and "not found" not in line.lower()
    ]
    assert not complaints, out.stderr


# ----------------------------------------------------------------- master targets


def test_the_master_probe_uses_the_connected_master_uri_first():
    opts = {"master": "salt.example.com", "master_port": 4506, "master_uri": "tcp://10.0.0.1:4506"}
    assert c.master_targets(opts) == [("10.0.0.1", 4506)]
    assert c.master_targets({**opts, "master_uri": "tcp://[fd00::1]:4507"}) == [("fd00::1", 4507)]


@pytest.mark.parametrize(
    "opts, targets",
    [
        ({"master": "10.0.0.1"}, [("10.0.0.1", 4506)]),
        ({"master": "10.0.0.1", "master_port": "4510"}, [("10.0.0.1", 4510)]),
        ({"master": "salt:4600", "master_port": 4506}, [("salt", 4600)]),
        ({"master": "[fd00::1]:4600"}, [("fd00::1", 4600)]),
        ({"master": "fd00::1", "master_port": 4506}, [("fd00::1", 4506)]),
        ({"master": ["a", "b", "a"], "master_port": 4506}, [("a", 4506), ("b", 4506)]),
        ({"master": "10.0.0.1", "file_client": "local"}, []),
        (
            {"master": "10.0.0.1", "file_client": "local", "use_master_when_local": True},
            [("10.0.0.1", 4506)],
        ),
        ({"master": "10.0.0.1", "master_type": "disable"}, []),
        ({"master": ""}, []),
    ],
)
def test_the_master_probe_targets_from_the_minion_options(opts, targets):
    assert c.master_targets(opts) == targets


@given(
    st.one_of(ipv4, ipv6, st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5})?", fullmatch=True)),
    ports,
)
def test_the_master_is_read_as_salt_reads_it(host, port):
    written = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    salt_host, salt_port = parse_host_port(written)
    assert c.master_targets({"master": written}) == [(str(salt_host), salt_port)]


def test_the_labels():
    assert c.master_label("10.0.0.1", 4506) == "master 10.0.0.1:4506"
    assert c.master_label("fd00::1", 4506) == "master [fd00::1]:4506"


# ----------------------------------------------------------------- the verdict


@given(st.booleans(), st.booleans())
def test_a_target_that_failed_before_the_change_is_not_applicable(before, after):
    outcome = c.judge("10.0.0.1", before, after)
    if not before:
        assert outcome.status == c.NOT_APPLICABLE
        assert outcome.detail == "did not answer before the change"
    else:
        assert outcome.status == (c.ANSWERED if after else c.FAILED)
    assert c.must_undo([outcome]) == (before and not after)


@given(st.lists(st.sampled_from([c.ANSWERED, c.FAILED, c.NOT_APPLICABLE]), max_size=6))
def test_undo_when_any_probe_failed_and_only_then(statuses):
    outcomes = [c.Outcome(f"t{i}", status) for i, status in enumerate(statuses)]
    assert c.must_undo(outcomes) == (c.FAILED in statuses)


def test_the_failure_message():
    outcome = c.judge(c.master_label("10.0.0.1", 4506), True, False)
    assert c.failure_message("wg0", [outcome], 30) == (
        "wg0: change undone: master 10.0.0.1:4506 did not answer within 30 s"
    )
    two = [
        outcome,
        c.judge("10.0.0.2", False, False),
        c.Outcome("peer hub", c.FAILED, "did not handshake"),
    ]
    assert c.failure_message("wg0", two, 30) == (
        "wg0: change undone: master 10.0.0.1:4506 did not answer within 30 s; "
        "peer hub did not handshake within 30 s"
    )
    with pytest.raises(ValueError):
        c.failure_message("wg0", [c.judge("x", True, True)], 30)


def test_the_confirmed_message_names_what_did_not_count():
    outcomes = [c.judge("master 10.0.0.1:4506", True, True), c.judge("10.0.0.9", False, False)]
    assert c.confirmed_message("wg0", 2.6, outcomes) == (
        "wg0: confirmed in 3 s; 10.0.0.9: not applicable (did not answer before the change)"
    )
    assert c.confirmed_message("wg0", 0.2, outcomes[:1]) == "wg0: confirmed in 0 s"


# -------------------------------------------------------------------- peers probe

CHANGE = 1_000_000
OTHER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


def sample(handshake, rx=100, key=KEY):
    return c.PeerSample(key, handshake, rx)


@given(st.integers(0, 600))
def test_peers_with_a_handshake_in_the_3_minutes_before_are_checked(age):
    before = {"hub": sample(CHANGE - age), "never": sample(0)}
    assert c.peers_to_check(before, CHANGE) == (["hub"] if age <= 180 else [])


def test_no_recent_peer_makes_the_peers_probe_not_applicable():
    (outcome,) = c.judge_peers({"hub": sample(CHANGE - 500)}, {}, CHANGE)
    assert outcome.status == c.NOT_APPLICABLE
    assert outcome.detail == "no peer had a handshake in the 3 minutes before the change"


def test_a_peer_that_handshakes_again_answered():
    before = {"hub": sample(CHANGE - 150)}
    (outcome,) = c.judge_peers(before, {"hub": sample(CHANGE + 2)}, CHANGE)
    assert outcome == c.Outcome("peer hub", c.ANSWERED)


def test_a_peer_silent_after_the_change_failed():
    before = {"hub": sample(CHANGE - 150), "spoke": sample(CHANGE - 10)}
    after = {"hub": sample(CHANGE - 150), "spoke": sample(CHANGE - 10, rx=250)}
    outcomes = c.judge_peers(before, after, CHANGE)
    assert outcomes == [
        c.Outcome("peer hub", c.FAILED, "did not handshake"),
        c.Outcome("peer spoke", c.ANSWERED),  # a session younger than 2 min: bytes count
    ]
    assert c.must_undo(outcomes)


def test_a_peer_whose_key_the_change_replaced_must_handshake_with_the_new_key():
    before = {"hub": sample(CHANGE - 10, rx=100)}
    replaced = {"hub": sample(0, rx=0, key=OTHER)}
    (outcome,) = c.judge_peers(before, replaced, CHANGE)
    assert outcome.status == c.FAILED
    replaced = {"hub": sample(CHANGE - 10, rx=500, key=OTHER)}  # old numbers: no proof
    assert c.judge_peers(before, replaced, CHANGE)[0].status == c.FAILED
    replaced = {"hub": sample(CHANGE + 1, rx=500, key=OTHER)}
    assert c.judge_peers(before, replaced, CHANGE)[0].status == c.ANSWERED


def test_a_peer_the_change_removed_is_not_applicable():
    (outcome,) = c.judge_peers({"old": sample(CHANGE - 5)}, {}, CHANGE)
    assert outcome == c.Outcome("peer old", c.NOT_APPLICABLE, "removed by the change")


def test_after_the_interfaces_own_key_changed_only_a_new_handshake_answers():
    """The old sessions still receive the peer's keepalives: bytes are no proof."""
    before = {"spoke": sample(CHANGE - 30, rx=100)}
    keepalives = {"spoke": sample(CHANGE - 30, rx=400)}
    (outcome,) = c.judge_peers(before, keepalives, CHANGE, own_key_changed=True)
    assert outcome == c.Outcome("peer spoke", c.FAILED, "did not handshake")
    assert c.judge_peers(before, keepalives, CHANGE)[0].status == c.ANSWERED
    handshook = {"spoke": sample(CHANGE + 1, rx=400)}
    assert c.judge_peers(before, handshook, CHANGE, own_key_changed=True)[0].status == c.ANSWERED
    # a handshake in the second of the change, sampled before it, is not a new one
    before = {"spoke": sample(CHANGE, rx=100)}
    (outcome,) = c.judge_peers(before, {"spoke": sample(CHANGE, rx=400)}, CHANGE, 180, True)
    assert outcome.status == c.FAILED


@given(
    st.integers(0, 400),
    st.integers(0, 400),
    st.integers(0, 1000),
    st.integers(0, 1000),
    st.booleans(),
    st.booleans(),
)
def test_the_peer_rule(age_before, after_offset, rx_before, rx_after, same_key, own_changed):
    before = sample(CHANGE - age_before, rx_before)
    after = sample(CHANGE - 400 + after_offset * 2, rx_after, KEY if same_key else OTHER)
    outcome = c.judge_peer("p", before, after, CHANGE, own_changed)
    new_handshake = after.latest_handshake >= CHANGE and (
        after.latest_handshake > before.latest_handshake or not same_key
    )
    answered = new_handshake or (same_key and not own_changed and rx_after > rx_before)
    assert outcome.status == (c.ANSWERED if answered else c.FAILED)


def test_every_combination_of_before_and_after_is_judged():
    for before, after in itertools.product([None, sample(0), sample(CHANGE - 1)], repeat=2):
        outcome = c.judge_peer("p", before, after, CHANGE)
        assert outcome.status in (c.ANSWERED, c.FAILED, c.NOT_APPLICABLE)
        if before is None or not before.latest_handshake:
            assert outcome.status == c.NOT_APPLICABLE


# -------------------------------------------------------------------------- init


def test_confirm_needs_systemd_or_openrc():
    assert c.check_init("systemd") == "systemd"
    assert c.check_init("openrc") == "openrc"
    for init in ("sysvinit", "runit", "unknown", None, ""):
        with pytest.raises(SaltInvocationError) as info:
            c.check_init(init, "wg0")
        assert str(info.value).startswith(
            "wireguard:interfaces:wg0:confirm: confirm needs systemd or OpenRC"
        )
        assert repr(init) in str(info.value)


# --------------------------------------------------------------------- undo script

STUBS = ("nft", "systemctl", "iptables-restore", "ip6tables-restore", "rc-service", "networkctl")
#: iptables and ip6tables as stubs of an empty ruleset: a -C (check) or -D (delete) of a
#: jump finds none, -S lists nothing.
IPTABLES_STUBS = ("iptables", "ip6tables")


@pytest.fixture
def undo_box(tmp_path):
    """A state directory with a recorded conf and key, the live files changed since, an
    armed mark, and the commands the script calls replaced by stubs that log their
    argv (exit 1 for a name listed in $FAIL)."""
    root, etc, bin_dir = tmp_path / "confirm", tmp_path / "etc", tmp_path / "bin"
    state = root / "wg0"
    state.mkdir(parents=True, mode=0o700)
    etc.mkdir()
    bin_dir.mkdir()
    log = tmp_path / "calls"
    for name in STUBS:
        stub = bin_dir / name
        stub.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {log}\n'
            f'case " ${{FAIL:-}} " in *" {name} "*) exit 1;; esac\nexit 0\n'
        )
        stub.chmod(0o755)
    for name in IPTABLES_STUBS:
        stub = bin_dir / name
        stub.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {log}\n'
            'case " $* " in *" -C "*|*" -D "*) exit 1;; esac\n'
            # what `-S` of the filter table lists: the file listed-<tool>, when there
            f'[ "$*" != "-w -t filter -S" ] || cat {tmp_path}/listed-{name} 2> /dev/null\n'
            "exit 0\n"
        )
        stub.chmod(0o755)
    (state / "conf").write_text("[Interface]\n# before\n")
    (state / "key").write_text("old key\n")
    (state / "conf").chmod(0o600)
    (state / "key").chmod(0o640)  # as systemd-networkd reads it: the mode comes back too
    (state / "firewall").write_text("table inet wireguard\n")
    (state / "armed").write_text(u.armed_text("1111-aaaa"))
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("2222-bbbb\n")  # a reboot since arming
    (etc / "wg0.conf").write_text("[Interface]\n# after\n")
    (etc / "wg0.key").write_text("new key\n")
    (etc / "new.conf").write_text("made by the change\n")
    pending = tmp_path / "restart-pending-wg0"
    pending.write_text("")

    def run(
        mode,
        firewall="nftables",
        init="systemd",
        fail="",
        service="wg-quick@wg0.service",
        iptables=None,
        more=(),
        networkd=False,
    ):
        text = u.undo_script(
            "wg0",
            [
                u.Restore(str(etc / "wg0.conf"), "conf"),
                u.Restore(str(etc / "wg0.key"), "key"),
                u.Restore(str(etc / "new.conf")),
                *more,
            ],
            service,
            firewall,
            init,
            root=str(root),
            restart_pending=str(pending),
            boot_id=str(boot_id),
            iptables=iptables,
            networkd=networkd,
        )
        script = state / "undo"
        script.write_text(text)
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAIL": fail}
        done = subprocess.run(
            u.undo_argv("wg0", mode, root=str(root)), env=env, capture_output=True, text=True
        )
        calls = log.read_text().splitlines() if log.exists() else []
        return done, calls

    run.state, run.etc, run.pending, run.boot_id = state, etc, pending, boot_id
    return run


needs_flock = pytest.mark.skipif(not shutil.which("flock"), reason="no flock")


@needs_flock
def test_the_timer_puts_files_and_firewall_back_then_restarts(undo_box):
    done, calls = undo_box("timer")
    assert done.returncode == 0, done.stderr
    assert (undo_box.etc / "wg0.conf").read_text() == "[Interface]\n# before\n"
    assert (undo_box.etc / "wg0.key").read_text() == "old key\n"
    assert (undo_box.etc / "wg0.conf").stat().st_mode & 0o777 == 0o600
    assert (undo_box.etc / "wg0.key").stat().st_mode & 0o777 == 0o640
    assert not (undo_box.etc / "new.conf").exists()
    assert not list(undo_box.etc.glob("*.wgf-undo"))
    assert calls == [
        f"nft -f {undo_box.state}/firewall",
        "systemctl reset-failed wg-quick@wg0.service",
        "systemctl restart wg-quick@wg0.service",
    ]
    assert not undo_box.pending.exists()
    assert not (undo_box.state / "armed").exists()
    undone = (undo_box.state / "undone").read_text().splitlines()
    assert undone[0] == "mode=timer" and undone[2] == "failed=0"
    assert re.fullmatch(r"time=[0-9]+", undone[1])


@needs_flock
def test_the_undo_runs_once(undo_box):
    undo_box("now")
    (undo_box.etc / "wg0.conf").write_text("changed again\n")
    done, calls = undo_box("timer")
    assert done.returncode == 0
    assert (undo_box.etc / "wg0.conf").read_text() == "changed again\n"
    assert len(calls) == 3  # the calls of the first run only
    assert "mode=now" in (undo_box.state / "undone").read_text()


@needs_flock
def test_at_boot_only_the_files_go_back(undo_box):
    done, calls = undo_box("boot")
    assert done.returncode == 0
    assert (undo_box.etc / "wg0.conf").read_text() == "[Interface]\n# before\n"
    assert calls == []
    assert "mode=boot" in (undo_box.state / "undone").read_text()


@needs_flock
def test_at_boot_nothing_happens_in_the_boot_the_change_was_armed_in(undo_box):
    undo_box.boot_id.write_text("1111-aaaa\n")  # a restart of the service, no reboot
    done, calls = undo_box("boot")
    assert done.returncode == 0 and calls == []
    assert (undo_box.etc / "wg0.conf").read_text() == "[Interface]\n# after\n"
    assert (undo_box.state / "armed").exists() and not (undo_box.state / "undone").exists()
    done, _ = undo_box("timer")  # the timer acts in any boot
    assert done.returncode == 0
    assert (undo_box.etc / "wg0.conf").read_text() == "[Interface]\n# before\n"


def test_the_armed_mark_holds_the_boot():
    assert u.armed_text("0b3e9c54-5d6f-4c1e-9f1a-6e2f2c7d8a90\n") == (
        "boot_id=0b3e9c54-5d6f-4c1e-9f1a-6e2f2c7d8a90\n"
    )
    for bad in ("", "x\ny", None, "a b"):
        with pytest.raises(ValueError):
            u.armed_text(bad)


@needs_flock
def test_a_failed_step_does_not_stop_the_others_and_is_reported(undo_box):
    done, calls = undo_box("now", fail="nft")
    assert done.returncode == 1
    assert calls[-1] == "systemctl restart wg-quick@wg0.service"
    assert "failed=1" in (undo_box.state / "undone").read_text()
    assert not (undo_box.state / "armed").exists()


@needs_flock
def test_iptables_and_openrc(undo_box):
    (undo_box.state / "firewall6").write_text("*filter\nCOMMIT\n")
    done, calls = undo_box("timer", firewall="iptables", init="openrc", service="wg-quick.wg0")
    assert done.returncode == 0
    assert calls == [
        f"iptables-restore --noflush --counters {undo_box.state}/firewall",
        f"ip6tables-restore --noflush --counters {undo_box.state}/firewall6",
        "rc-service wg-quick.wg0 restart",
    ]


@needs_flock
def test_iptables_without_an_ipv6_record(undo_box):
    _, calls = undo_box("timer", firewall="iptables")
    assert calls[0] == f"iptables-restore --noflush --counters {undo_box.state}/firewall"
    assert not any(call.startswith("ip6tables-restore") for call in calls)


@needs_flock
def test_a_run_that_left_the_firewall_alone_does_not_load_one(undo_box):
    _, calls = undo_box("timer", firewall=None)
    assert calls == [
        "systemctl reset-failed wg-quick@wg0.service",
        "systemctl restart wg-quick@wg0.service",
    ]


@needs_flock
@pytest.mark.parametrize("built_after, tries, ok", [(3, 100, True), (99, 2, False)])
def test_networkds_undo_ends_when_networkd_has_built_the_interface_again(
    undo_box, tmp_path, monkeypatch, built_after, tries, ok
):
    """networkd's undo deletes the interface and restarts networkd, which builds it
    again; the undo ends once it is there (``ip link show`` answers), or fails when it
    is not."""
    monkeypatch.setattr(u, "NETWORKD_BUILD_TENTHS", tries)
    shown = tmp_path / "shown"
    (tmp_path / "bin" / "ip").write_text(
        f'#!/bin/sh\necho "ip $*" >> {tmp_path}/calls\n'
        f'case "$*" in "link show"*) echo x >> {shown}; [ "$(wc -l < {shown})" -ge {built_after} ];;'
        " esac\n"
    )
    (tmp_path / "bin" / "ip").chmod(0o755)
    done, calls = undo_box(
        "timer", firewall=None, service="systemd-networkd.service", networkd=True
    )
    assert (done.returncode == 0) is ok, done.stderr
    waited = ["ip link show dev wg0"] * (built_after if ok else tries + 1)
    restart = "systemctl restart systemd-networkd"
    assert calls == ["ip link delete dev wg0", restart, *waited]


#: What ip(6)tables-save showed at arm time, as ``wgf_iptables.iptables_ours`` keeps it:
#: the input chain with a rule and its jump; no forward or postrouting chain.
OURS_INPUT = [
    "filter :WIREGUARD-INPUT",
    "filter -A INPUT -j WIREGUARD-INPUT",
    'filter -A WIREGUARD-INPUT -i wg0 -m comment --comment "wg0 default" -j DROP',
]


def _removed(tool):
    """The calls that take a chain not recorded away: its jumps (until none), then it."""
    return [
        f"{tool} -w -t filter -D INPUT -j WIREGUARD-INPUT",
        f"{tool} -w -t filter -X WIREGUARD-INPUT",
        f"{tool} -w -t filter -D FORWARD -j WIREGUARD-FORWARD",
        f"{tool} -w -t filter -X WIREGUARD-FORWARD",
        # the output chain of client rates (issue 23), which this record did not hold
        f"{tool} -w -t filter -D OUTPUT -j WIREGUARD-OUTPUT",
        f"{tool} -w -t filter -X WIREGUARD-OUTPUT",
        f"{tool} -w -t nat -D POSTROUTING -j WIREGUARD-POSTROUTING",
        f"{tool} -w -t nat -X WIREGUARD-POSTROUTING",
    ]


@needs_flock
def test_the_undo_puts_the_recorded_iptables_chains_and_jumps_back(undo_box):
    """iptables (issue 21): the record loads first (every chain declared, the recorded
    ones filled); a recorded jump is checked and added when missing, and its copies
    counted; a jump not recorded is deleted until none is left; a chain not recorded
    goes. ip6tables the same, from ``firewall6``."""
    (undo_box.state / "firewall6").write_text("*filter\nCOMMIT\n")
    done, calls = undo_box("timer", firewall="iptables", iptables={4: OURS_INPUT, 6: []})
    assert done.returncode == 0, done.stderr
    assert calls == [
        f"iptables-restore --noflush --counters {undo_box.state}/firewall",
        "iptables -w -t filter -C INPUT -j WIREGUARD-INPUT",
        "iptables -w -t filter -I INPUT 1 -j WIREGUARD-INPUT",
        "iptables -w -t filter -S INPUT",
        *_removed("iptables")[2:],
        "iptables -w -t filter -S",
        f"ip6tables-restore --noflush --counters {undo_box.state}/firewall6",
        *_removed("ip6tables"),
        "ip6tables -w -t filter -S",
        "systemctl reset-failed wg-quick@wg0.service",
        "systemctl restart wg-quick@wg0.service",
    ]


@needs_flock
def test_the_undo_keeps_the_recorded_quota_chains_and_removes_the_others(undo_box, tmp_path):
    """A client's quota chain (``wgf_quota_ipt``) the change made goes, after the
    record has put back the chains that jumped to it; a recorded one stays (the record
    has filled it again); a chain of another name is left alone."""
    kept, made = wgf_quota_ipt.chain("quota_wg0_phone"), wgf_quota_ipt.chain("quota_wg0_new")
    (tmp_path / "listed-iptables").write_text(
        f"-P INPUT ACCEPT\n-N {kept}\n-N {made}\n-N WIREGUARD-Q-mine\n-N OTHER\n"
    )
    ours = [*OURS_INPUT, f"filter :{kept}", f"filter -A {kept} -j RETURN"]
    record = wgf_iptables.iptables_put_back(ours).splitlines()
    assert f":{kept} - [0:0]" in record and f"-A {kept} -j RETURN" in record
    done, calls = undo_box("timer", firewall="iptables", iptables={4: ours})
    assert done.returncode == 0, done.stderr
    removed = [c for c in calls if " -F " in c or " -X WIREGUARD-Q" in c]
    assert removed == [f"iptables -w -t filter -F {made}", f"iptables -w -t filter -X {made}"]


@needs_flock
def test_only_the_ip_versions_recorded_are_put_back(undo_box):
    (undo_box.state / "firewall6").write_text("*filter\nCOMMIT\n")
    _, first = undo_box("now", firewall="iptables", iptables={6: OURS_INPUT})
    assert not any(call.startswith("iptables") for call in first)
    assert first[0] == f"ip6tables-restore --noflush --counters {undo_box.state}/firewall6"
    (undo_box.state / "armed").write_text(u.armed_text("1111-aaaa"))  # armed again
    _, calls = undo_box("now", firewall="iptables", iptables={4: []})
    calls = calls[len(first) :]
    assert calls[:-2] == [
        f"iptables-restore --noflush --counters {undo_box.state}/firewall",
        *_removed("iptables"),
        "iptables -w -t filter -S",
    ]
    assert not any(call.startswith("ip6tables") for call in calls)


@needs_flock
def test_at_boot_the_iptables_chains_are_left_alone(undo_box):
    done, calls = undo_box("boot", firewall="iptables", iptables={4: OURS_INPUT, 6: []})
    assert done.returncode == 0 and calls == []


def test_the_iptables_steps_name_the_formulas_chains_only():
    """Chain and table names come from ``wgf_iptables.IPTABLES_CHAINS``: what the record
    holds besides decides only which of them are kept."""
    evil = [
        "filter :WIREGUARD-X;reboot",
        "filter -A INPUT -j WIREGUARD-X;reboot",
        "raw :WIREGUARD-INPUT",
        "filter -A $(reboot) -j WIREGUARD-INPUT",
    ]
    text = u.undo_script("wg0", [], "wg-quick@wg0", "iptables", iptables={4: evil})
    assert "reboot" not in text and " raw " not in text
    assert "iptables -w -t filter -X WIREGUARD-INPUT || failed=1" in text
    kept = u.undo_script("wg0", [], "wg-quick@wg0", "iptables", iptables={4: OURS_INPUT})
    assert "-X WIREGUARD-INPUT" not in kept and "-I INPUT 1 -j WIREGUARD-INPUT" in kept
    assert "-D INPUT -j WIREGUARD-INPUT 2>/dev/null; do" not in kept
    for firewall, records in (("nftables", {4: []}), ("iptables", {5: []})):
        with pytest.raises(ValueError):
            u.undo_script("wg0", [], "wg-quick@wg0", firewall, iptables=records)


# ------------------------------------------------------- a restored drop-in: reload

DROPIN_BEFORE = "[Service]\nExecStart=\nExecStart=/usr/bin/wg-quick up /srv/wg/wg0.conf\n"


def _dropin(undo_box, live):
    """The drop-in recorded as it was before the change, and ``live`` (None: none)."""
    (undo_box.state / "dropin").write_text(DROPIN_BEFORE)
    target = undo_box.etc / "wireguard-formula.conf"
    if live is not None:
        target.write_text(live)
    return u.Restore(str(target), "dropin")


@needs_flock
@pytest.mark.parametrize("mode", ["timer", "now", "boot"])
def test_a_restored_drop_in_that_changed_is_reloaded_before_the_restart(undo_box, mode):
    """systemd restarts a service with the drop-in it has cached: when the undo puts a
    changed drop-in back, ``daemon-reload`` runs once, before the restart; at boot too
    (the boot unit runs before ``wg-quick@``)."""
    restore = _dropin(undo_box, "[Service]\nExecStart=\nExecStart=/usr/bin/wg-quick up x\n")
    unit = u.Restore(str(undo_box.etc / "other.service"), "conf", unit=True)
    done, calls = undo_box(mode, firewall=None, more=(restore, unit))
    assert done.returncode == 0, done.stderr
    assert (undo_box.etc / "wireguard-formula.conf").read_text() == DROPIN_BEFORE
    assert calls[0] == "systemctl daemon-reload"
    assert calls.count("systemctl daemon-reload") == 1
    assert calls[1:] == (
        []
        if mode == "boot"
        else [
            "systemctl reset-failed wg-quick@wg0.service",
            "systemctl restart wg-quick@wg0.service",
        ]
    )


@needs_flock
def test_a_drop_in_the_change_left_alone_needs_no_reload(undo_box):
    done, calls = undo_box("timer", firewall=None, more=(_dropin(undo_box, DROPIN_BEFORE),))
    assert done.returncode == 0
    assert "systemctl daemon-reload" not in calls and calls[-1].startswith("systemctl restart")


@needs_flock
def test_a_drop_in_the_change_made_is_removed_and_reloaded(undo_box):
    made = undo_box.etc / "made.conf"
    made.write_text("[Service]\n")
    _, first = undo_box("timer", firewall=None, more=(u.Restore(str(made), unit=True),))
    assert not made.exists()
    assert first[0] == "systemctl daemon-reload"
    (undo_box.state / "armed").write_text(u.armed_text("1111-aaaa"))  # armed again
    _, calls = undo_box("timer", firewall=None, more=(u.Restore(str(made), unit=True),))
    assert calls[len(first) :] == [  # nothing there to remove: no reload
        "systemctl reset-failed wg-quick@wg0.service",
        "systemctl restart wg-quick@wg0.service",
    ]


@needs_flock
def test_on_openrc_a_restored_drop_in_is_not_reloaded(undo_box):
    restore = _dropin(undo_box, "changed\n")
    _, calls = undo_box(
        "timer", firewall=None, init="openrc", service="wg-quick.wg0", more=(restore,)
    )
    assert calls == ["rc-service wg-quick.wg0 restart"]


def test_what_counts_as_a_systemd_unit():
    assert u.Restore("/etc/systemd/system/wg-quick@wg0.service.d/x.conf").systemd
    assert u.Restore("/srv/x.conf", "dropin").systemd and u.Restore("/srv/x", unit=True).systemd
    assert not u.Restore("/etc/wireguard/wg0.conf", "conf").systemd
    text = u.undo_script("wg0", [u.Restore("/etc/wireguard/wg0.conf", "conf")], "wg-quick@wg0")
    assert "daemon-reload" not in text and "reload=" not in text


@given(
    interface_names,
    st.sampled_from([None, "nftables", "iptables"]),
    st.sampled_from(c.INITS),
    st.sampled_from([None, {4: []}, {4: OURS_INPUT, 6: OURS_INPUT[:1]}]),
)
def test_the_script_is_valid_shell_and_names_no_key(interface, firewall, init, iptables):
    text = u.undo_script(
        interface,
        [
            u.Restore(f"/etc/wireguard/{interface}.conf", "conf"),
            u.Restore("/etc/x/y.conf"),
            u.Restore("/etc/systemd/system/wg-quick@x.service.d/wireguard-formula.conf", "dropin"),
        ],
        "wg-quick@x.service",
        firewall,
        init,
        iptables=iptables if firewall == "iptables" else None,
    )
    assert not wgf_addr.KEY_SHAPED.search(text)
    assert f"dir=/var/lib/wireguard-formula/confirm/{interface}\n" in text or (
        f"dir='/var/lib/wireguard-formula/confirm/{interface}'\n" in text
    )
    done = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="no shellcheck")
@pytest.mark.parametrize("iptables", [None, {4: OURS_INPUT, 6: []}])
def test_shellcheck_finds_nothing_in_the_script(iptables):
    text = u.undo_script(
        "wg0",
        [
            u.Restore("/etc/wireguard/wg0.conf", "conf"),
            u.Restore("/etc/wireguard/x"),
            u.Restore("/etc/systemd/system/wg-quick@wg0.service.d/wireguard-formula.conf"),
        ],
        "wg-quick@wg0.service",
        "iptables",
        iptables=iptables,
    )
    done = subprocess.run(
        ["shellcheck", "-s", "sh", "-"], input=text, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    "restores, service, firewall, init",
    [
        ([u.Restore("relative/path", "conf")], "wg-quick@wg0", None, "systemd"),
        ([u.Restore("/etc/a b", "conf")], "wg-quick@wg0", None, "systemd"),
        ([u.Restore("/etc/$(reboot)", "conf")], "wg-quick@wg0", None, "systemd"),
        ([u.Restore("/etc/../root/x", "conf")], "wg-quick@wg0", None, "systemd"),
        ([u.Restore("/etc/wireguard/wg0.conf", "../x")], "wg-quick@wg0", None, "systemd"),
        ([u.Restore("/etc/wireguard/wg0.conf", "armed")], "wg-quick@wg0", None, "systemd"),
        ([], "wg-quick@wg0; reboot", None, "systemd"),
        ([], "wg-quick@wg0", "pf", "systemd"),
        ([], "wg-quick@wg0", None, "sysvinit"),
    ],
)
def test_what_the_script_would_not_name_safely_is_refused(restores, service, firewall, init):
    with pytest.raises(ValueError):
        u.undo_script("wg0", restores, service, firewall, init)


@given(
    st.fixed_dictionaries({part: st.booleans() for part in PARTS}),
    st.lists(
        st.sampled_from([c.PeersProbe(), c.MasterProbe(), c.IcmpProbe("10.0.0.1")]),
        min_size=1,
        max_size=3,
    ),
)
def test_a_firewall_change_checked_by_peers_alone_is_warned_about(parts, probe_list):
    confirm = c.Confirm(30, tuple(probe_list))
    warnings = c.blind_spots("wg0", c.Changes(running=True, **parts), confirm)
    blind = parts["firewall"] and all(p == c.PeersProbe() for p in probe_list)
    assert bool(warnings) == blind
    if blind:
        assert warnings[0].startswith("wg0: the firewall changes and only the peers probe")
    assert c.blind_spots("wg0", c.Changes(running=True, firewall=True), None) == []
