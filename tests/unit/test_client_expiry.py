"""Client expiry on time (issue 23): the schedule, the script's text, the timer's command
line, and when ``wireguard.client_expiry`` arms, re-arms, disarms or leaves the timer,
through the fake host (``tests/support/fake_host.py``)."""

import datetime
import json
import os
import subprocess
import time

import pytest

import wgf_client_record
import wgf_conf
import wgf_expiry
import wgf_files
import wgf_keys
import wgf_layout
from tests.support import pipeline
from tests.support.fake_host import FakeHost
from tests.support.fake_minion import IF, FakeMinion, hand_in
from tests.unit.conftest import StateModule

UTC = datetime.timezone.utc
SERVER = {"address": ["10.8.0.1/24"], "listen_port": 51820, "endpoint": "vpn.example.com"}


@pytest.fixture
def minion(tmp_path):
    return FakeMinion(tmp_path)


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def states(minion, host, tmp_path, monkeypatch):
    module = StateModule(
        ("wireguard_clients",), minion.functions(), {"test": False}, tag="expiry_under_test"
    )
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    hand_in(monkeypatch, host)
    return module


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def root(tmp_path, monkeypatch):
    path = tmp_path / "expiry"
    monkeypatch.setattr(wgf_expiry, "STATE_ROOT", str(path))
    monkeypatch.setattr(wgf_expiry, "UNIT_DIR", str(tmp_path / "systemd"))
    return path


@pytest.fixture
def now(host):
    host.clock = float(int(time.time()))
    return int(host.clock)


def with_clients(states, minion, tmp_path, clients):
    minion.pillar["interfaces"][IF].update(endpoint="198.18.0.1:51820", clients=clients)
    states.clients(IF, config_dir=str(tmp_path))
    record = json.loads((tmp_path / f"{IF}.clients.json").read_text())
    return {n: c["public_key"] for n, c in record["clients"].items()}


def arms(host):
    return [d for d in host.done if d[0] in ("arm_expiry", "disarm_expiry")]


# ------------------------------------------------------------------ pure text


def test_the_timer_is_a_persistent_unit_file_with_one_calendar_per_instant_to_the_second():
    epochs = [
        int(datetime.datetime(2027, 2, 2, 6, tzinfo=UTC).timestamp()),
        int(datetime.datetime(2027, 2, 1, 6, tzinfo=UTC).timestamp()),
    ]
    units = wgf_expiry.unit_files("wg0", epochs, "wg-quick@wg0", root="/r", unit_dir="/u")
    service = units["/u/wireguard-client-expiry-wg0.service"]
    timer = units["/u/wireguard-client-expiry-wg0.timer"]
    assert sorted(units) == [
        "/u/wireguard-client-expiry-wg0.service",
        "/u/wireguard-client-expiry-wg0.timer",
    ]
    assert "\nAfter=wg-quick@wg0.service\n" in service
    assert "\nType=oneshot\nExecStart=/bin/sh /r/wg0/expire\n" in service
    assert timer.split("[Timer]\n")[1] == (
        "OnCalendar=2027-02-01 06:00:00 UTC\n"
        "OnCalendar=2027-02-02 06:00:00 UTC\n"
        "AccuracySec=1s\n"
        "Persistent=true\n"
        "Unit=wireguard-client-expiry-wg0.service\n"
        "\n[Install]\nWantedBy=timers.target\n"
    )
    assert wgf_expiry.disarm_argv("wg0") == [
        "systemctl",
        "stop",
        "wireguard-client-expiry-wg0.timer",
    ]
    with pytest.raises(ValueError):
        wgf_expiry.unit_files("wg0", [], "wg-quick@wg0")
    with pytest.raises(ValueError):
        wgf_expiry.unit_files("wg0", epochs, "wg-quick@wg0\nExecStart=/bin/evil")


def test_the_openrc_waiter_runs_the_script_at_each_instant_and_is_told_by_its_argv():
    argv = wgf_expiry.waiter_argv("wg0", [20, 10], root="/r")
    assert argv[:2] == ["/bin/sh", "-c"] and argv[3:] == [
        "wireguard-client-expiry-wg0",
        "/r/wg0/expire",
        "20",
        "10",
    ]
    assert wgf_expiry.is_waiter("\0".join(argv).encode(), "wg0", root="/r")
    assert not wgf_expiry.is_waiter("\0".join(argv).encode(), "wg1", root="/r")
    assert not wgf_expiry.is_waiter(b"/bin/sh\0/r/wg0/expire", "wg0", root="/r")


