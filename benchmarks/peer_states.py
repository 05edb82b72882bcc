"""Benchmark: 1,000 wireguard.peer states on a real interface, through salt-call.

Run as root from the repository: ``.venv/bin/python -m benchmarks.peer_states``.
Goals (Salt's reported duration, summed over the peer states):
  1,000 peers added to an empty interface   < 5 s
  1,000 peers declared, nothing to change   < 1 s
  the same with one peer changed            < 1 s
"""

import sys
import tempfile

from benchmarks.common import apply_sls, netns_interface, salt_call_config
from tests.support.minion import REPO

sys.path.insert(0, str(REPO / "_utils"))
import wgf_keys  # the formula's utils, not an installed package

PEERS = 1000


def sls(keys, ifname, changed=None):
    states = {}
    for i, key in enumerate(keys):
        ips = [f"10.{100 + i // 256}.{i % 256}.1/32"]
        if i == changed:
            ips.append("10.200.0.0/24")
        states[f"peer-{i}"] = {
            "wireguard.peer": [
                {"name": key},
                {"interface": ifname},
                {"allowed_ips": ips},
                {"endpoint": f"198.18.{i // 250}.{i % 250 + 1}:51820"},
                {"persistent_keepalive": 25},
            ]
        }
    return states


def main():
    keys = [wgf_keys.pubkey(wgf_keys.genkey()) for _ in range(PEERS)]
    with tempfile.TemporaryDirectory() as root, netns_interface("bpeers") as (ns, ifname):
        salt_call_config(root)
        rows = [
            ("1,000 peers added to an empty interface", sls(keys, ifname), 5.0),
            ("1,000 peers declared, nothing to change", sls(keys, ifname), 1.0),
            ("the same with one peer changed", sls(keys, ifname, changed=500), 1.0),
        ]
        ok = True
        print(
            f"{PEERS} wireguard.peer states on a real wireguard-go interface (salt-call --local):"
        )
        for label, states, goal in rows:
            duration, changed = apply_sls(ns, root, states)
            ok &= duration < goal
            print(f"  {label:42s} {duration:6.2f} s  ({changed} changed; goal < {goal:.0f} s)")
        live = ns.run(["wg", "show", ifname, "peers"]).stdout.split()
        assert len(live) == PEERS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
