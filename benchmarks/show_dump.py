"""Benchmark: wireguard.show on 10,000 peers (goal: the whole call under 50 ms).

Run as root from the repository: ``.venv/bin/python -m benchmarks.show_dump``.
Builds a real wireguard-go interface with 10,000 peers inside a network namespace and
times, through the Salt loader:

- the whole ``wireguard.show`` call with ``wg`` replaced by a ``cat`` of that
  interface's dump: everything the formula's code costs, command included (the goal;
  a kernel interface answers ``wg show dump`` about as fast as ``cat``);
- the same call against the real wireguard-go interface, whose userspace API alone
  takes most of the time;
- the parser (``wgf_dump.parse``) alone on the dump text.
"""

import os
import statistics
import sys
import tempfile
import time

from benchmarks.common import loaders_in, netns_interface
from tests.support.minion import REPO

sys.path.insert(0, str(REPO / "_utils"))
import wgf_dump  # the formula's utils, not an installed package

PEERS = 10_000
ROUNDS = 20


def main():
    with netns_interface("bshow") as (ns, ifname), loaders_in(ns) as loaders:
        wg = loaders.modules.wireguard
        peers = [
            {
                "public_key": wg.pubkey(wg.genkey()),
                "endpoint": f"198.18.{i // 250}.{i % 250 + 1}:51820",
                "allowed_ips": [f"10.{i // 65536 + 100}.{i // 256 % 256}.{i % 256}/32"],
                "persistent_keepalive": 25,
            }
            for i in range(PEERS)
        ]
        wg.apply_peers(ifname, peers=peers)
        dump = ns.run(["wg", "show", ifname, "dump"]).stdout
        assert len(dump.splitlines()) == PEERS + 1
        parse = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            wgf_dump.parse(dump, ifname)
            parse.append(time.perf_counter() - start)
        real = timed(lambda: wg.show(ifname), ifname)
        with tempfile.TemporaryDirectory() as shim:
            with open(f"{shim}/dump", "w") as handle:
                handle.write(dump)
            with open(f"{shim}/wg", "w") as handle:
                handle.write(f"#!/bin/sh\nexec cat {shim}/dump\n")
            os.chmod(f"{shim}/wg", 0o755)
            path = os.environ["PATH"]
            os.environ["PATH"] = f"{shim}:{path}"
            try:
                full = timed(lambda: wg.show(ifname), ifname)
            finally:
                os.environ["PATH"] = path
    print(f"wireguard.show, {PEERS} peers on a real wireguard-go interface:")
    print(
        f"  {'parse the dump:':38s} median {statistics.median(parse) * 1000:6.1f} ms "
        f"(min {min(parse) * 1000:.1f}, max {max(parse) * 1000:.1f}) over {ROUNDS} rounds"
    )
    for label, times in (
        ("wireguard.show, wg = cat of the dump", full),
        ("wireguard.show on wireguard-go", real),
    ):
        print(
            f"  {label + ':':38s} median {statistics.median(times) * 1000:6.1f} ms "
            f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}) over {ROUNDS} rounds"
        )
    return 0 if statistics.median(full) < 0.05 else 1


def timed(call, ifname):
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        parsed = call()
        times.append(time.perf_counter() - start)
        assert len(parsed[ifname]["peers"]) == PEERS
    return times


if __name__ == "__main__":
    raise SystemExit(main())