def test_the_schedule_holds_only_future_expiries_of_live_clients_rounded_up(tmp_path):
    key_a, key_b, key_c = ("A" * 42 + "a=", "B" * 42 + "b=", "C" * 42 + "c=")
    now = datetime.datetime(2027, 1, 31, 12, 0, tzinfo=UTC)
    iface = {
        "clients": {
            "late": {"expires": "2027-02-01T00:00:00.250000Z"},
            "soon": {"expires": "2027-01-31T12:00:20Z"},
            "never": {"expires": None},
        }
    }
    peers = {key_a: {"name": "late"}, key_b: {"name": "soon"}, key_c: {"name": "never"}}
    entries = wgf_expiry.schedule(iface, peers, now)
    soon = int(datetime.datetime(2027, 1, 31, 12, 0, 20, tzinfo=UTC).timestamp())
    late = int(datetime.datetime(2027, 2, 1, 0, 0, 1, tzinfo=UTC).timestamp())
    assert entries == [
        (soon, "2027-01-31T12:00:20Z", "soon", key_b),
        (late, "2027-02-01T00:00:01Z", "late", key_a),
    ]
    assert wgf_expiry.schedule_text(entries) == (
        f"{soon} 2027-01-31T12:00:20Z soon {key_b}\n{late} 2027-02-01T00:00:01Z late {key_a}\n"
    )
    # passed: the apply itself took it away (client_peers), nothing left to time
    assert wgf_expiry.schedule(iface, peers, datetime.datetime(2028, 1, 1, tzinfo=UTC)) == []


def test_the_script_removes_only_due_peers_one_by_one_and_names_no_key_file():
    text = wgf_expiry.script_text(
        "wg0", root="/r", salt_call="/opt/salt/bin/salt-call", conf="/etc/wireguard/wg0.conf"
    )
    assert text.startswith("#!/bin/sh\n")
    assert "dir=/r/wg0\n" in text and "interface=wg0\n" in text
    assert "conf=/etc/wireguard/wg0.conf\n" in text
    assert 'wg set "$interface" peer "$key" remove' in text
    assert '[ "$when" -le "$now" ] || continue' in text
    assert "flock 9" in text
    assert "event.fire_master" in text and "wireguard/client/expired" in text
    assert "command -v salt-call || echo /opt/salt/bin/salt-call" in text
    for word in ("private", "preshared", ".key", "psk", "syncconf", "restart"):
        assert word not in text
    check = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr
    with pytest.raises(ValueError):
        wgf_expiry.script_text("wg0", root="/r", salt_call="/opt/salt call")


# ------------------------------------------------------------------ the state


def test_an_apply_arms_one_timer_for_every_future_expiry_and_writes_no_key(
    states, minion, host, tmp_path, root, now
):
    keys = with_clients(
        states,
        minion,
        tmp_path,
        {
            "phone": {},
            "guest": {"expires": iso(now + 20)},
            "contractor": {"expires": iso(now + 3600)},
        },
    )
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["result"] is True, ret
    assert ret["changes"] == {
        "expiry timer": {"old": None, "new": [iso(now + 20), iso(now + 3600)]}
    }
    units = wgf_expiry.unit_files(IF, [now + 20, now + 3600], f"wg-quick@{IF}", str(root))
    assert arms(host) == [("arm_expiry", sorted(units))]
    for path, text in units.items():
        assert wgf_files.read(path) == text
    directory = root / IF
    assert oct(os.stat(directory).st_mode & 0o777) == "0o700"
    schedule = (directory / "schedule").read_text()
    assert schedule == (
        f"{now + 20} {iso(now + 20)} guest {keys['guest']}\n"
        f"{now + 3600} {iso(now + 3600)} contractor {keys['contractor']}\n"
    )
    assert (directory / "armed").read_text() == schedule
    script = (directory / "expire").read_text()
    assert script == wgf_expiry.script_text(
        IF, str(root), host.salt_call_path, str(tmp_path / f"{IF}.conf")
    )
    for kind in ("key", "psk"):
        for name in ("guest", "contractor", "phone"):
            secret = tmp_path / "clients" / IF / f"{name}.{kind}"
            if secret.exists():
                assert secret.read_text().strip() not in script + schedule


