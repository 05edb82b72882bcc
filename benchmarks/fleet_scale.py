"""Benchmark: the fleet-scale curve (issue 16) through a real master and real minions.

Run as root from the repository:
    .venv/bin/python -m benchmarks.fleet_scale                    # N = 4, 8, 16, 24
    .venv/bin/python -m benchmarks.fleet_scale --nodes 4 --topologies mesh
    .venv/bin/python -m benchmarks.fleet_scale --plot-only        # redraw from the JSON

For each topology (a mine-driven `mesh`; `hub`: one hub and N-1 spokes) and each N, a
lab of its own (tests/lab: a salt-master container and N minion containers on one
"internet" switch) gets the same `wireguard:networks` pillar on every minion, then:

converge   `salt-run state.orch wireguard.orchestrate`, from its start until every
           tunnel the topology defines has carried a ping: in a mesh every node pings
           every other node's tunnel address (N(N-1) directed pairs); with a hub, every
           spoke pings the hub, the hub every spoke, and the first spoke the last one
           (through the hub). A ping only passes after the pair's handshake.
audit      `salt-run wireguard.audit` on the N minions (wall time of the command).
verify     every node's pillar gets `wireguard:expect` (it reaches every other node, ICMP:
           N(N-1) assertions, 552 at N=24), then: `verify_decide_s`, the runner's static
           decision alone (the minions' `wireguard.verify_facts`, gathered once, decided
           in this process by the runner's own code, CPU time); `verify_static_s`, the
           wall time of `salt-run wireguard.verify live=false` (the runner starting,
           one facts job, the decision); `verify_live_s`, the same with `live=true`
           (one more job: every node probes its N-1 assertions, all at once).
join       one more container boots and its minion is accepted (not timed: that is the
           lab, reported as `join_ready_s`); then, timed: the pillar naming N+1 nodes is
           written and refreshed, `state.orch wireguard.orchestrate` runs again, and the
           newcomer pings every node it peers with (mesh: all N; hub: the hub and, through
           it, the first spoke) and the hub pings it.
memory     sampled every 0.25 s from the start of converge to the end of join, for the
           salt-master processes, the salt-run process (the orchestration and the
           audit run in it) and the salt-minion processes of one minion (mesh: the
           first node; hub: the hub, the node with the most peers): the peak of the
           summed VmHWM (each process's own RSS high-water mark; pages shared between
           forked processes count once per process, so an upper bound) and the peak of
           the summed Pss (shared pages split between the processes sharing them).
CPU        seconds of CPU used during the orchestrate run and during the join, by the
           master container (cgroup cpu.stat), the salt-run process, the measured
           minion and all minions together: in the lab every minion shares the same 2
           cores, in a fleet each has its own, which the predictions take apart.

Containers start in batches (--batch, default 8) so that the starting salt-minions (CPU
bound) do not starve each other on 2 cores. Every lab is torn down by the lab's own
tear-down, also on failure or Ctrl-C. Results: benchmarks/results/fleet_scale.json (runs
of other N/topologies already in it are kept) and fleet_scale.svg, drawn by
benchmarks/curve.py; the fit `a + b*N + c*N^2` predicts 200 and 1,000 minions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import sys
import threading
import time
import traceback
import tracemalloc
from pathlib import Path

from benchmarks.curve import fit_cost, predict, svg_curves
from tests.lab.lab import Lab
from tests.lab.util import CGROUP_ROOTS, REPO, LabError, log

RESULTS = Path(__file__).resolve().parent / "results"
MEMORY = ("master_peak_mib", "runner_peak_mib", "minion_peak_mib")
CPU = ("master_cpu_s", "runner_cpu_s", "minion_cpu_s", "minions_cpu_s")
METRICS = (
    "converge_s",
    "orchestrate_s",
    "join_s",
    "audit_s",
    "verify_static_s",
    "verify_live_s",
    *MEMORY,
    *(m.replace("_peak_", "_pss_peak_") for m in MEMORY),
    *(f"{phase}_{c}" for phase in ("orchestrate", "join") for c in CPU),
)
PREDICT_AT = (200, 1000)


# ------------------------------------------------------------------------- topologies
class Mesh:
    """Every node peers with every other; keys through the mine."""

    name = "mesh"
    interface, port, subnet, underlay = "wg1", 51821, "10.2.0", "198.18.3"

    def names(self, count):
        return [f"node{i:02d}" for i in range(1, count + 1)]

    def index(self, name):
        return int(name[4:])

    def tunnel_ip(self, name):
        return f"{self.subnet}.{self.index(name)}"

    def underlay_ip(self, name):
        return f"{self.underlay}.{self.index(name)}"

    def nodes(self, names):
        return {
            n: {"address": f"{self.tunnel_ip(n)}/24", "endpoint": self.underlay_ip(n)}
            for n in names
        }

    def network(self, names):
        return {
            "interface": self.interface,
            "listen_port": self.port,
            "topology": "mesh",
            "nodes": self.nodes(names),
        }

    def pillar(self, names):
        """The same pillar for every minion, as pillar.example's mine-mesh."""
        return {
            "mine_functions": {"wireguard.public_keys": []},
            "wireguard": {"networks": {"fleet": self.network(names)}},
        }

    def converge_pings(self, names):
        return [(a, b) for a in names for b in names if a != b]

    def join_pings(self, names, newcomer):
        return [(newcomer, n) for n in names] + [(names[0], newcomer)]

    def measured_minion(self, names):
        return names[0]


