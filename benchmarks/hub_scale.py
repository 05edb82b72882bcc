"""Benchmark: one hub with 10,000 clients (or 10,000 explicit peers) through the whole
formula, `salt-call --local state.apply wireguard` in a lab container (issue 24), and
1,000 clients, 100 of them with limits and 100 with expiries (issue 23's speed goals).

Run as root from the repository (after `./lab setup`):
    .venv/bin/python -m benchmarks.hub_scale                      # every scenario
    .venv/bin/python -m benchmarks.hub_scale --only clients --count 2000
    .venv/bin/python -m benchmarks.hub_scale --profile            # + cProfiles

Each scenario gets a fresh systemd container (wireguard-go, Salt 3008, the checkout at
/srv/formula) and, masterless, its pillar:

clients    10,000 `clients:` of wg0 (every tenth with a preshared key)
peers      10,000 explicit `peers:` of wg0 (public key, one /32 each)
lifecycle  1,000 clients, 100 with `limits: {rate: ..., quota: 10GiB}`, 100 with an `expires` a year
           ahead, nftables as the firewall backend

Measured, as Salt reports it (the sum of every state's `duration`): the first apply, a
no-op re-apply, one client (or peer) added, one removed; for `clients` also the
`wireguard.client_config` call of one client (config and PNG QR code) in a loaded minion
(`salt.client.Caller`, the whole function call); for `lifecycle` the replacement of the
firewall table in one `nft -f` (the table the apply left, deleted and made again in one
transaction, as the firewall state does it). For every apply: the wall time of the
salt-call, the states by function (how many, how long), and every command the formula
ran (a `sitecustomize` in the container times each `subprocess.Popen`: argv's first two
words, how many, how long). `--profile` adds the top of a cProfile of a no-op, of one
added and of one removed.
Exits non-zero when a goal is missed. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import pathlib
import sys
import time

import yaml

from tests.lab.lab import Lab
from tests.lab.tunnel import BOOTSTRAP_CONF, LOCAL_CONF, LOCAL_PILLAR

CALL = ["salt-call", "--local", "--out=json", "--no-color"]
HOOK_DIR = "/var/tmp/hub-scale-hook"
CMD_LOG = "/var/tmp/hub-scale-commands.jsonl"
CPU_LOG = "/var/tmp/hub-scale-cpu.json"
# imported by every Python of the container that has HOOK_DIR on its path: each
# subprocess.Popen is timed and its first two words appended to CMD_LOG (no more of argv)
HOOK = f"""\
import json, os, subprocess, time
_init, _wait = subprocess.Popen.__init__, subprocess.Popen.wait
def __init__(self, args, *a, **k):
    self._bench = (time.perf_counter(), args)
    _init(self, args, *a, **k)
def wait(self, *a, **k):
    rc = _wait(self, *a, **k)
    t0, args = getattr(self, "_bench", (None, None))
    if t0 is not None:
        words = args.split()[:2] if isinstance(args, str) else [str(w) for w in args][:2]
        words = [os.path.basename(words[0])] + words[1:2] if words else words
        with open({CMD_LOG!r}, "a") as fh:
            fh.write(json.dumps([" ".join(words), time.perf_counter() - t0]) + "\\n")
        self._bench = (None, None)
    return rc
subprocess.Popen.__init__, subprocess.Popen.wait = __init__, wait
import atexit, resource, sys
_STATES = {{}}
if sys.argv[:1] and sys.argv[0].endswith("salt-call"):  # each state's CPU seconds
    import salt.state
    _state_call = salt.state.State.call
    def _call(self, low, *a, **k):
        t0 = time.process_time()
        try:
            return _state_call(self, low, *a, **k)
        finally:
            entry = _STATES.setdefault(f"{{low.get('state')}}.{{low.get('fun')}}", [0, 0.0])
            entry[0] += 1
            entry[1] += time.process_time() - t0
    salt.state.State.call = _call
def _cpu():  # the salt-call's CPU seconds, its commands' included
    if not any(arg.endswith("salt-call") for arg in sys.argv[:1]):
        return  # (read at exit: under cProfile, argv is the script's only then)
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open({CPU_LOG!r}, "w") as fh:
        fh.write(json.dumps([own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime, _STATES]))
