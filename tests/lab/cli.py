"""Entry point of ./lab: python -m tests.lab.cli {test,demo,clean,rootfs} ARGS."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import guestimage, rootfs
from .util import CLEAN_ENV, REPO, LabError, log, require_root

# dot (Graphviz): the runner's SVG test runs on the host too, and must not be skipped;
# promtool (Debian's prometheus): the metrics' exposition and alert rules are checked;
# Debian's node_exporter scrapes the metrics textfile in a lab container
NEEDED_TOOLS = (
    "systemd-nspawn",
    "debootstrap",
    "nsenter",
    "ip",
    "iptables",
    "wg",
    "dot",
    "promtool",
    "prometheus-node-exporter",
    # the kernel tier: QEMU guests on Debian's kernel
    "qemu-system-x86_64",
    "qemu-img",
)


def check_tools() -> None:
    missing = [t for t in NEEDED_TOOLS if shutil.which(t, path=CLEAN_ENV["PATH"]) is None]
    if missing:
        raise LabError(f"missing tools: {', '.join(missing)} (./lab setup installs them)")
    if not os.path.exists("/dev/net/tun"):
        raise LabError("/dev/net/tun is missing: wireguard-go needs it")


# --------------------------------------------------------------------------- rootfs
def cmd_rootfs(args) -> int:
    require_root()
    check_tools()
    path = rootfs.ensure_rootfs(rebuild=args.rebuild)
    log(f"root file system: {path}")
    return 0


def cmd_images(args) -> int:
    """The root file system of the containers and the guest image of the kernel tier."""
    require_root()
    check_tools()
    t0 = time.monotonic()
    log(f"root file system: {rootfs.ensure_rootfs()}")
    log(f"guest image: {guestimage.ensure_image()} ({time.monotonic() - t0:.0f}s)")
    return 0


# --------------------------------------------------------------------------- test
# The whole suite runs as four pytest processes at once, on the 2 cores: the e2e tests
# mostly wait (containers boot, salt jobs travel, timers run out), so their modules are
# split over three processes, each with a lab of its own, and the unit and functional
# tiers fill the cores meanwhile. Modules sharing a deployment of examples/ stay in one
# process (tests/e2e/conftest.py's E2E_ORDER). Measured on 2 cores: see docs/lab.md.
E2E = "tests/e2e/test_{}.py"
#: The second e2e process: the modules on examples/mesh and examples/laptop-server.
E2E_SHARED = tuple(
    E2E.format(m)
    for m in ("live_changes", "audit", "lifecycle", "verify", "hardening", "topologies", "psk")
)
#: The kernel tier (QEMU guests, issue 25) from the start: its guests boot (emulated,
#: CPU-bound) while the other tiers wait on their containers. It is the longest on CI's
#: 2 cores, so it runs alone in its process.
KERNEL = E2E.format("kernel")
TIERS = (
    ("e2e", ("tests/e2e", *(f"--ignore={p}" for p in (*E2E_SHARED, KERNEL)))),
    ("e2e on shared deployments", E2E_SHARED),
    ("unit and functional", ("tests/unit", "tests/functional")),
    ("kernel (QEMU guests)", (KERNEL,)),
)
NO_TESTS = 5  # pytest's exit code when it collected nothing


def named_paths(pytest_args) -> list[str]:
    """The test paths the arguments name (`./lab test tests/e2e/test_audit.py` runs that
    file alone, not the whole suite besides)."""
    return [a for a in pytest_args if not a.startswith("-") and (REPO / a.split("::")[0]).exists()]


def cmd_test(args) -> int:
    require_root()
    check_tools()
    t0 = time.monotonic()
    rootfs.ensure_rootfs()
    guestimage.ensure_image()
    log(
        f"root file system and guest image ready after {time.monotonic() - t0:.0f}s; running pytest"
    )
    pytest = [sys.executable, "-m", "pytest"]
    if named_paths(args.pytest_args):
        rc = _wait_all([subprocess.Popen([*pytest, *args.pytest_args], cwd=REPO)])[0]
        return 1 if _nothing_collected([rc]) else rc
    return _run_tiers(pytest, args.pytest_args)


def _run_tiers(pytest, pytest_args) -> int:
    """Every tier at once; the first streams, the others print when it is done."""
    with tempfile.TemporaryDirectory(prefix="wgflab-test-") as tmp:
        logs = [Path(tmp, f"tier{i}.log") for i in range(len(TIERS))]
        started = time.monotonic()
        children = []
        for i, (_, paths) in enumerate(TIERS):
            out = None if i == 0 else logs[i].open("w")
            children.append(
                subprocess.Popen(
                    [*pytest, *paths, *pytest_args],
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                )
            )
        codes = _wait_all(children)
        took = time.monotonic() - started
        for (name, _), path in zip(TIERS[1:], logs[1:], strict=True):
            print(f"\n{'=' * 30} {name} tier {'=' * 30}", flush=True)
            sys.stdout.write(path.read_text(errors="replace"))
    for (name, _), rc in zip(TIERS, codes, strict=True):
        print(f"lab: {name} tier: {'passed' if rc == 0 else f'exit code {rc}'}")
    print(f"lab: the whole suite took {took // 60:.0f} min {took % 60:.0f} s")
    if _nothing_collected(codes):
        return 1
    return next((rc for rc in codes if rc not in (0, NO_TESTS)), 0)


def _nothing_collected(codes) -> bool:
    if all(rc == NO_TESTS for rc in codes):
        print("lab: pytest collected no tests: that is a failure here", file=sys.stderr)
        return True
    return False


def _wait_all(children) -> list[int]:
    """Wait for every child; SIGTERM and SIGHUP are passed on. Ctrl-C reaches them
    through the terminal's process group: wait for their tear-down."""

    def forward(signum, _frame):
        for child in children:
            child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    signal.signal(signal.SIGINT, lambda *_: None)
    return [child.wait() for child in children]