class Hub(Mesh):
    """One hub with an endpoint; spokes without one dial it and reach each other through
    it (pillar.example's mine-hub, without the NAT routers)."""

    name = "hub"
    interface, port, subnet, underlay = "wg2", 51822, "10.3.0", "198.18.4"

    def names(self, count):
        return ["hub"] + [f"spoke{i:02d}" for i in range(1, count)]

    def index(self, name):
        return 1 if name == "hub" else 10 + int(name[5:])

    def nodes(self, names):
        nodes = {n: {"address": f"{self.tunnel_ip(n)}/24"} for n in names}
        nodes["hub"]["endpoint"] = self.underlay_ip("hub")
        return nodes

    def network(self, names):
        return {**super().network(names), "topology": "hub", "hubs": ["hub"]}

    def converge_pings(self, names):
        spokes = names[1:]
        pairs = [(s, "hub") for s in spokes] + [("hub", s) for s in spokes]
        if len(spokes) > 1:
            pairs.append((spokes[0], spokes[-1]))
        return pairs

    def join_pings(self, names, newcomer):
        return [(newcomer, "hub"), ("hub", newcomer), (newcomer, names[1])]


TOPOLOGIES = {t.name: t for t in (Mesh(), Hub())}


# ------------------------------------------------------------------------- memory
def _status_kib(pid, field):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_pids(container):
    """The container's processes: its daemons (salt-master, salt-minion and the jobs
    they fork) live in its cgroups."""
    pids = set()
    for root in CGROUP_ROOTS:
        cgroup = root / container.lab.id / container.name
        for procs in cgroup.rglob("cgroup.procs") if cgroup.is_dir() else ():
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue
    return pids


def _descendants(pid=None):
    """This process's descendants: `salt-run`, started through `nsenter -a` (which enters
    the container's namespaces but not its cgroups), is one of them."""
    found, todo = set(), [pid or os.getpid()]
    while todo:
        parent = todo.pop()
        try:  # processes come and go while we look
            tasks = list(Path(f"/proc/{parent}/task").glob("*/children"))
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in task.read_text().split()]
            except (OSError, ValueError):
                continue
            found.update(children)
            todo += children
    return found