def test_a_second_apply_leaves_the_timer_and_test_mode_changes_nothing(
    states, minion, host, tmp_path, root, now
):
    with_clients(states, minion, tmp_path, {"guest": {"expires": iso(now + 60)}})
    states.client_expiry(IF, config_dir=str(tmp_path))
    done = len(host.done)
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and ret["changes"] == {}
    assert "armed as wanted" in ret["comment"]
    assert host.done[done:] == []
    # the expiry moves: test mode says so and touches nothing
    minion.pillar["interfaces"][IF]["clients"]["guest"]["expires"] = iso(now + 120)
    states.__opts__["test"] = True
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["result"] is None
    assert ret["changes"] == {"expiry timer": {"old": [iso(now + 60)], "new": [iso(now + 120)]}}
    assert host.done[done:] == [] and host.expiry_timers[IF] == [now + 60]
    states.__opts__["test"] = False
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and host.expiry_timers[IF] == [now + 120]
    assert arms(host)[-1][0] == "arm_expiry"


def test_a_timer_gone_behind_the_formulas_back_is_armed_again(
    states, minion, host, tmp_path, root, now
):
    """A reboot drops transient timers: the next apply finds none and arms it."""
    with_clients(states, minion, tmp_path, {"guest": {"expires": iso(now + 60)}})
    states.client_expiry(IF, config_dir=str(tmp_path))
    host.expiry_timers.clear()
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["changes"] == {"expiry timer": {"old": [iso(now + 60)], "new": [iso(now + 60)]}}
    assert host.expiry_timers[IF] == [now + 60]


def test_no_future_expiry_disarms_once_and_then_leaves_it(
    states, minion, host, tmp_path, root, now
):
    with_clients(states, minion, tmp_path, {"guest": {"expires": iso(now + 60)}})
    states.client_expiry(IF, config_dir=str(tmp_path))
    del minion.pillar["interfaces"][IF]["clients"]["guest"]["expires"]
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["result"] is True
    assert ret["changes"] == {"expiry timer": {"old": [iso(now + 60)], "new": None}}
    assert arms(host)[-1] == ("disarm_expiry", IF) and IF not in host.expiry_timers
    assert not (root / IF / "armed").exists() and not (root / IF / "expire").exists()
    assert [p for p in wgf_expiry.unit_paths(IF) if os.path.exists(p)] == []
    done = len(host.done)
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["changes"] == {} and host.done[done:] == []
    # an interface whose clients never expire arms nothing at all
    assert [d for d in host.done if d[0] == "arm_expiry"] == [arms(host)[0]]


def test_a_unit_file_changed_or_left_from_a_transient_timer_is_written_again(
    states, minion, host, tmp_path, root, now
):
    """An earlier release armed a transient timer (no unit file): the next apply writes
    the persistent units; so it does when someone edited them."""
    with_clients(states, minion, tmp_path, {"guest": {"expires": iso(now + 60)}})
    states.client_expiry(IF, config_dir=str(tmp_path))
    service, timer = wgf_expiry.unit_paths(IF)
    for path in (timer, service):
        wanted = wgf_files.read(path)
        if path == timer:
            os.remove(path)
        else:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write("# edited\n")
        ret = states.client_expiry(IF, config_dir=str(tmp_path))
        assert ret["changes"] == {"expiry timer": {"old": [iso(now + 60)], "new": [iso(now + 60)]}}
        assert wgf_files.read(path) == wanted


def test_an_interface_that_goes_loses_its_expiry_timer_units_and_records(
    states, minion, host, tmp_path, root, now
):
    with_clients(states, minion, tmp_path, {"guest": {"expires": iso(now + 60)}})
    states.client_expiry(IF, config_dir=str(tmp_path))
    events = root / IF / "events"
    events.mkdir()
    data = {"interface": IF, "client": "old", "expires": iso(now - 5)}
    (events / f"{now - 5}-old").write_text(json.dumps(data))
    states.__opts__["test"] = True
    ret = states.client_expiry_absent(IF)
    assert ret["result"] is None and sorted(ret["changes"]) == ["expiry timer", "records"]
    assert (root / IF).is_dir() and IF in host.expiry_timers
    states.__opts__["test"] = False
    ret = states.client_expiry_absent(IF)
    assert ret["result"] is True and ret["changes"] == {
        "expiry timer": {"old": wgf_expiry.unit_paths(IF), "new": None},
        "records": {"old": str(root / IF), "new": None},
    }
    assert not (root / IF).exists() and IF not in host.expiry_timers
    assert [p for p in wgf_expiry.unit_paths(IF) if os.path.exists(p)] == []
    assert host.events == [("wireguard/client/expired", data)]  # sent before it went
    done = len(host.done)
    ret = states.client_expiry_absent(IF)
    assert ret["result"] is True and ret["changes"] == {} and host.done[done:] == []