# --------------------------------------------------------------------------- demo
DEMO = "two-sites-behind-nat"


def _age(ts: int | None) -> str:
    if not ts:
        return "never"
    return f"{max(0, int(time.time()) - int(ts))}s ago"


def _size(n) -> str:
    n = int(n or 0)
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n}{unit}"
        n //= 1024
    return f"{n}GiB"


def print_show(show: dict, pillar: dict) -> None:
    """A brief table of `salt '*' wireguard.show`."""
    names = {}  # public key -> peer name in pillar
    for data in pillar.values():
        for iface in (data.get("wireguard", {}).get("interfaces") or {}).values():
            for pname, peer in (iface.get("peers") or {}).items():
                if peer.get("public_key"):
                    names[peer["public_key"]] = pname
    rows = [("minion", "iface", "port", "peer", "endpoint", "allowed ips", "handshake", "rx/tx")]
    for mid in sorted(show):
        ifaces = show[mid]
        if not isinstance(ifaces, dict):
            rows.append((mid, "ERROR", str(ifaces)[:60], "", "", "", "", ""))
            continue
        for ifname, iface in sorted(ifaces.items()):
            peers = iface.get("peers") or {}
            port = str(iface.get("listen_port") or "")
            if not peers:
                rows.append((mid, ifname, port, "(no peers)", "", "", "", ""))
            for key, p in sorted(peers.items()):
                rows.append(
                    (
                        mid,
                        ifname,
                        port,
                        names.get(key, key[:10] + "..."),
                        str(p.get("endpoint") or "(none)"),
                        ",".join(p.get("allowed_ips") or []),
                        _age(p.get("latest_handshake")),
                        f"{_size(p.get('rx_bytes'))}/{_size(p.get('tx_bytes'))}",
                    )
                )
                mid = ifname = port = ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def ping_matrix(dep, targets: dict[str, str]) -> list[list[bool]]:
    """Ping every target address from every host (in parallel); print and return."""
    srcs = list(targets)
    # first contact may need a handshake: one ping with patience per pair, in parallel
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futs = {
            (s, d): pool.submit(dep[s].ping_until, targets[d], 10)
            for s in srcs
            for d in srcs
            if s != d
        }
        ok = {k: f.result().received > 0 for k, f in futs.items()}
    width = max(len(s) for s in srcs)
    col = {d: max(len(d), len(targets[d])) for d in srcs}
    print(" " * (width + 4) + " ".join(d.rjust(col[d]) for d in srcs))
    print(" " * (width + 4) + " ".join(targets[d].rjust(col[d]) for d in srcs))
    matrix = []
    for s in srcs:
        row = [True if s == d else ok[(s, d)] for d in srcs]
        cells = ["-" if s == d else ("yes" if ok[(s, d)] else "NO") for d in srcs]
        matrix.append(row)
        print(
            f"  {s.ljust(width)}  "
            + " ".join(c.rjust(col[d]) for c, d in zip(cells, srcs, strict=True))
        )
    return matrix