def _program(pid):
    """salt-master, salt-run, salt-minion or None, from the process's command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for arg in argv[:3]:
        base = os.path.basename(arg.decode(errors="replace")).split()[0] if arg else ""
        if base in ("salt-master", "salt-run", "salt-minion"):
            return base
    return None


def memory_mib(pids, program):
    """(sum of VmHWM, sum of Pss) of the live `program` processes among pids, MiB."""
    mine = [pid for pid in pids if _program(pid) == program]
    return (
        sum(_status_kib(pid, "VmHWM") for pid in mine) / 1024,
        sum(_pss_kib(pid) for pid in mine) / 1024,
    )


class PeakSampler(threading.Thread):
    """Samples, for some (container, program) pairs, the summed VmHWM (an upper bound:
    pages shared between forked processes count once per process) and the summed Pss
    (shared pages split between their users); keeps each maximum."""

    def __init__(self, watched, interval=0.25):
        super().__init__(daemon=True)
        self.watched = watched  # {label: (container or None for our descendants, program)}
        self.peaks = {}
        self.interval = interval
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            # a cgroup or process that vanishes mid-walk costs one sample, not the sampler
            with contextlib.suppress(OSError):
                self.sample()
            self.done.wait(self.interval)

    def sample(self):
        for label, (container, program) in self.watched.items():
            pids = _descendants() if container is None else _cgroup_pids(container)
            hwm, pss = memory_mib(pids, program)
            self.peaks[label] = max(self.peaks.get(label, 0.0), hwm)
            pss_label = label.replace("_peak_", "_pss_peak_")
            self.peaks[pss_label] = max(self.peaks.get(pss_label, 0.0), pss)

    def stop(self):
        self.done.set()
        self.join(timeout=10)
        self.sample()
        return {label: round(value, 1) for label, value in self.peaks.items()}


# ------------------------------------------------------------------------- CPU
def cgroup_cpu_s(container):
    """CPU seconds used so far by everything in the container (cgroup v2 cpu.stat)."""
    for root in CGROUP_ROOTS:
        stat = root / container.lab.id / container.name / "cpu.stat"
        if stat.is_file():
            for line in stat.read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
    return 0.0


def children_cpu_s():
    """CPU seconds of this process's finished (waited-for) descendants: salt-run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds spent during a phase by the master container, the salt-run process,
    the measured minion and all minions together."""

    def __init__(self, lab, minion):
        self.lab, self.minion = lab, minion
        self.start = self.read()

    def read(self):
        minions = self.lab.minions()
        return {
            "master_cpu_s": cgroup_cpu_s(self.lab.master),
            "runner_cpu_s": children_cpu_s(),
            "minion_cpu_s": cgroup_cpu_s(self.minion),
            "minions_cpu_s": sum(cgroup_cpu_s(m) for m in minions),
        }

    def used(self, prefix):
        end = self.read()
        return {f"{prefix}_{k}": round(end[k] - self.start[k], 1) for k in end}


# ------------------------------------------------------------------------- steps
def boot_in_batches(lab, inet, topo, names, batch):
    """Containers on the internet switch, `batch` at a time, each batch ready before the
    next starts. Returns {name: container}."""
    hosts = {}
    for start in range(0, len(names), batch):
        for name in names[start : start + batch]:
            hosts[name] = lab.container(name)
            inet.attach(hosts[name], "eth0", [f"{topo.underlay_ip(name)}/24"])
        lab.wait_ready(timeout=600)
    return hosts


def failed_results(data):
    """Every state result False anywhere in an orchestration's return."""
    found = []
    if isinstance(data, dict):
        if data.get("result") is False:
            found.append(str(data.get("comment", data))[:500])
        for value in data.values():
            found += failed_results(value)
    elif isinstance(data, list):
        for value in data:
            found += failed_results(value)
    return found