atexit.register(_cpu)
"""
CALLER = """\
import sys, time, salt.config, salt.client
opts = salt.config.minion_config("/etc/salt/minion")
opts["file_client"] = "local"
caller = salt.client.Caller(mopts=opts)
caller.cmd("test.ping")
times = []
for name in sys.argv[1:]:
    t0 = time.perf_counter()
    out = caller.cmd("wireguard.client_config", "wg0", name, qr="png", path="/tmp/export")
    times.append(time.perf_counter() - t0)
    assert out.get("qr"), out
print(times[0], sorted(times)[len(times) // 2])
"""
GOALS = {"first": 10.0, "noop": 0.5, "added": 0.5, "removed": 0.5, "export": 1.0}
LIFECYCLE_GOALS = {"noop": 1.0, "nft": 0.1}


def fake_key(i: int) -> str:
    """A peer's public key (any 32 bytes are one), the same for the same i."""
    return base64.b64encode(i.to_bytes(4, "big") * 8).decode()


def hub(extra: dict) -> dict:
    return {
        "wireguard": {
            "interfaces": {
                "wg0": {
                    "address": "10.96.0.1/14",
                    "listen_port": 51820,
                    "endpoint": "198.18.0.1",
                    **extra,
                }
            }
        }
    }


def clients_pillar(count: int) -> dict:
    clients = {f"c{i:05d}": ({"preshared_key": True} if i % 10 == 0 else {}) for i in range(count)}
    return hub({"client_defaults": {"dns": ["10.96.0.1"]}, "clients": clients})


def peers_pillar(count: int) -> dict:
    peers = {
        f"p{i:05d}": {
            "public_key": fake_key(i),
            "allowed_ips": [f"10.{97 + i // 65536}.{i // 256 % 256}.{i % 256}/32"],
        }
        for i in range(1, count + 1)
    }
    return hub({"peers": peers})


def lifecycle_pillar(count: int) -> dict:
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=365)
    clients = {}
    for i in range(count):
        client = {}
        if i % 10 == 1:
            # a rate (tc) and a quota (the firewall table): both kinds of limit
            client["limits"] = {"rate": f"{10 + i % 7}mbit", "quota": "10GiB"}
        if i % 10 == 2:
            client["expires"] = (expires + datetime.timedelta(minutes=i)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        clients[f"c{i:05d}"] = client
    pillar = hub({"clients": clients})
    pillar["wireguard"]["lookup"] = {"firewall": "nftables"}
    return pillar


class Hub:
    """A lab container that applies the formula masterless with a pillar of our own."""

    def __init__(self, lab: Lab, name: str):
        self.c = lab.container(name, minion=False, formula=True)
        lab.wait_ready()
        self.c.write(LOCAL_CONF, BOOTSTRAP_CONF)
        self.c.write(f"{LOCAL_PILLAR}/top.sls", "base:\n  '*':\n    - wg\n")
        self.c.write(f"{HOOK_DIR}/sitecustomize.py", HOOK)
        self.c.run([*CALL, "saltutil.sync_all"], timeout=300)

    def pillar(self, pillar: dict) -> None:
        self.c.write(f"{LOCAL_PILLAR}/wg.sls", json.dumps(pillar), mode=0o600)

    def apply(self, label: str, profile: str | None = None) -> dict:
        """One `state.apply wireguard`: what it cost and where the time went."""
        self.c.run(["rm", "-f", CMD_LOG, CPU_LOG])
        run = ["env", f"PYTHONPATH={HOOK_DIR}"]
        if profile:
            run += ["/opt/salt/bin/python3", "-m", "cProfile", "-o", profile]
            run += [self.c.out(["sh", "-c", "command -v salt-call"]).strip()]
        t0 = time.perf_counter()
        call = CALL[1:] if profile else CALL
        proc = self.c.run([*run, *call, "state.apply", "wireguard"], check=False, timeout=900)
        wall = time.perf_counter() - t0
        try:
            ret = json.loads(proc.stdout)["local"]
        except (ValueError, KeyError, TypeError):
            raise SystemExit(f"{label}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None
        failed = {k: r["comment"] for k, r in ret.items() if not r["result"]}
        if failed:
            raise SystemExit(f"{label}: failed states: {json.dumps(failed, indent=1)[:4000]}")
        states: dict[str, list] = {}
        for key, r in ret.items():
            parts = key.split("_|-")
            entry = states.setdefault(f"{parts[0]}.{parts[-1]}", [0, 0.0, 0])
            entry[0] += 1
            entry[1] += r["duration"] / 1000
            entry[2] += bool(r["changes"])
        commands: dict[str, list] = {}
        for line in self.c.out(["sh", "-c", f"cat {CMD_LOG} 2>/dev/null || true"]).splitlines():
            words, seconds = json.loads(line)
            entry = commands.setdefault(words, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds
        own, kids, state_cpu = json.loads(self.c.out(["cat", CPU_LOG]))
        return {
            "label": label,
            "state_s": sum(r["duration"] for r in ret.values()) / 1000,
            "wall_s": wall,
            "cpu_s": own,
            "state_cpu_s": sum(sec for _, sec in state_cpu.values()),
            "state_cpu": state_cpu,
            "commands_cpu_s": kids,
            "states": states,
            "commands": commands,
            "changed": sum(1 for r in ret.values() if r["changes"]),
        }

    def floor_cpu(self) -> float:
        """CPU seconds of `salt-call --local state.single test.nop` in the same container:
        Salt's own start-up, the floor under any apply."""
        self.c.run(["rm", "-f", CPU_LOG])
        run = ["env", f"PYTHONPATH={HOOK_DIR}", *CALL, "state.single", "test.nop", "floor"]
        self.c.run(run, timeout=300)
        return json.loads(self.c.out(["cat", CPU_LOG]))[0]

    def nft_replace(self) -> tuple[float, float]:
        """(seconds, CPU seconds) of one `nft -f` that deletes the formula's table and makes
        it again, timed inside the container (median of 5)."""
        table = self.c.out(["nft", "list", "table", "inet", "wireguard"])
        script = "table inet wireguard\ndelete table inet wireguard\n" + table
        self.c.write("/var/tmp/hub-scale.nft", script)
        code = (
            "import resource, subprocess, sys, time\n"
            "t0 = time.perf_counter()\n"
            "subprocess.run(['nft', '-f', sys.argv[1]], check=True)\n"
            "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print(time.perf_counter() - t0, r.ru_utime + r.ru_stime)\n"
        )
        runs = sorted(
            tuple(map(float, self.c.out(["python3", "-c", code, "/var/tmp/hub-scale.nft"]).split()))
            for _ in range(5)
        )
        return runs[2]

    def export(self, names: list[str]) -> float:
        self.c.write("/var/tmp/hub-scale-caller.py", CALLER)
        out = self.c.out(["/opt/salt/bin/python3", "/var/tmp/hub-scale-caller.py", *names])
        first, median = out.strip().splitlines()[-1].split()
        return float(first), float(median)


def report(m: dict, goal: float | None) -> bool:
    ok = goal is None or m["state_s"] <= goal
    said = "" if goal is None else f"  goal <= {goal:g} s {'ok' if ok else 'MISSED'}"
    print(
        f"  {m['label']:34s} {m['state_s']:7.2f} s of state time, {m['wall_s']:6.2f} s wall, "
        f"CPU {m['cpu_s']:.2f} s ({m['state_cpu_s']:.2f} s in states) + "
        f"{m['commands_cpu_s']:.2f} s of commands, "
        f"{m['changed']} changed{said}"
    )
    for fun, (n, sec, changed) in sorted(m["states"].items(), key=lambda kv: -kv[1][1])[:8]:
        cpu = m["state_cpu"].get(fun, [0, 0.0])[1]
        print(
            f"      state   {fun:34s} x{n:<6d} {sec:7.3f} s, CPU {cpu:6.3f} s  ({changed} changed)"
        )
    for words, (n, sec) in sorted(m["commands"].items(), key=lambda kv: -kv[1][1])[:10]:
        print(f"      command {words:34s} x{n:<6d} {sec:7.3f} s")
    return ok


def profile_top(hub: Hub, label: str, path: str) -> None:
    """The top of the profile at ``path`` in the container: by own time, then the
    formula's own functions (its extension modules) by cumulative time."""
    code = (
        "import pstats, sys; p = pstats.Stats(sys.argv[1]); p.sort_stats('tottime')\n"
        "p.print_stats(25); p.sort_stats('cumulative').print_stats('extmods', 25)"
    )
    out = hub.c.out(["/opt/salt/bin/python3", "-c", code, path])
    saved = f"/tmp/hub-scale-{hub.c.name}-{os.path.basename(path)}"
    pathlib.Path(saved).write_bytes(base64.b64decode(hub.c.out(["base64", "-w0", path])))
    print(f"    the whole profile: {saved} (python -m pstats)")
    keep = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("   Ordered")]
    print(f"    cProfile of the {label} (top 25 by own time, the formula's by cumulative):")
    for line in keep:
        print(f"      {line[:150]}")


def scenario(lab: Lab, kind: str, count: int, profile: bool) -> tuple[bool, dict]:
    hub = Hub(lab, f"hub{kind[:4]}")
    build = {"clients": clients_pillar, "peers": peers_pillar, "lifecycle": lifecycle_pillar}
    pillar = build[kind](count)
    section = "clients" if kind != "peers" else "peers"
    table = pillar["wireguard"]["interfaces"]["wg0"][section]
    print(f"\n{kind}: one hub, {count} {section} (salt-call --local state.apply wireguard)")
    goals = LIFECYCLE_GOALS if kind == "lifecycle" else GOALS
    ok, results = True, {}
    hub.pillar(pillar)
    results["first"] = hub.apply("first apply")
    ok &= report(results["first"], goals.get("first"))
    results["noop"] = hub.apply("no-op re-apply")
    ok &= report(results["noop"], goals.get("noop"))
    results["floor_cpu_s"] = hub.floor_cpu()
    print(f"  {'(Salt alone: state.single test.nop)':34s} CPU {results['floor_cpu_s']:.2f} s")
    if profile:
        hub.apply("no-op re-apply (profiled)", profile="/var/tmp/hub-scale-noop.prof")
        profile_top(hub, "no-op", "/var/tmp/hub-scale-noop.prof")
    extra = f"{'c' if section == 'clients' else 'p'}{count + 1:05d}"
    added = (
        {"public_key": fake_key(count + 1), "allowed_ips": ["10.99.255.254/32"]}
        if section == "peers"
        else {}
    )
    table[extra] = dict(added)
    hub.pillar(pillar)
    results["added"] = hub.apply(f"one {section[:-1]} added")
    ok &= report(results["added"], goals.get("added"))
    del table[extra]
    table.pop(sorted(table)[0])
    hub.pillar(pillar)
    results["removed"] = hub.apply(f"two {section} removed (last added, first)")
    ok &= report(results["removed"], goals.get("removed"))
    if profile:  # the one added back and removed again, each under cProfile
        for label in ("added", "removed"):
            if label == "added":
                table[extra] = dict(added)
            else:
                del table[extra]
            hub.pillar(pillar)
            path = f"/var/tmp/hub-scale-{label}.prof"
            hub.apply(f"one {section[:-1]} {label} (profiled)", profile=path)
            profile_top(hub, f"one {section[:-1]} {label}", path)
    live = hub.c.out(["wg", "show", "wg0", "peers"]).split()
    assert len(live) == count - 1, f"{len(live)} live peers, wanted {count - 1}"
    if kind == "clients":
        first, results["export_s"] = hub.export(sorted(table)[1 :: max(1, len(table) // 5)][:5])
        results["export_first_s"] = first
        good = first <= goals["export"]
        ok &= good
        print(
            f"  {'client_config of one client':34s} {first:7.2f} s whole call, the first in "
            f"a new minion (pillar validated); {results['export_s']:.2f} s the median of 5  "
            f"goal <= 1 s {'ok' if good else 'MISSED'}"
        )
    if kind == "lifecycle":
        results["nft_s"], results["nft_cpu_s"] = hub.nft_replace()
        good = results["nft_s"] <= goals["nft"]
        ok &= good
        rules = hub.c.out(["nft", "list", "table", "inet", "wireguard"]).count("\n")
        print(
            f"  {'firewall table replaced, one nft -f':34s} {results['nft_s'] * 1000:7.1f} ms, "
            f"CPU {results['nft_cpu_s'] * 1000:.1f} ms ({rules} lines)  goal < 100 ms "
            f"{'ok' if good else 'MISSED'}"
        )
    return ok, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("clients", "peers", "lifecycle"), action="append")
    parser.add_argument("--count", type=int, help="clients or peers (default 10,000; 1,000)")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile of a no-op, an add and a remove"
    )
    parser.add_argument("--json", help="write every measurement to this file")
    args = parser.parse_args(argv)
    kinds = args.only or ["clients", "peers", "lifecycle"]
    ok, everything = True, {}
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    with Lab("hubscale", master=False) as lab:
        for kind in kinds:
            count = args.count or (1000 if kind == "lifecycle" else 10000)
            good, everything[kind] = scenario(lab, kind, count, args.profile)
            ok &= good
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as handle:
            yaml.safe_dump(everything, handle) if args.json.endswith(".yaml") else json.dump(
                everything, handle, indent=1
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
