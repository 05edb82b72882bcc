"""Benchmark: wireguard.show on 10,000 peers (goal: parse in under 50 ms).

Run as root from the repository: ``.venv/bin/python -m benchmarks.show_dump``.
Builds a real wireguard-go interface with 10,000 peers inside a network namespace,
times ``wg show dump`` plus parsing (what ``wireguard.show`` does) and the parser
alone on that same dump text.
"""

import statistics
import time

from benchmarks.common import loaders_in, netns_interface
from tests.unit.conftest import load

PEERS = 10_000
ROUNDS = 20


def main():
    with netns_interface("bshow") as (ns, ifname), loaders_in(ns) as loaders:
        wg = loaders.modules.wireguard
        peers = [{"public_key": wg.pubkey(wg.genkey()),
                  "endpoint": f"198.18.{i // 250}.{i % 250 + 1}:51820",
                  "allowed_ips": [f"10.{i // 65536 + 100}.{i // 256 % 256}.{i % 256}/32"],
                  "persistent_keepalive": 25}
                 for i in range(PEERS)]
        wg.apply_peers(ifname, peers=peers)
        dump = ns.run(["wg", "show", ifname, "dump"]).stdout
        assert len(dump.splitlines()) == PEERS + 1
        parser = load("_modules/wireguard.py", "wireguard_bench")._parse_dump
        parse = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            parser(dump, ifname)
            parse.append(time.perf_counter() - start)
        full = []
        for _ in range(5):
            start = time.perf_counter()
            parsed = wg.show(ifname)
            full.append(time.perf_counter() - start)
        assert len(parsed[ifname]["peers"]) == PEERS
    print(f"wireguard.show, {PEERS} peers on a real wireguard-go interface:")
    print(f"  parse the dump:           median {statistics.median(parse) * 1000:6.1f} ms "
          f"(min {min(parse) * 1000:.1f}, max {max(parse) * 1000:.1f}) over {ROUNDS} rounds")
    print(f"  wg show dump + parse:     median {statistics.median(full) * 1000:6.1f} ms")
    return 0 if statistics.median(parse) < 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