def orchestrate(lab, hosts):
    ret = lab.master.salt_run("state.orch", "wireguard.orchestrate", timeout=1800)
    failures = failed_results(ret)
    if failures or not ret:
        first = next(iter(hosts.values()))
        journal = first.out(
            "journalctl -u 'wg-quick@*' --no-pager -n 20 -o cat; systemctl --failed --no-legend",
            check=False,
            timeout=60,
        )
        raise LabError(
            "state.orch wireguard.orchestrate failed:\n"
            + "\n".join(failures[:10])
            + ("" if ret else "\n(no output)")
            + f"\n--- {first.name}: wg-quick journal\n{journal}"
        )


def reach(hosts, topo, pairs, within=180):
    """Until every (source, destination) pair has had a ping answered through the tunnel;
    the sources ping in parallel, each all its destinations at once."""
    pending = set(pairs)
    deadline = time.monotonic() + within
    while pending:
        by_source = {}
        for src, dst in sorted(pending):
            by_source.setdefault(src, []).append(topo.tunnel_ip(dst))
        procs = {}
        for src, ips in by_source.items():
            # -c 1 -w 3: done at the first reply, a new echo request every 0.2 s until then
            script = (
                "for ip in " + " ".join(ips) + "; do (ping -n -q -c 1 -i 0.2 -w 3 $ip "
                ">/dev/null 2>&1 && echo ok $ip) & done; wait"
            )
            procs[src] = hosts[src].popen(script)
        for src, proc in procs.items():
            out, _ = proc.communicate(timeout=120)
            answered = {line.split()[1] for line in out.splitlines() if line.startswith("ok ")}
            pending -= {
                (s, d) for s, d in list(pending) if s == src and topo.tunnel_ip(d) in answered
            }
        if pending and time.monotonic() > deadline:
            raise LabError(
                f"no ping through the tunnel after {within}s: "
                f"{sorted(pending)[:20]} ({len(pending)} pairs)"
            )


def audit(lab, names):
    t0 = time.monotonic()
    data = lab.master.salt_run("wireguard.audit", tgt=",".join(names), tgt_type="list", timeout=300)
    seconds = time.monotonic() - t0
    if not isinstance(data, dict) or "problems" not in data:
        raise LabError(f"wireguard.audit returned no report: {str(data)[:2000]}")
    serious = [p for p in data["problems"] if p["severity"] in ("error", "warning")]
    return seconds, serious


def expectations(topo, names):
    """Each node's pillar with `wireguard:expect`: it reaches every other node (ICMP)."""
    pillars = {n: topo.pillar(names) for n in names}
    for node in names:
        pillars[node]["wireguard"]["expect"] = [{"from": node, "to": o} for o in names if o != node]
    return pillars


def verify(lab, topo, names):
    """The verify step (see the docstring): {"verify_*": ...}; a LabError when the runner
    answers no report or misses assertions (failed ones are recorded, not raised)."""
    sys.path.insert(0, str(REPO / "_utils"))  # the runner's pure part, as the tests load it
    import wgf_verify_report

    lab.master.write_pillar(expectations(topo, names))
    want = len(names) * (len(names) - 1)
    out = {"verify_assertions": want}
    facts = lab.master.salt(names, "wireguard.verify_facts", timeout=300)
    t0 = time.process_time()
    assertions, _ = wgf_verify_report.static(wgf_verify_report.facts_from(facts))
    out["verify_decide_s"] = round(time.process_time() - t0, 3)
    if len(assertions) != want:
        raise LabError(f"verify_facts: {len(assertions)} assertions of {want}")
    for label, live in (("verify_static_s", False), ("verify_live_s", True)):
        t0 = time.monotonic()
        data = lab.master.salt_run(
            "wireguard.verify",
            "timeout=120",  # the runner's own (facts and probes), not salt-run's -t
            tgt=",".join(names),
            tgt_type="list",
            live=live,
            timeout=300,
        )
        out[label] = round(time.monotonic() - t0, 1)
        if not isinstance(data, dict) or len(data.get("assertions", [])) != want:
            raise LabError(f"wireguard.verify live={live} answered: {str(data)[:2000]}")
        kind = "live" if live else "static"
        out[f"verify_{kind}_failed"] = data["failed"]
        out[f"verify_{kind}_failures"] = [
            f"{r['from']}->{r['to']}: {r['reason']}" for r in data["assertions"] if not r["pass"]
        ][:5]
    return out


