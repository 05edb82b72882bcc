"""Entry point of ./lab: python -m tests.lab.cli {test,demo,clean,rootfs} ARGS."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys
import time

from . import rootfs
from .util import CLEAN_ENV, REPO, LabError, log, require_root

# dot (Graphviz): the runner's SVG test runs on the host too, and must not be skipped
NEEDED_TOOLS = ("systemd-nspawn", "debootstrap", "nsenter", "ip", "iptables", "wg", "dot")


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


# --------------------------------------------------------------------------- test
def pytest_paths(pytest_args) -> list[str]:
    """`tests` unless the arguments name tests of their own (`./lab test
    tests/e2e/test_audit.py` runs that file alone, not the whole suite besides)."""
    named = [a for a in pytest_args if not a.startswith("-") and (REPO / a.split("::")[0]).exists()]
    return [] if named else ["tests"]


def cmd_test(args) -> int:
    require_root()
    check_tools()
    t0 = time.monotonic()
    rootfs.ensure_rootfs()
    log(f"root file system ready after {time.monotonic() - t0:.0f}s; running pytest")
    argv = [sys.executable, "-m", "pytest", *pytest_paths(args.pytest_args), *args.pytest_args]
    child = subprocess.Popen(argv, cwd=REPO)

    def forward(signum, _frame):
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    # Ctrl-C reaches pytest through the terminal's process group; wait for its tear-down
    signal.signal(signal.SIGINT, lambda *_: None)
    rc = child.wait()
    if rc == 5:
        print("lab: pytest collected no tests: that is a failure here", file=sys.stderr)
        return 1
    return rc


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