def cmd_demo(args) -> int:
    from .lab import Lab
    from .saltmaster import summarize
    from .topologies import Deployment

    require_root()
    check_tools()
    t0 = time.monotonic()
    log("checking the cached container root file system (the first build takes ~2 min)")
    rootfs.ensure_rootfs()
    lab = Lab("demo")
    lab.start()
    keep = False
    try:
        log(
            f"wiring up '{DEMO}' from examples/{DEMO}: a hub on the simulated internet, two "
            "sites each behind its own NAT router, a LAN client behind each site"
        )
        dep = Deployment(lab, DEMO).build()
        master = lab.master
        log(f"writing each minion's pillar from examples/{DEMO}/ into the master's pillar_roots")
        log(f"running on the master: salt -L {','.join(dep.minions)} state.apply wireguard")
        t1 = time.monotonic()
        ret = dep.apply()  # fails naming every failed state
        for mid, s in sorted(summarize(ret).items()):
            log(f"  {mid}: {s['total']} states, {s['changed']} changed")
        log(f"state.apply took {time.monotonic() - t1:.1f}s")

        log("pinging across the tunnels")
        targets = {
            "hub": "10.30.0.1",
            "site-a": "10.30.0.2",
            "site-b": "10.30.0.3",
            "client-a": "192.168.1.10",
            "client-b": "192.168.2.10",
        }
        print("\nping matrix (row pings column's address; yes = replies came back):")
        matrix = ping_matrix(dep, targets)

        log("running on the master: salt '*' wireguard.show")
        show = master.salt("*", "wireguard.show")
        print("\nsalt '*' wireguard.show (summary):")
        print_show(show, dep.pillar)
        print()
        all_ok = all(all(r) for r in matrix)
        log(
            (
                "every host reaches every other over the tunnels"
                if all_ok
                else "some pairs do NOT reach each other (see the matrix)"
            )
            + f"; demo took {time.monotonic() - t0:.0f}s"
        )
        if args.keep:
            keep = True
            print_keep_instructions(lab)
        return 0 if all_ok else 1
    finally:
        if keep:
            lab.detach()
        else:
            lab.close()


def print_keep_instructions(lab) -> None:
    from .host import Container

    print("\nThe lab keeps running. Get in with:")
    for h in lab.hosts.values():
        if isinstance(h, Container):
            print(f"  {h.name:10s} nsenter -t {h.pid1} -a bash      # container")
    for h in lab.hosts.values():
        if not isinstance(h, Container) and not h.name.startswith("sw-"):
            print(f"  {h.name:10s} ip netns exec {h.netns} bash")
    print(f"  salt on the master: nsenter -t {lab.master.pid1} -a salt '*' wireguard.show")
    print("Remove it with: ./lab clean")


# --------------------------------------------------------------------------- clean
def cmd_clean(args) -> int:
    from .cleanup import clean

    require_root()
    clean(force=args.force)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./lab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rootfs", help="build (or reuse) the cached root file system")
    p.add_argument("--rebuild", action="store_true", help="build it again even if cached")
    p.set_defaults(func=cmd_rootfs)
    p = sub.add_parser("images", help="build (or reuse) the root file system and guest image")
    p.set_defaults(func=cmd_images)
    p = sub.add_parser("test", help="ensure the root file system, run pytest on tests/")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("demo", help=f"apply examples/{DEMO} through the master")
    p.add_argument("--keep", action="store_true", help="leave the lab running")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("clean", help="remove what a crashed (or --keep) lab run left behind")
    p.add_argument(
        "--force", action="store_true", help="also remove labs whose process is still running"
    )
    p.set_defaults(func=cmd_clean)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["test"]:
        # everything after `test` belongs to pytest, options included
        args = argparse.Namespace(func=cmd_test, pytest_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"lab: interrupted ({exc or 'Ctrl-C'}); the lab was torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