def noop(lab, names):
    """Issue 24's fleet goals, from the containers' cgroups: a no-op orchestration's CPU
    per minion (all minions' CPU over N) and the master's per minion; then a no-op
    `state.apply wireguard` against the floor, a one-state SLS (benchmarks/floor.sls),
    each on every minion at once, per minion."""
    found = {}
    cpu = CpuMeter(lab, lab[names[0]])
    orchestrate(lab, {n: lab[n] for n in names})
    used = cpu.used("noop")
    found["noop_orch_minion_cpu_s"] = round(used["noop_minions_cpu_s"] / len(names), 2)
    found["noop_orch_master_cpu_s"] = round(used["noop_master_cpu_s"] / len(names), 2)
    found["noop_orch_runner_cpu_s"] = used["noop_runner_cpu_s"]
    for key, sls in (("floor", "benchmarks.floor"), ("noop_apply", "wireguard")):
        cpu = CpuMeter(lab, lab[names[0]])
        lab.master.state_apply(list(names), sls=sls)
        per_minion = cpu.used(key)[f"{key}_minions_cpu_s"] / len(names)
        found[f"{key}_minion_cpu_s"] = round(per_minion, 2)
    found["noop_apply_over_floor"] = round(
        found["noop_apply_minion_cpu_s"] / max(found["floor_minion_cpu_s"], 0.01), 2
    )
    return found


def join(lab, inet, topo, hosts, names, newcomer, batch, run):
    """One more node boots (not timed: join_ready_s), then the join, timed (join_s)."""
    t0 = time.monotonic()
    hosts.update(boot_in_batches(lab, inet, topo, [newcomer], batch))
    run["join_ready_s"] = round(time.monotonic() - t0, 1)
    bigger = [*names, newcomer]
    cpu = CpuMeter(lab, hosts[topo.measured_minion(names)])
    t0 = time.monotonic()
    lab.master.write_pillar({n: topo.pillar(bigger) for n in bigger})
    orchestrate(lab, hosts)
    reach(hosts, topo, topo.join_pings(names, newcomer))
    run["join_s"] = round(time.monotonic() - t0, 1)
    run.update(cpu.used("join"))


def measure(topo, count, batch):
    """One lab: N minions of one topology, converged, audited, one more joined."""
    run = {"topology": topo.name, "nodes": count}
    names = topo.names(count)
    newcomer = topo.names(count + 1)[-1]
    with Lab(f"scale{topo.name}") as lab:
        inet = lab.bridge("inet")
        t0 = time.monotonic()
        hosts = boot_in_batches(lab, inet, topo, names, batch)
        run["ready_s"] = round(time.monotonic() - t0, 1)
        # once per master, as a user installs the formula's runner and its utils
        lab.master.salt_run("saltutil.sync_all")
        sampler = PeakSampler(
            {
                "master_peak_mib": (lab.master, "salt-master"),
                "runner_peak_mib": (None, "salt-run"),
                "minion_peak_mib": (hosts[topo.measured_minion(names)], "salt-minion"),
            }
        )
        sampler.start()
        try:
            lab.master.write_pillar({n: topo.pillar(names) for n in names})
            log(f"{topo.name} N={count}: orchestrate")
            measured = hosts[topo.measured_minion(names)]
            cpu = CpuMeter(lab, measured)
            t0 = time.monotonic()
            orchestrate(lab, hosts)
            run["orchestrate_s"] = round(time.monotonic() - t0, 1)
            run.update(cpu.used("orchestrate"))
            reach(hosts, topo, topo.converge_pings(names))
            run["converge_s"] = round(time.monotonic() - t0, 1)
            log(f"{topo.name} N={count}: converged in {run['converge_s']}s; audit")
            seconds, serious = audit(lab, names)
            run["audit_s"] = round(seconds, 1)
            run["audit_problems"] = [f"{p['check']}: {p['message']}" for p in serious][:10]
            log(f"{topo.name} N={count}: verify")
            run.update(verify(lab, topo, names))
            log(f"{topo.name} N={count}: a no-op orchestration and the floor")
            run.update(noop(lab, names))
            log(f"{topo.name} N={count}: {newcomer} joins")
            try:  # a failed join keeps what was measured before it
                join(lab, inet, topo, hosts, names, newcomer, batch, run)
            except LabError as exc:
                traceback.print_exc()
                run["join_error"] = " ".join(str(exc).split())[:300]
        finally:
            run.update(sampler.stop())
    run["date"] = now()
    log(f"{topo.name} N={count}: {json.dumps(run)}")
    return run


