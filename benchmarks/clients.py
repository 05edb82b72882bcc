"""Benchmark: an interface with 1,000 clients on a real wireguard-go interface.

Run as root from the repository: ``.venv/bin/python -m benchmarks.clients``.
Goals:
  1,000 clients allocated, keyed, written into the conf and set live   < 5 s
      (Salt's reported duration of wireguard.clients, wireguard.config and
      wireguard.client_peers, through salt-call)
  the same pillar applied again: nothing to change                       < 1 s
  one client's export (config and PNG QR code written to a directory)    < 1 s
      (the whole wireguard.client_config call, in a loaded minion)

``--lifecycle`` (issue 23's speed goals) runs instead, through the whole
``state.apply wireguard`` in a lab container (``benchmarks/hub_scale.py``): 1,000 clients,
100 with limits and 100 with expiries:
  a no-op apply                                                            <= 1 s
  the firewall table replaced in one ``nft -f``                            < 100 ms
"""

import os
import statistics
import sys
import tempfile
import time

from saltfactories.utils.functional import Loaders

from benchmarks.common import apply_sls, netns_interface, salt_call_config

CLIENTS = 1000


def pillar(ifname, config_dir):
    clients = {
        f"c{i:04d}": ({"preshared_key": True} if i % 10 == 0 else {}) for i in range(CLIENTS)
    }
    return {
        "wireguard": {
            "lookup": {"config_dir": config_dir},
            "interfaces": {
                ifname: {
                    "address": "10.99.0.1/16",
                    "listen_port": 51820,
                    "endpoint": "198.18.0.1",
                    "client_defaults": {"dns": ["10.99.0.1"], "persistent_keepalive": 25},
                    "clients": clients,
                }
            },
        }
    }


def sls(ifname, config_dir):
    def state(fun, require=None):
        args = [{"name": ifname}, {"config_dir": config_dir}]
        return {
            f"wireguard.{fun}": args + ([{"require": [{"wireguard": require}]}] if require else [])
        }

    return {
        "key": state("private_key"),
        "clients": state("clients", "key"),
        "conf": state("config", "clients"),
        "live": state("client_peers", "conf"),
    }


def main(argv=None):
    if "--lifecycle" in (sys.argv[1:] if argv is None else argv):
        from benchmarks import hub_scale  # a lab container: systemd, nftables, timers

        return hub_scale.main(["--only", "lifecycle"])
    with tempfile.TemporaryDirectory() as root, netns_interface("bclients") as (ns, ifname):
        config_dir = f"{root}/wireguard"
        opts = salt_call_config(root, pillar(ifname, config_dir))
        states = sls(ifname, config_dir)
        ok = True
        print(
            f"{CLIENTS} clients of one interface on a real wireguard-go interface "
            "(salt-call --local):"
        )
        for label, goal in (
            ("1,000 clients allocated, keyed, in the conf, live", 5.0),
            ("applied again, nothing to change", 1.0),
        ):
            duration, changed = apply_sls(ns, root, states)
            ok &= duration < goal
            print(
                f"  {label:52s} {duration:6.2f} s  ({changed} state(s) changed; "
                f"goal < {goal:.0f} s)"
            )
        live = ns.run(["wg", "show", ifname, "peers"]).stdout.split()
        assert len(live) == CLIENTS, len(live)
        with ns.entered():
            loaders = Loaders(opts)
            loaders.refresh_pillar()
            times = []
            for i in range(5):
                t0 = time.perf_counter()
                paths = loaders.modules.wireguard.client_config(
                    ifname,
                    f"c{i * 100:04d}",
                    qr="png",
                    path=f"{root}/export",
                    config_dir=config_dir,
                )
                times.append(time.perf_counter() - t0)
            assert os.path.getsize(paths["qr"]) > 0
        export = statistics.median(times)
        ok &= export < 1.0
        print(
            f"  {'one client exported (config + PNG QR code)':52s} {export:6.2f} s  "
            f"(median of 5; goal < 1 s)"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