def test_openrc_arms_the_detached_waiter(states, minion, host, tmp_path, root, now):
    host.systemd = False
    with_clients(states, minion, tmp_path, {"guest": {"expires": iso(now + 60)}})
    states.client_expiry(IF, config_dir=str(tmp_path))
    assert arms(host) == [("arm_expiry", wgf_expiry.waiter_argv(IF, [now + 60], str(root)))]


def test_events_the_script_could_not_send_go_out_at_the_next_apply_once(
    states, minion, host, tmp_path, root, now
):
    with_clients(states, minion, tmp_path, {"phone": {}})
    events = root / IF / "events"
    events.mkdir(parents=True)
    data = {"interface": IF, "client": "guest", "expires": iso(now - 5)}
    (events / f"{now - 5}-guest").write_text(json.dumps(data) + "\n")
    (events / f"{now - 4}-other.tmp").write_text("{")  # half written: not yet
    ret = states.client_expiry(IF, config_dir=str(tmp_path))
    assert ret["result"] is True and "sent 1 earlier wireguard/client/expired" in ret["comment"]
    assert host.events == [("wireguard/client/expired", data)]
    assert not (events / f"{now - 5}-guest").exists()
    assert json.loads((root / IF / "sent").read_text().split(" ", 1)[1]) == data
    assert wgf_expiry.report(host, str(root)) == [] and len(host.events) == 1


def test_the_apply_that_takes_an_expired_peer_away_itself_sends_the_event(
    states, minion, host, tmp_path
):
    """Expired while no timer ran (the minion was off): client_peers removes the live
    peer and says so with the event; a peer already gone sends nothing again."""
    keys = with_clients(states, minion, tmp_path, {"old": {"expires": "2020-01-01"}})
    minion.live["peers"][keys["old"]] = {
        "allowed_ips": [],
        "endpoint": None,
        "persistent_keepalive": None,
        "preshared_key_sha256": None,
    }
    states.client_peers(IF, config_dir=str(tmp_path))
    assert host.events == [
        (
            "wireguard/client/expired",
            {"interface": IF, "client": "old", "expires": "2020-01-01T00:00:00Z"},
        )
    ]
    states.client_peers(IF, config_dir=str(tmp_path))
    assert len(host.events) == 1


def test_pending_events_of_another_interface_or_damaged_are_not_sent(tmp_path):
    events = tmp_path / "wg0" / "events"
    events.mkdir(parents=True)
    (events / "1-a").write_text(json.dumps({"interface": "wg1", "client": "a"}))
    (events / "2-b").write_text("not json")
    assert wgf_expiry.pending_events(str(tmp_path)) == []
    assert wgf_files.read(str(events / "2-b")) == "not json"


# ------------------------------------------------------- the script, run for real


def run_script(tmp_path, entries, conf, live):
    """The expiry script of ``IF`` run by ``sh`` with a stub ``wg`` on PATH that lists
    the peers of ``live`` and logs what it is told; (the process, the log)."""
    root, stubs, log = tmp_path / "expiry", tmp_path / "bin", tmp_path / "wg.log"
    (root / IF).mkdir(parents=True, exist_ok=True)
    stubs.mkdir(exist_ok=True)
    (stubs / "wg").write_text(
        f'#!/bin/sh\nif [ "$1" = show ]; then printf "%s\\n" {" ".join(live)}; exit 0; fi\n'
        f'printf "%s\\n" "wg $*" >> "{log}"\n'
    )
    os.chmod(stubs / "wg", 0o755)
    (root / IF / "schedule").write_text(wgf_expiry.schedule_text(entries))
    (root / IF / "expire").write_text(wgf_expiry.script_text(IF, str(root), None, str(conf)))
    proc = subprocess.run(
        ["sh", str(root / IF / "expire")],
        capture_output=True,
        text=True,
        env={"PATH": f"{stubs}:/usr/bin:/bin"},
    )
    return proc, log


