"""Benchmark: 1,000 wireguard.peer states on a real interface, through salt-call.

Run as root from the repository: ``.venv/bin/python -m benchmarks.peer_states``.
Goals (Salt's reported duration, summed over the peer states):
  1,000 peers added to an empty interface   < 5 s
  1,000 peers declared, nothing to change   < 1 s
  the same with one peer changed            < 1 s
"""

import json
import os
import sys
import tempfile

import yaml

from benchmarks.common import netns_interface
from tests.support.minion import REPO, minion_opts

sys.path.insert(0, str(REPO / "_utils"))
import wgf_keys  # the formula's utils, not an installed package

PEERS = 1000


def sls(keys, changed=None):
    states = {}
    for i, key in enumerate(keys):
        ips = [f"10.{100 + i // 256}.{i % 256}.1/32"]
        if i == changed:
            ips.append("10.200.0.0/24")
        states[f"peer-{i}"] = {"wireguard.peer": [
            {"name": key}, {"interface": "IFNAME"}, {"allowed_ips": ips},
            {"endpoint": f"198.18.{i // 250}.{i % 250 + 1}:51820"},
            {"persistent_keepalive": 25}]}
    return states


def apply(ns, root, ifname, states):
    path = os.path.join(root, "srv", "bench.sls")
    with open(path, "w") as handle:
        handle.write(yaml.safe_dump(states).replace("IFNAME", ifname))
    proc = ns.run([os.path.join(os.path.dirname(sys.executable), "salt-call"), "-c", root,
                   "--local", "--out=json", "state.apply", "bench"], check=False)
    result = json.loads(proc.stdout)["local"]
    assert all(r["result"] for r in result.values()), proc.stdout[:2000]
    duration = sum(r["duration"] for r in result.values()) / 1000
    changed = sum(1 for r in result.values() if r["changes"])
    return duration, changed


def main():
    keys = [wgf_keys.pubkey(wgf_keys.genkey()) for _ in range(PEERS)]
    with tempfile.TemporaryDirectory() as root, netns_interface("bpeers") as (ns, ifname):
        opts = minion_opts(root, "bench")
        os.makedirs(f"{root}/srv")
        with open(f"{root}/minion", "w") as handle:
            yaml.safe_dump({k: opts[k] for k in (
                "id", "file_client", "cachedir", "pki_dir", "sock_dir", "log_file",
                "module_dirs", "states_dirs", "utils_dirs", "file_roots")}, handle)
        rows = [
            ("1,000 peers added to an empty interface", sls(keys), 5.0),
            ("1,000 peers declared, nothing to change", sls(keys), 1.0),
            ("the same with one peer changed", sls(keys, changed=500), 1.0),
        ]
        ok = True
        print(f"{PEERS} wireguard.peer states on a real wireguard-go interface "
              "(salt-call --local):")
        for label, states, goal in rows:
            duration, changed = apply(ns, root, ifname, states)
            ok &= duration < goal
            print(f"  {label:42s} {duration:6.2f} s  ({changed} changed; goal < {goal:.0f} s)")
        live = ns.run(["wg", "show", ifname, "peers"]).stdout.split()
        assert len(live) == PEERS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