# ------------------------------------------------------------------------- model
def _synthetic_mesh_fleet(count):
    """What `wireguard.audit` collects from a healthy mesh of `count` nodes (the data
    shape of _utils/wgf_fleet.py's fleet_from)."""

    def key(i):
        return f"bench{i:06d}".ljust(43, "A") + "="

    def ip(i, net):
        return f"{net}.{i // 250}.{i % 250 + 1}"

    fleet = {}
    for i in range(count):
        peers = {
            key(j): {
                "name": f"n{j}",
                "endpoint": f"{ip(j, '198.18')}:51821",
                "endpoint_resolved": [f"{ip(j, '198.18')}:51821"],
                "live_endpoint": f"{ip(j, '198.18')}:51821",
                "allowed_ips": [f"{ip(j, '10.2')}/32"],
                "latest_handshake_age": 10,
                "tx_bytes": 1000,
                "persistent_keepalive": None,
                "live": True,
            }
            for j in range(count)
            if j != i
        }
        fleet[f"n{i}"] = {
            "error": None,
            "underlay": [ip(i, "198.18")],
            "local": [],
            "interfaces": {
                "wg1": {
                    "public_key": key(i),
                    "live": True,
                    "listen_port": 51821,
                    "addresses": [f"{ip(i, '10.2')}/16"],
                    "forwarding": {"ipv4": False, "ipv6": False},
                    "peers": peers,
                }
            },
        }
    return fleet


def model(sizes):
    """The pure parts of the master's work, timed in this process (CPU seconds): the
    audit runner's cross-check of a healthy mesh of each size (with the memory its input
    takes), and, also at the sizes predicted, parsing one minion's pillar (the
    declaration of an N-node network), which the master does for every minion on every
    state run."""
    import salt.utils.yaml
    import yaml

    sys.path.insert(0, str(REPO / "_utils"))  # the runner's pure part, as the tests load it
    import wgf_audit

    out = []
    for count in sorted(set(sizes) | set(PREDICT_AT)):
        row = {"nodes": count}
        if count in sizes:
            tracemalloc.start()
            fleet = _synthetic_mesh_fleet(count)
            row["audit_input_mib"] = round(tracemalloc.get_traced_memory()[0] / 2**20, 1)
            tracemalloc.stop()
            t0 = time.process_time()
            crossed = wgf_audit.cross_check(fleet)
            row["audit_cross_check_cpu_s"] = round(time.process_time() - t0, 3)
            if crossed["problems"]:
                raise LabError(
                    f"the synthetic mesh of {count} has problems: {crossed['problems'][:3]}"
                )
        names = [f"node{i:04d}" for i in range(1, count + 1)]
        pillar = Mesh().pillar(names)
        pillar["wireguard"]["networks"]["fleet"]["nodes"] = {
            n: {
                "address": f"10.2.{i // 250}.{i % 250 + 1}/16",
                "endpoint": f"198.18.{i // 250}.{i % 250 + 1}",
            }
            for i, n in enumerate(names)
        }
        text = yaml.safe_dump(pillar, default_flow_style=False)
        t0 = time.process_time()
        salt.utils.yaml.safe_load(text)
        row["pillar_parse_cpu_s"] = round(time.process_time() - t0, 4)
        row["pillar_bytes"] = len(text)
        out.append(row)
        log(f"model N={count}: {row}")
    return out


