"""Client expiry on time (issue 23), for real: the expiry script the apply writes
(``wgf_expiry.script_text``), run without Salt against a wireguard-go interface with two
client peers in namespaces of this test's own. The expired client's peer goes, the other
stays while a ping over its tunnel at 20 pps loses nothing. This machine's PID 1 is no
systemd, so the real host adapter arms OpenRC's detached waiter, which runs the script at
the instant; ``salt-call``, ``systemd-run`` and ``systemctl`` are stubs on PATH that log their
arguments."""

import datetime
import json
import os
import subprocess
import time

import pytest

import wgf_events
import wgf_expiry
import wgf_files
import wgf_host
import wgf_layout
import wgf_openrc
from tests.support.waiters import stop_waiter


def iso(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def run_all(argv, python_shell=False, ignore_retcode=True, stdin=None, output_loglevel=None):
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.fixture
def box(loaders, pair, tmp_path, monkeypatch):
    """``pair``'s local interface (the server) with two clients in the remote
    namespace: ``guest`` (10.77.0.2) and ``staff`` (10.77.0.3, which answers pings);
    the expiry state directory, and stubs on PATH."""
    guest = pair.add_remote(loaders.modules, 2)
    staff = pair.add_remote(loaders.modules, 3, route=True)
    for key, n in ((guest, 2), (staff, 3)):
        pair.local.run(
            [
                *("wg", "set", pair.ifname, "peer", key, "allowed-ips", f"10.77.0.{n}/32"),
                *("endpoint", f"198.18.10.2:{51820 + n}"),
            ]
        )
    ping = pair.local.run(["ping", "-c", "1", "-W", "3", "10.77.0.3"], check=False)
    assert ping.returncode == 0, ping.stdout
    root, stubs = tmp_path / "expiry", tmp_path / "bin"
    stubs.mkdir()
    log = tmp_path / "calls.log"
    commands = (("salt-call", '{"local": true}'), ("systemd-run", ""), ("systemctl", ""))
    for name, answer in (*commands, ("rc-update", "")):
        (stubs / name).write_text(
            f'#!/bin/sh\nprintf "%s\\n" "{name} $*" >> "{log}"\necho \'{answer}\'\n'
        )
        os.chmod(stubs / name, 0o755)
    monkeypatch.setenv("PATH", f"{stubs}:{os.environ['PATH']}")
    monkeypatch.setattr(wgf_expiry, "STATE_ROOT", str(root))
    monkeypatch.setattr(wgf_layout, "INIT_SCRIPT_DIR", str(tmp_path / "init.d"))
    monkeypatch.setattr(wgf_layout, "RUNLEVELS_DIR", str(tmp_path / "runlevels"))
    (tmp_path / "init.d").mkdir()
    state = root / pair.ifname
    try:
        yield pair, {"guest": guest, "staff": staff}, root, state, log
    finally:
        stop_waiter(state / wgf_expiry.WAITER, wgf_expiry.unit_name(pair.ifname))


def write(pair, root, state, entries, salt_call=None):
    state.mkdir(parents=True, mode=0o700, exist_ok=True)
    (state / wgf_expiry.SCHEDULE).write_text(wgf_expiry.schedule_text(entries))
    (state / wgf_expiry.SCRIPT).write_text(
        wgf_expiry.script_text(pair.ifname, str(root), salt_call)
    )


def schedule(pair, keys, root, state, guest_in, staff_in):
    """The expiry files for guest and staff expiring in that many seconds; their
    instants."""
    now = int(time.time())
    guest_at, staff_at = now + guest_in, now + staff_in
    entries = [
        (guest_at, iso(guest_at), "guest", keys["guest"]),
        (staff_at, iso(staff_at), "staff", keys["staff"]),
    ]
    write(pair, root, state, entries)
    return guest_at, staff_at


def peers(pair):
    return pair.local.out(["wg", "show", pair.ifname, "peers"]).split()


def test_the_waiter_removes_each_client_at_its_instant_and_no_other_peer_loses_a_packet(box):
    pair, keys, root, state, log = box
    guest_at, staff_at = schedule(pair, keys, root, state, 2, 5)
    host = wgf_host.Host({"cmd.run_all": run_all})
    # 20 pps over staff's tunnel from before the guest's instant until after it
    ping = pair.local.popen(["ping", "-n", "-i", "0.05", "-c", "50", "-W", "1", "10.77.0.3"])
    host.arm_expiry(pair.ifname, [guest_at, staff_at])
    waiter = int((state / wgf_expiry.WAITER).read_text())
    assert host.expiry_armed(pair.ifname)
    while keys["guest"] in peers(pair) and time.time() < guest_at + 10:
        time.sleep(0.1)
    gone_after = time.time() - guest_at
    assert keys["guest"] not in peers(pair) and keys["staff"] in peers(pair)
    assert -0.1 <= gone_after < 10, gone_after
    out, _ = ping.communicate(timeout=30)
    assert "50 packets transmitted, 50 received, 0% packet loss" in out, out
    # the event, through salt-call, names the client; what was sent is logged
    data = {"interface": pair.ifname, "client": "guest", "expires": iso(guest_at)}
    calls = [line for line in log.read_text().splitlines() if line.startswith("salt-call ")]
    assert calls[0] == (
        f"salt-call --out=json event.fire_master {json.dumps(data)} wireguard/client/expired"
    )
    assert json.loads((state / wgf_events.SENT).read_text().split(" ", 1)[1]) == data
    assert wgf_expiry.pending_events(str(root)) == []
    # the second instant, with no apply in between: the staff client goes too
    while keys["staff"] in peers(pair) and time.time() < staff_at + 10:
        time.sleep(0.1)
    assert peers(pair) == []
    for _ in range(50):
        if not host.expiry_armed(pair.ifname):
            break
        time.sleep(0.1)
    assert not host.expiry_armed(pair.ifname)
    assert sum(line.startswith("salt-call ") for line in log.read_text().splitlines()) == 2
    assert f"rc-update add {wgf_expiry.unit_name(pair.ifname)} default" in log.read_text()
    assert "systemd-run" not in log.read_text()
    assert not alive(waiter)  # done after the last instant


def test_on_openrc_a_boot_script_starts_the_waiter_again_after_a_reboot(box):
    """The waiter is a process of its own: a reboot ends it. Its boot script (default
    runlevel, after the interface's service) starts it again with the same instants, and
    an instant passed while the machine was down is run at once."""
    pair, keys, root, state, log = box
    guest_at, staff_at = schedule(pair, keys, root, state, 1, 3600)
    host = wgf_host.Host({"cmd.run_all": run_all})
    host.arm_expiry(pair.ifname, [guest_at, staff_at], f"wg-quick.{pair.ifname}")
    service = wgf_expiry.unit_name(pair.ifname)
    script = wgf_openrc.script_path(service)
    assert f"rc-update add {service} default" in log.read_text().splitlines()
    assert oct(os.stat(script).st_mode & 0o777) == "0o755"
    assert f"    after wg-quick.{pair.ifname}\n" in wgf_files.read(script)
    # the machine goes down before the guest's instant: the waiter is gone
    stop_waiter(state / wgf_expiry.WAITER, service)
    assert not host.expiry_armed(pair.ifname)
    time.sleep(max(0.0, guest_at + 1 - time.time()))
    assert keys["guest"] in peers(pair)
    # at boot OpenRC runs the script's start: the passed instant at once, the next waits
    boot = subprocess.run(["sh", "-c", f'. "{script}" && start'], capture_output=True, text=True)
    assert boot.returncode == 0, boot.stderr
    for _ in range(50):  # setsid execs the waiter an instant after the record is written
        if host.expiry_armed(pair.ifname):
            break
        time.sleep(0.1)
    assert host.expiry_armed(pair.ifname)
    for _ in range(100):
        if keys["guest"] not in peers(pair):
            break
        time.sleep(0.1)
    assert peers(pair) == [keys["staff"]]
    waiter = int((state / wgf_expiry.WAITER).read_text())
    assert alive(waiter) and oct(os.stat(state / wgf_expiry.WAITER).st_mode & 0o777) == "0o600"
    # disarmed: the waiter stopped, the script and its runlevel entry gone
    link = wgf_openrc.runlevel_link(service)
    os.makedirs(os.path.dirname(link))
    os.symlink(script, link)  # as rc-update add makes it
    host.disarm_expiry(pair.ifname)
    assert not alive(waiter) and not os.path.exists(script)
    assert log.read_text().splitlines()[-1] == f"rc-update del {service} default"


def test_an_event_no_master_took_waits_for_the_next_apply(box, monkeypatch, tmp_path):
    pair, keys, root, state, log = box
    now = int(time.time())
    (tmp_path / "bin" / "salt-call").write_text(f'#!/bin/sh\necho "salt-call $*" >> "{log}"\n')
    write(pair, root, state, [(now - 1, iso(now - 1), "guest", keys["guest"])])
    run = subprocess.run(["sh", str(state / wgf_expiry.SCRIPT)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert peers(pair) == [keys["staff"]]
    data = {"interface": pair.ifname, "client": "guest", "expires": iso(now - 1)}
    assert [d for _, d in wgf_expiry.pending_events(str(root))] == [data]
    # run again (the next instant): the peer is gone, nothing removed twice, the event
    # still tried
    subprocess.run(["sh", str(state / wgf_expiry.SCRIPT)], check=True)
    assert len(log.read_text().splitlines()) == 2
    assert len(wgf_expiry.pending_events(str(root))) == 1

    class Salt(dict):
        sent = []

    host = wgf_host.Host({"event.send": lambda tag, data: Salt.sent.append((tag, data)) or True})
    assert wgf_expiry.report(host, str(root)) == [data]
    assert Salt.sent == [("wireguard/client/expired", data)]
    assert wgf_expiry.pending_events(str(root)) == []


def test_systemd_gets_a_persistent_timer_unit_with_every_instant(box, monkeypatch, tmp_path):
    pair, _, root, _, log = box
    monkeypatch.setattr(wgf_host.Host, "has_systemd", lambda self: True)
    monkeypatch.setattr(wgf_expiry, "UNIT_DIR", str(tmp_path / "units"))
    (root / pair.ifname).mkdir(parents=True)
    host = wgf_host.Host({"cmd.run_all": run_all})
    epochs = [
        int(datetime.datetime(2027, 2, 1, 6, tzinfo=datetime.timezone.utc).timestamp()),
        int(datetime.datetime(2027, 2, 2, 6, tzinfo=datetime.timezone.utc).timestamp()),
    ]
    host.arm_expiry(pair.ifname, epochs, f"wg-quick@{pair.ifname}")
    timer = f"wireguard-client-expiry-{pair.ifname}.timer"
    assert log.read_text().splitlines() == [
        f"systemctl stop {timer}",
        "systemctl daemon-reload",
        f"systemctl enable --now {timer}",
    ]
    units = wgf_expiry.unit_files(pair.ifname, epochs, f"wg-quick@{pair.ifname}", str(root))
    for path, text in units.items():
        assert wgf_files.read(path) == text
        assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert (
        "OnCalendar=2027-02-01 06:00:00 UTC\nOnCalendar=2027-02-02 06:00:00 UTC\n"
        in (units[f"{tmp_path}/units/{timer}"])
    )
    # disarmed: stopped, disabled, the files gone, systemd told
    log.write_text("")
    host.disarm_expiry(pair.ifname)
    assert log.read_text().splitlines() == [
        f"systemctl stop {timer}",
        f"systemctl disable {timer}",
        "systemctl daemon-reload",
    ]
    assert not any(os.path.exists(p) for p in units)