def test_the_script_takes_the_expired_peer_out_of_the_conf_as_the_next_apply_would(tmp_path):
    """A restart of the interface after the expiry brings back what is live: the conf
    loses exactly the expired client's [Peer] (its preshared key too), keeps its mode and
    every other byte, and is what the next apply renders, so that apply changes nothing.
    The conf's secrets are never printed."""
    server_priv, now = wgf_keys.genkey(), datetime.datetime(2027, 1, 31, 12, 0, tzinfo=UTC)

    def validate(record=None, at=now):
        return pipeline.interfaces(
            {"interfaces": {"wg0": {**SERVER, "clients": clients}}},
            "vpn",
            own_public_keys={"wg0": wgf_keys.pubkey(server_priv)},
            client_records={"wg0": json.dumps(record) if record is not None else None},
            firewall="nftables",
            now=at,
        )["wg0"]

    clients = {
        "phone": {},
        "guest": {"expires": "2027-01-31T12:00:20Z", "preshared_key": True},
        "tablet": {"preshared_key": True},
    }
    made = {n: wgf_keys.pubkey(wgf_keys.genkey()) for n in clients}  # the clients state's
    record = wgf_client_record.record_of(validate(), made)
    before = validate(record)
    psks = {"guest": wgf_keys.genpsk(), "tablet": wgf_keys.genpsk()}
    conf = tmp_path / f"{IF}.conf"
    conf.write_text(wgf_conf.render(before, server_priv, psks))
    conf.chmod(0o600)
    after = validate(record, now + datetime.timedelta(seconds=30))
    assert after["clients"]["guest"]["status"] == "expired"
    key = before["peers"]["guest"]["public_key"]
    entries = [(int(time.time()) - 10, "2027-01-31T12:00:20Z", "guest", key)]  # passed
    live = [p["public_key"] for p in before["peers"].values()]
    proc, log = run_script(tmp_path, entries, conf, live)
    assert proc.returncode == 0, proc.stderr
    assert conf.read_text() == wgf_conf.render(after, server_priv, psks)
    assert key not in conf.read_text() and psks["guest"] not in conf.read_text()
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert log.read_text() == f"wg set {IF} peer {key} remove\n"
    for secret in (server_priv, *psks.values()):
        assert secret not in proc.stdout + proc.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(["expiry", "bin", "wg.log", f"{IF}.conf"])
    events = tmp_path / "expiry" / IF / "events"
    assert json.loads((events / f"{entries[0][0]}-guest").read_text()) == {
        "interface": IF,
        "client": "guest",
        "expires": "2027-01-31T12:00:20Z",
    }
    # run again (the next instant of the timer): nothing more to take away, no event
    os.remove(events / f"{entries[0][0]}-guest")
    again = conf.read_text()
    proc, log = run_script(tmp_path, entries, conf, [k for k in live if k != key])
    assert proc.returncode == 0 and conf.read_text() == again and os.listdir(events) == []


def test_the_script_takes_a_peer_out_of_the_conf_of_an_interface_that_is_down(tmp_path):
    """Expired while the interface was down (or before it came up at boot): no live peer
    to remove, the conf still loses it, and the event is written."""
    conf = tmp_path / f"{IF}.conf"
    key, other = "K" * 42 + "k=", "L" * 42 + "l="
    text = "# header\n[Interface]\nListenPort = 1\n\n[Peer]\n# a\nPublicKey = {}\n"
    conf.write_text(text.format(key) + f"\n[Peer]\n# b\nPublicKey = {other}\n")
    proc, log = run_script(tmp_path, [(1, "1970-01-01T00:00:01Z", "a", key)], conf, [])
    assert proc.returncode == 0, proc.stderr
    assert (
        conf.read_text()
        == f"# header\n[Interface]\nListenPort = 1\n\n[Peer]\n# b\nPublicKey = {other}\n"
    )
    assert not log.exists()
    assert os.listdir(tmp_path / "expiry" / IF / "events") == ["1-a"]


def test_shellcheck_finds_nothing_in_the_script():
    text = wgf_expiry.script_text(
        IF, salt_call="/opt/salt/bin/salt-call", conf="/etc/wireguard/wg0.conf"
    )
    proc = subprocess.run(
        ["shellcheck", "-s", "sh", "-"], input=text, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout
