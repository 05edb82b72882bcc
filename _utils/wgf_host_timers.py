"""The host adapter's timers and waiters: what runs without salt-minion at a later
instant (confirm's undo, client expiry, the quota saver) and the boot units and init
scripts the formula installs. A part of ``wgf_host.Host`` (its commands run through
``Host.run``/``run_all``; a detached waiter is started by ``Host._spawn_waiter``), kept
apart by concern as ``wgf_host_files`` is."""

import contextlib
import os
import shutil
import signal
import sys
import time

import wgf_confirm
import wgf_confirm_undo
import wgf_expiry
import wgf_files
import wgf_openrc
import wgf_quota

#: How often ``systemd-run`` is tried when it refuses a unit name still in use.
ARM_TRIES = 4


def waiter_pid(record, is_ours):
    """The process id ``record`` names, while that process's command line is still the
    waiter's (``is_ours(cmdline)``: not an id used again, not a waiter that already runs
    its script); else None."""
    text = (wgf_files.read(record) or "").strip()
    if not text.isdigit():
        return None
    try:
        with open(f"/proc/{text}/cmdline", "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return None
    return int(text) if is_ours(cmdline) else None


def kill_waiter(pid, wait=2.0):
    """The waiter and its ``sleep`` (its process group); returns once the waiter is gone
    (or a zombie), at most ``wait`` seconds later: a signal is delivered asynchronously,
    and whoever asks next whether it runs must hear no."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # no group of its own (a boot script without setsid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                if handle.read().rsplit(")", 1)[-1].split()[:1] == ["Z"]:
                    return
        except OSError:
            return
        time.sleep(0.02)


class Timers:
    """Arming and disarming what runs later; mixed into ``wgf_host.Host``."""

    # ------------------------------------------------------------ confirm's undo

    def _undo_waiter_record(self, interface):
        directory = wgf_confirm.state_dir(interface, wgf_confirm.STATE_ROOT)
        return os.path.join(directory, wgf_confirm.WAITER)

    def arm_undo(self, interface, timeout):
        """What runs the undo of ``interface`` in ``timeout`` seconds without salt-minion:
        on systemd a transient timer and service (``systemd-run``: PID 1 owns them); on
        OpenRC a detached process in a session and cgroup of its own, its id recorded
        for the disarm (``wgf_confirm_undo.waiter_argv``)."""
        if self.has_systemd():
            argv = wgf_confirm_undo.arm_argv(interface, timeout, wgf_confirm.STATE_ROOT)
            for _ in range(ARM_TRIES - 1):
                if self.run_all(argv)["retcode"] == 0:
                    return
                # re-armed (a rollout's hold) right after the disarm: systemd may not have
                # collected the stopped transient units yet, and refuses the name
                units = [wgf_confirm.timer_unit(interface), wgf_confirm.service_unit(interface)]
                self.run_all(["systemctl", "reset-failed", *units])
                time.sleep(0.5)
            self.run(argv)
            return
        self._spawn_waiter(
            wgf_confirm_undo.waiter_argv(interface, timeout, wgf_confirm.STATE_ROOT),
            self._undo_waiter_record(interface),
            f"{interface}: the undo",
        )

    def disarm_undo(self, interface):
        """Stop what would run ``interface``'s undo; one already gone is no error. An undo
        already running is left to finish (the caller holds or waits for the lock)."""
        if self.has_systemd():
            self.run_all(wgf_confirm_undo.disarm_argv(interface))
            return
        record = self._undo_waiter_record(interface)
        pid = waiter_pid(
            record,
            lambda cmdline: wgf_confirm_undo.is_waiter(cmdline, interface, wgf_confirm.STATE_ROOT),
        )
        wgf_files.remove(record)
        kill_waiter(pid)

    def run_undo(self, interface, mode="now"):
        """Run ``interface``'s recorded undo script now; whether every step worked."""
        argv = wgf_confirm_undo.undo_argv(interface, mode, wgf_confirm.STATE_ROOT)
        return self.run_all(argv)["retcode"] == 0

    # ------------------------------------------------------------ clients' expiry

    def _expiry_waiter(self, interface):
        directory = wgf_expiry.state_dir(interface, wgf_expiry.STATE_ROOT)
        return waiter_pid(
            os.path.join(directory, wgf_expiry.WAITER),
            lambda cmdline: wgf_expiry.is_waiter(cmdline, interface, wgf_expiry.STATE_ROOT),
        )

    def arm_expiry(self, interface, epochs, service=None):
        """Arm what runs ``interface``'s expiry script at each of ``epochs`` without
        salt-minion, replacing what was armed: on systemd the timer and service unit
        files (``wgf_expiry.unit_files``, ordered after the interface's unit
        ``service``), enabled and started; on OpenRC a detached waiter."""
        self.disarm_expiry(interface, keep_units=True)
        if self.has_systemd():
            units = wgf_expiry.unit_files(interface, epochs, service, wgf_expiry.STATE_ROOT)
            for path, text in units.items():
                self._write_system_file(path, text, 0o644, ".wgf-unit-")
            self.run(["systemctl", "daemon-reload"])
            self.run(["systemctl", "enable", "--now", wgf_expiry.timer_unit(interface)])
            return
        directory = wgf_expiry.state_dir(interface, wgf_expiry.STATE_ROOT)
        self._spawn_waiter(
            wgf_expiry.waiter_argv(interface, epochs, wgf_expiry.STATE_ROOT),
            os.path.join(directory, wgf_expiry.WAITER),
            f"{interface}: the client expiry",
        )
        boot = wgf_expiry.boot_script(interface, epochs, service, wgf_expiry.STATE_ROOT)
        self.install_init_script(wgf_expiry.unit_name(interface), boot)

    def expiry_armed(self, interface):
        """Whether ``interface``'s expiry timer (or OpenRC waiter and boot script) is
        there."""
        if self.has_systemd():
            return self.run_all(wgf_expiry.is_armed_argv(interface))["retcode"] == 0
        boot = wgf_openrc.script_path(wgf_expiry.unit_name(interface))
        return self._expiry_waiter(interface) is not None and os.path.exists(boot)

    def disarm_expiry(self, interface, keep_units=False):
        """Stop ``interface``'s expiry timer or waiter (one already gone is no error);
        unless ``keep_units``, disable the timer and remove its unit files."""
        if self.has_systemd():
            self.run_all(wgf_expiry.disarm_argv(interface))
            paths = [p for p in wgf_expiry.unit_paths(interface) if os.path.exists(p)]
            if paths and not keep_units:
                self.run_all(["systemctl", "disable", wgf_expiry.timer_unit(interface)])
                for path in paths:
                    wgf_files.remove(path)
                self.run(["systemctl", "daemon-reload"])
            return
        kill_waiter(self._expiry_waiter(interface))
        if not keep_units:
            self.remove_init_script(wgf_expiry.unit_name(interface))

    # ------------------------------------------------------- clients' quota counts

    def _quota_waiter(self):
        record = os.path.join(wgf_quota.STATE_DIR, wgf_quota.WAITER)
        leave = wgf_confirm_undo.LEAVE_CGROUP
        return waiter_pid(record, lambda cmdline: wgf_quota.is_waiter(cmdline, leave))

    def quota_saver_armed(self):
        """Whether the quota saver's timer (OpenRC: its loop) runs."""
        if self.has_systemd():
            timer = f"{wgf_quota.UNIT}.timer"
            return self.run_all(["systemctl", "is-active", "--quiet", timer])["retcode"] == 0
        boot = wgf_openrc.script_path(wgf_quota.UNIT)
        return self._quota_waiter() is not None and os.path.exists(boot)

    def arm_quota_saver(self):
        """Install, enable and start the quota saver's units (``wgf_quota.units``);
        OpenRC: start its detached loop."""
        if self.has_systemd():
            for name, text in wgf_quota.units().items():
                self._write_system_file(f"{wgf_quota.UNIT_DIR}/{name}", text, 0o644, ".wgf-")
            self.run(["systemctl", "daemon-reload"])
            self.run(["systemctl", "enable", "--now", *wgf_quota.enabled_units()])
            return
        leave = wgf_confirm_undo.LEAVE_CGROUP
        if self._quota_waiter() is None:
            record = os.path.join(wgf_quota.STATE_DIR, wgf_quota.WAITER)
            self._spawn_waiter(wgf_quota.waiter_argv(leave), record, "the quota saver")
        self.install_init_script(wgf_quota.UNIT, wgf_quota.boot_script(leave))

    def disarm_quota_saver(self):
        """Save the counts once more, then stop and remove the quota saver."""
        self.run_all([wgf_quota.SHELL, f"{wgf_quota.STATE_DIR}/{wgf_quota.SCRIPT}"])
        if not self.has_systemd():
            pid = self._quota_waiter()
            wgf_files.remove(os.path.join(wgf_quota.STATE_DIR, wgf_quota.WAITER))
            kill_waiter(pid)
            self.remove_init_script(wgf_quota.UNIT)
            return
        self.run_all(["systemctl", "disable", "--now", *wgf_quota.enabled_units()])
        for name in wgf_quota.units():
            wgf_files.remove(f"{wgf_quota.UNIT_DIR}/{name}")
        self.run(["systemctl", "daemon-reload"])

    def salt_call(self):
        """The minion's ``salt-call`` (PATH, else beside this Python), or None."""
        found = shutil.which("salt-call")
        beside = os.path.join(os.path.dirname(sys.executable), "salt-call")
        return found or (beside if os.access(beside, os.X_OK) else None)

    # ------------------------------------------------------- boot units and scripts

    def install_unit(self, path, text, unit):
        """Write the unit file ``path`` (0644), reload systemd and enable ``unit``."""
        self._write_system_file(path, text, 0o644, ".wgf-unit-")
        self.run(["systemctl", "daemon-reload"])
        self.run(["systemctl", "enable", unit])

    def remove_unit(self, path, unit):
        """Disable ``unit``, remove its file ``path`` and reload systemd."""
        self.run_all(["systemctl", "disable", unit])
        wgf_files.remove(path)
        self.run(["systemctl", "daemon-reload"])

    def install_init_script(self, service, text, runlevel=wgf_openrc.RUNLEVEL):
        """OpenRC: write ``service``'s init script (0755) unless it already reads
        ``text``, and add ``service`` to ``runlevel`` unless it is in it."""
        path = wgf_openrc.script_path(service)
        if wgf_files.read(path) != text:
            self._write_system_file(path, text, 0o755, ".wgf-init-")
        if not os.path.lexists(wgf_openrc.runlevel_link(service, runlevel)):
            self.run(["rc-update", "add", service, runlevel])

    def remove_init_script(self, service, runlevel=wgf_openrc.RUNLEVEL):
        """OpenRC: take ``service`` out of ``runlevel`` and remove its init script (one
        not there is no error)."""
        if os.path.lexists(wgf_openrc.runlevel_link(service, runlevel)):
            self.run_all(["rc-update", "del", service, runlevel])
        wgf_files.remove(wgf_openrc.script_path(service))