# ------------------------------------------------------------------------- results
def load_doc(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def fits(runs):
    """{topology: {metric: fit and predictions}} from the successful runs."""
    out = {}
    for topo in sorted({r["topology"] for r in runs}):
        out[topo] = {}
        for metric in METRICS:
            points = [
                (r["nodes"], r[metric])
                for r in runs
                if r["topology"] == topo and r.get(metric) is not None
            ]
            if len({n for n, _ in points}) < 2:
                continue
            fit = fit_cost(points)
            out[topo][metric] = {
                **{k: round(v, 6) for k, v in fit.items()},
                **{f"at_{n}": round(predict(fit, n), 1) for n in PREDICT_AT},
            }
    return out


def save(runs, modelled, json_path, svg_path):
    good = [r for r in runs if "error" not in r]
    dates = sorted(r["date"] for r in runs if "date" in r)
    doc = {
        "benchmark": "benchmarks/fleet_scale.py",
        "date": dates[-1] if dates else now(),
        "machine": {
            "cores": os.cpu_count(),
            "kernel": platform.release(),
            "memory_gib": round(
                os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
            ),
            "shared": "other lab sessions ran on the same machine at the same time",
        },
        "definitions": "\n\n".join(__doc__.split("\n\n")[2:4]),
        "runs": sorted(runs, key=lambda r: (r["topology"], r["nodes"])),
        "fit": fits(good),
        "model": modelled,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    if good:
        svg_path.write_text(
            svg_curves(
                good,
                f"wireguard-formula fleet scale, lab on {os.cpu_count()} cores, {doc['date'][:10]}",
            )
        )
    return doc


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def table(doc):
    """The results as a Markdown table (for docs/scaling.md)."""
    lines = [
        "| topology | N | converge s (orchestrate) | join s | audit s | "
        "master MiB HWM / Pss | salt-run MiB HWM / Pss | minion MiB HWM / Pss |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["runs"]:
        if "error" in r:
            lines.append(
                f"| {r['topology']} | {r['nodes']} | failed: {r['error'][:60]} | | | | | |"
            )
            continue
        lines.append(
            f"| {r['topology']} | {r['nodes']} | {r.get('converge_s')} "
            f"({r.get('orchestrate_s')}) | {r.get('join_s', 'failed')} | {r.get('audit_s')} | "
            + " | ".join(f"{r.get(m)} / {r.get(m.replace('_peak_', '_pss_peak_'))}" for m in MEMORY)
            + " |"
        )
    return "\n".join(lines)


def cpu_table(doc):
    """CPU seconds of one orchestration (converge) as a Markdown table."""
    lines = [
        "| topology | N | master container | salt-run | one minion | all minions |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["runs"]:
        if "error" not in r:
            lines.append(
                f"| {r['topology']} | {r['nodes']} | "
                + " | ".join(str(r.get(f"orchestrate_{c}")) for c in CPU)
                + " |"
            )
    return "\n".join(lines)


def verify_table(doc):
    """The verify step of the runs that had it, as a Markdown table."""
    lines = [
        "| topology | N | assertions | decision CPU s | static s (live=false) | "
        "live s (live=true) | failed static / live |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["runs"]:
        if "verify_assertions" in r:
            lines.append(
                f"| {r['topology']} | {r['nodes']} | {r['verify_assertions']} | "
                f"{r['verify_decide_s']} | {r['verify_static_s']} | {r['verify_live_s']} | "
                f"{r['verify_static_failed']} / {r['verify_live_failed']} |"
            )
    return "\n".join(lines)


def noop_table(doc):
    """Issue 24's fleet goals: a no-op's CPU per minion, from the containers' cgroups."""
    lines = [
        "| topology | N | no-op orchestration: per minion | master per minion | "
        "salt-run per minion | no-op state.apply per minion | one-state SLS per minion | "
        "ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in doc["runs"]:
        if "noop_orch_minion_cpu_s" in r:
            runner = r.get("noop_orch_runner_cpu_s")
            lines.append(
                f"| {r['topology']} | {r['nodes']} | {r['noop_orch_minion_cpu_s']} | "
                f"{r['noop_orch_master_cpu_s']} | "
                f"{'-' if runner is None else round(runner / r['nodes'], 2)} | "
                f"{r['noop_apply_minion_cpu_s']} | "
                f"{r['floor_minion_cpu_s']} | {r['noop_apply_over_floor']} |"
            )
    return "\n".join(lines)


def prediction_table(doc):
    """The fit evaluated at 200 and 1,000 minions, as a Markdown table."""
    shown = (
        "converge_s",
        "join_s",
        "audit_s",
        "orchestrate_master_cpu_s",
        "orchestrate_minion_cpu_s",
        "master_pss_peak_mib",
        "minion_pss_peak_mib",
    )
    lines = [
        "| topology | measure | a (fixed) | b (per node) | c (per N²) | at 200 | at 1,000 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for topo, metrics in doc["fit"].items():
        for metric in shown:
            fit = metrics.get(metric)
            if fit:
                lines.append(
                    f"| {topo} | {metric} | {fit['fixed']:g} | {fit['per_node']:g} | "
                    f"{fit['per_pair']:g} | {fit['at_200']:g} | {fit['at_1000']:g} |"
                )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nodes", default="4,8,16,24", help="comma-separated N values (default 4,8,16,24)"
    )
    parser.add_argument(
        "--topologies", default="mesh,hub", help=f"comma-separated, of: {', '.join(TOPOLOGIES)}"
    )
    parser.add_argument("--batch", type=int, default=8, help="containers started at once")
    parser.add_argument("--json", type=Path, default=RESULTS / "fleet_scale.json")
    parser.add_argument("--svg", type=Path, default=RESULTS / "fleet_scale.svg")
    parser.add_argument(
        "--fresh", action="store_true", help="forget the runs already in the JSON file"
    )
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="no lab: redraw the picture and the fit from the JSON file",
    )
    parser.add_argument(
        "--model",
        default="24,48,96",
        help="sizes at which to time the audit's cross-check and the pillar "
        "parse in this process ('' to keep the JSON's)",
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.nodes.split(",")]
    topologies = [TOPOLOGIES[t] for t in args.topologies.split(",")]
    if max(counts) + 1 > 200:
        parser.error(
            "at most 199 nodes: the lab's management network has 245 addresses "
            "and the tunnel networks are /24s"
        )
    old = {} if args.fresh else load_doc(args.json)
    runs, modelled = old.get("runs", []), old.get("model", [])
    failed = False
    try:
        if not args.plot_only:
            for count in counts:
                for topo in topologies:
                    runs = [r for r in runs if (r["topology"], r["nodes"]) != (topo.name, count)]
                    try:
                        runs.append(measure(topo, count, args.batch))
                    except (LabError, OSError, ValueError) as exc:
                        failed = True
                        traceback.print_exc()
                        runs.append(
                            {
                                "topology": topo.name,
                                "nodes": count,
                                "date": now(),
                                "error": " ".join(str(exc).split())[:300],
                            }
                        )
                    save(runs, modelled, args.json, args.svg)
    except KeyboardInterrupt:
        log("interrupted: the labs are torn down; results so far are saved")
        save(runs, modelled, args.json, args.svg)
        return 130
    if args.model:
        modelled = model([int(n) for n in args.model.split(",")])
    doc = save(runs, modelled, args.json, args.svg)
    print(
        table(doc),
        cpu_table(doc),
        verify_table(doc),
        noop_table(doc),
        prediction_table(doc),
        sep="\n\n",
    )
    print(json.dumps({"fit": doc["fit"], "model": doc["model"]}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
