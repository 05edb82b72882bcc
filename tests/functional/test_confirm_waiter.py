"""Confirm (issue 21) where systemd is not PID 1 (OpenRC): the host adapter arms the
undo as a detached process. This machine's PID 1 is no systemd either, so the real
adapter takes that way here. The stand-in for salt-minion runs in a cgroup of the
test's own (cgroup v2, as OpenRC's hybrid and unified modes use), and is killed with
everything in that cgroup, as OpenRC's ``rc_cgroup_cleanup`` does when the service
stops: the waiter must have left it, and undo the change at the deadline.

The undo script is the real one (``wgf_confirm_undo.undo_script``, ``init="openrc"``):
it puts a file back and calls ``rc-service``, a stub on PATH that logs its arguments."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import wgf_confirm
import wgf_confirm_undo
import wgf_host
from tests.support.waiters import CGROUP2, stop_waiter

UTILS = os.path.join(os.path.dirname(__file__), "..", "..", "_utils")

#: The stand-in for salt-minion: joins the cgroup it is given, arms the undo through
#: the real host adapter, says so, then waits to be killed.
MINION = """
import sys, time
cgroup, root, interface = sys.argv[1:4]
with open(cgroup + "/cgroup.procs", "w") as handle:
    handle.write("0")
sys.path.insert(0, sys.argv[4])
import wgf_confirm, wgf_host
wgf_confirm.STATE_ROOT = root
wgf_host.Host({}).arm_undo(interface, 5)
print("armed", flush=True)
time.sleep(120)
"""


def pids(cgroup):
    with open(f"{cgroup}/cgroup.procs") as handle:
        return [int(p) for p in handle.read().split()]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def in_group(pid, group):
    try:
        return alive(pid) and os.getpgid(pid) == group
    except ProcessLookupError:
        return False


@pytest.fixture
def armed_box(tmp_path, monkeypatch):
    """A state directory armed for a fresh interface name: the recorded file, its
    changed copy in place, the real undo script (OpenRC), ``rc-service`` stubbed."""
    interface = f"wgw{uuid.uuid4().hex[:6]}"
    root, stubs = tmp_path / "confirm", tmp_path / "bin"
    state = root / interface
    state.mkdir(parents=True, mode=0o700)
    stubs.mkdir()
    target = tmp_path / f"{interface}.conf"
    (state / "conf").write_text("the recorded file\n")
    target.write_text("the changed file\n")
    log = tmp_path / "rc-service.log"
    (stubs / "rc-service").write_text(f'#!/bin/sh\necho "rc-service $*" >> "{log}"\n')
    os.chmod(stubs / "rc-service", 0o755)
    (state / wgf_confirm.UNDO_SCRIPT).write_text(
        wgf_confirm_undo.undo_script(
            interface,
            [wgf_confirm_undo.Restore(str(target), "conf")],
            f"wg-quick.{interface}",
            None,
            "openrc",
            root=str(root),
            restart_pending=str(tmp_path / "pending"),
        )
    )
    (state / wgf_confirm.ARMED).write_text(wgf_confirm_undo.armed_text("00000000-0000"))
    monkeypatch.setenv("PATH", f"{stubs}:{os.environ['PATH']}")
    monkeypatch.setattr(wgf_confirm, "STATE_ROOT", str(root))
    try:
        yield interface, root, state, target, log
    finally:
        stop_waiter(state / wgf_confirm.WAITER, wgf_confirm.unit_name(interface))


def test_a_waiter_outlives_the_minion_and_its_cgroup_and_undoes_at_the_deadline(
    armed_box, tmp_path
):
    interface, root, state, target, log = armed_box
    minion_cgroup = f"{CGROUP2}/wgf-test-minion-{uuid.uuid4().hex[:6]}"
    os.mkdir(minion_cgroup)
    minion = None
    try:
        minion = subprocess.Popen(
            [sys.executable, "-c", MINION, minion_cgroup, str(root), interface, UTILS],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert minion.stdout.readline().strip() == "armed"
        armed_at = time.monotonic()
        waiter = int((state / wgf_confirm.WAITER).read_text())
        # the waiter has left the minion's cgroup for one named after the interface
        for _ in range(50):
            if waiter not in pids(minion_cgroup):
                break
            time.sleep(0.05)
        with open(f"/proc/{waiter}/cgroup") as handle:
            assert f"0::/{wgf_confirm.unit_name(interface)}\n" in handle.read()
        # OpenRC stops the service: everything in its cgroup is killed
        for pid in pids(minion_cgroup):
            os.kill(pid, signal.SIGKILL)
        minion.wait(timeout=5)
        assert alive(waiter) and target.read_text() == "the changed file\n"
        # the undo writes "undone", then removes "armed" (a crash between the two leaves
        # both, and the boot-time undo runs again)
        undone, armed = state / wgf_confirm.UNDONE, state / wgf_confirm.ARMED
        while (armed.exists() or not undone.exists()) and time.monotonic() - armed_at < 15:
            time.sleep(0.2)
        waited = time.monotonic() - armed_at
        assert target.read_text() == "the recorded file\n"
        assert 4 <= waited < 15, waited
        assert log.read_text() == f"rc-service wg-quick.{interface} restart\n"
        assert "mode=timer" in undone.read_text() and not armed.exists()
    finally:
        if minion is not None and minion.poll() is None:
            minion.kill()
            minion.wait()
        for _ in range(50):
            try:
                os.rmdir(minion_cgroup)
                break
            except OSError:
                time.sleep(0.1)


def test_the_disarm_kills_the_waiter_and_nothing_else(armed_box):
    interface, _, state, target, log = armed_box
    host = wgf_host.Host({})
    host.arm_undo(interface, 5)
    waiter = int((state / wgf_confirm.WAITER).read_text())
    assert alive(waiter)
    host.disarm_undo(interface)
    for _ in range(50):
        if not alive(waiter):
            break
        time.sleep(0.05)
    assert not alive(waiter)
    # its sleep went with it: nothing of the process group is left to run the undo
    assert [p for p in os.listdir("/proc") if p.isdigit() and in_group(int(p), waiter)] == []
    assert not (state / wgf_confirm.WAITER).exists()
    assert target.read_text() == "the changed file\n" and not log.exists()


def test_a_waiter_record_naming_another_process_kills_nothing(armed_box):
    interface, _, state, _, _ = armed_box
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        (state / wgf_confirm.WAITER).write_text(f"{other.pid}\n")
        wgf_host.Host({}).disarm_undo(interface)
        assert other.poll() is None
        assert not (state / wgf_confirm.WAITER).exists()
    finally:
        other.kill()
        other.wait()
