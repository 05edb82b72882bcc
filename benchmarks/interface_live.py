"""Benchmark: reconciling a 1,000-peer interface live (issue 12), through salt-call.

Run as root from the repository: ``.venv/bin/python -m benchmarks.interface_live``.

A real wireguard-go interface in a throw-away network namespace, brought up by
``wg-quick up`` from the conf the ``wireguard.config`` state wrote (in a temporary
config_dir); every peer has an AllowedIP outside the interface's subnet, so wg-quick
adds one route per peer. Then ``salt-call --local state.apply`` of an SLS holding the
``wireguard.config`` and ``wireguard.interface`` states of that interface, with
``ip``, ``wg`` and ``resolvconf`` on salt-call's PATH replaced by shims that count
their calls. Goals (Salt's reported duration of the two states):

  no-op apply, 1,000 peers                       <= 1 s, nothing changed
  commands it runs                               the same for 100 and 1,000 peers
  one interface setting changed (MTU), 1,000     <= 1 s, same ifindex (no restart)

and, for comparison in the same run, a restart of that interface: ``wg-quick down``
then ``wg-quick up`` of the same conf (no DNS or hooks: a bare namespace shares the
machine's /etc/resolv.conf). Prints a table; exits non-zero when a goal is missed.
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

from benchmarks.common import SALT_CALL, salt_call_config
from tests.support.netns import Netns

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "_utils"))
import wgf_keys  # the formula's utils, not an installed package  # noqa: E402

SIZES = (100, 1000)
GOAL_SECONDS = 1.0
COUNTED = ("ip", "wg", "resolvconf")
IP = shutil.which("ip")


class Minion:
    """A masterless salt-call configuration under ``root``: the checkout's modules,
    a local pillar and file root, and a PATH whose ``ip``/``wg``/``resolvconf`` log
    each call before running the real one."""

    def __init__(self, root):
        self.root = root
        self.config_dir = os.path.join(root, "wireguard")
        self.calls = os.path.join(root, "calls.log")
        salt_call_config(root)
        os.makedirs(os.path.join(root, "shim"))
        for tool in COUNTED:
            real = shutil.which(tool)
            if real is None:
                continue
            path = self._write(
                f"shim/{tool}",
                f'#!/bin/sh\necho "{tool} $1 $2" >> {self.calls}\nexec {real} "$@"\n',
            )
            os.chmod(path, 0o755)
        self.salt_own = collections.Counter()
        self.env = {
            **os.environ,
            "PATH": f"{root}/shim:{os.environ.get('PATH', '/usr/sbin:/usr/bin')}",
        }

    def _write(self, relative, text):
        path = os.path.join(self.root, relative)
        with open(path, "w") as handle:
            handle.write(text)
        return path

    def set_interface(self, ifname, interface):
        """The pillar holds this one interface; the SLS reconciles it."""
        self._write(
            "pillar/data.sls", yaml.safe_dump({"wireguard": {"interfaces": {ifname: interface}}})
        )
        conf_dir = self.config_dir
        self._write(
            "srv/bench.sls",
            yaml.safe_dump(
                {
                    "bench-config": {
                        "wireguard.config": [{"name": ifname}, {"config_dir": conf_dir}]
                    },
                    "bench-interface": {
                        "wireguard.interface": [
                            {"name": ifname},
                            {"config_dir": conf_dir},
                            {"require": [{"wireguard": "bench-config"}]},
                        ]
                    },
                }
            ),
        )

    def _salt_call(self, ns, *args):
        """(wall time, process) of ``salt-call --local ARGS`` inside ``ns``, its calls
        of the counted commands logged afresh."""
        if os.path.exists(self.calls):
            os.unlink(self.calls)
        argv = [
            IP,
            "netns",
            "exec",
            ns.netns,
            SALT_CALL,
            "-c",
            self.root,
            "--local",
            "--out=json",
            *args,
        ]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=600)
        return time.monotonic() - started, proc

    def _calls(self):
        calls = collections.Counter()
        if os.path.exists(self.calls):
            with open(self.calls) as handle:
                calls.update(line.strip() for line in handle)
        return calls

    def baseline(self, ns):
        """The counted commands salt-call runs by itself (grains), whatever it is asked."""
        self._salt_call(ns, "test.true")
        self.salt_own = self._calls()

    def apply(self, ns):
        """``salt-call --local state.apply bench`` inside ``ns``: (Salt's duration of
        the states in s by state, wall time in s, changes by state, the states' calls
        by command: salt-call's own calls taken away)."""
        wall, proc = self._salt_call(ns, "state.apply", "bench")
        try:
            result = json.loads(proc.stdout)["local"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SystemExit(
                f"salt-call failed (exit {proc.returncode}):\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ) from None
        if not isinstance(result, dict):
            raise SystemExit(f"salt-call returned no states: {str(result)[:3000]}")
        failed = {k: r["comment"] for k, r in result.items() if r["result"] is False}
        if failed:
            raise SystemExit(f"states failed: {json.dumps(failed, indent=1)[:3000]}")
        durations = {k.split("_|-")[1]: r["duration"] / 1000 for k, r in result.items()}
        changes = {k.split("_|-")[1]: r["changes"] for k, r in result.items() if r["changes"]}
        return durations, wall, changes, self._calls() - self.salt_own


def interface(private_key, peer_keys, mtu=None):
    """A hub: address 10.99.0.1/16, one /32 per peer outside it (10.100.0.0/14)."""
    wanted = {
        "address": ["10.99.0.1/16"],
        "listen_port": 51820,
        "private_key": private_key,
        "peers": {
            f"p{i}": {"public_key": key, "allowed_ips": [f"10.{100 + i // 256}.{i % 256}.1/32"]}
            for i, key in enumerate(peer_keys)
        },
    }
    if mtu:
        wanted["mtu"] = mtu
    return wanted


def wg_quick(ns, verb, conf):
    started = time.monotonic()
    ns.run(["wg-quick", verb, conf], timeout=600)
    return time.monotonic() - started


def measure(size):
    """Rows of the table for one interface of ``size`` peers."""
    rows = []
    ns = Netns(f"bil{size}").create()
    ifname = f"wgb{uuid.uuid4().hex[:6]}"
    try:
        with tempfile.TemporaryDirectory() as root:
            minion = Minion(root)
            private_key = wgf_keys.genkey()
            peer_keys = [wgf_keys.pubkey(wgf_keys.genkey()) for _ in range(size)]
            minion.set_interface(ifname, interface(private_key, peer_keys))
            minion.baseline(ns)
            minion.apply(ns)  # writes the conf; the interface is not up yet
            conf = os.path.join(minion.config_dir, f"{ifname}.conf")
            up = wg_quick(ns, "up", conf)
            routes = len(ns.ip("-4", "route", "show", "dev", ifname, "proto", "boot").splitlines())
            assert routes >= size, f"wg-quick added {routes} routes for {size} peers"
            ifindex = ns.ifindex(ifname)

            duration, wall, changes, calls = minion.apply(ns)
            rows.append(
                (
                    "no-op apply",
                    size,
                    duration,
                    wall,
                    calls,
                    not changes,
                    f"nothing changed{'' if not changes else f': {changes}'}",
                )
            )
            if size == max(SIZES):
                minion.set_interface(ifname, interface(private_key, peer_keys, mtu=1400))
                duration, wall, changes, calls = minion.apply(ns)
                mtu_live = "mtu 1400 " in ns.ip("link", "show", "dev", ifname)
                same = ns.ifindex(ifname) == ifindex
                rows.append(
                    (
                        "MTU changed",
                        size,
                        duration,
                        wall,
                        calls,
                        mtu_live and same,
                        f"mtu 1400 live: {mtu_live}, same ifindex: {same}",
                    )
                )
                down = wg_quick(ns, "down", conf)
                again = wg_quick(ns, "up", conf)
                rows.append(
                    (
                        "wg-quick down && up (restart)",
                        size,
                        None,
                        down + again,
                        None,
                        True,
                        f"first up took {up:.2f} s",
                    )
                )
    finally:
        ns.delete()
    return rows


def main():
    rows = []
    for size in SIZES:
        rows.extend(measure(size))
    ok = True
    print(
        "wireguard.config + wireguard.interface on a wireguard-go interface with one "
        "AllowedIPs route per peer (salt-call --local; Salt s: the two states' reported "
        "durations, config + interface; wall s: the whole salt-call):"
    )
    print(
        f"  {'what':30s} {'peers':>5s} {'Salt s':>7s} {'(config+interface)':>18s} "
        f"{'wall s':>7s} {'commands':>8s}  check"
    )
    for what, size, durations, wall, calls, passed, note in rows:
        total = None if durations is None else sum(durations.values())
        within = total is None or total <= GOAL_SECONDS
        ok &= passed and within
        salt_s = "-" if total is None else f"{total:.2f}"
        split = (
            ""
            if durations is None
            else "+".join(f"{durations[k]:.2f}" for k in ("bench-config", "bench-interface"))
        )
        count = "-" if calls is None else str(sum(calls.values()))
        verdict = "ok" if passed and within else "MISSED"
        goal = "" if total is None else f"goal <= {GOAL_SECONDS:.0f} s; "
        print(
            f"  {what:30s} {size:5d} {salt_s:>7s} {split:>18s} {wall:7.2f} {count:>8s}  "
            f"{verdict}: {goal}{note}"
        )
    noop = {size: calls for what, size, _, _, calls, _, _ in rows if what == "no-op apply"}
    counts = {size: sum(calls.values()) for size, calls in noop.items()}
    same = len(set(counts.values())) == 1
    ok &= same
    print(
        f"  commands the states run in a no-op apply, by peer count: {counts} "
        f"({'fixed' if same else 'MISSED: they grow with the peers'})"
    )
    for size, calls in noop.items():
        print(f"    {size:5d} peers: " + ", ".join(f"{c} x{n}" for c, n in sorted(calls.items())))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
