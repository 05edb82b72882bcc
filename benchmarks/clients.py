"""Benchmark: an interface with 1,000 clients on a real wireguard-go interface.

Run as root from the repository: ``.venv/bin/python -m benchmarks.clients``.
Goals:
  1,000 clients allocated, keyed, written into the conf and set live   < 5 s
      (Salt's reported duration of wireguard.clients, wireguard.config and
      wireguard.client_peers, through salt-call)
  the same pillar applied again: nothing to change                       < 1 s
  one client's export (config and PNG QR code written to a directory)    < 1 s
      (the whole wireguard.client_config call, in a loaded minion)
"""

import json
import os
import statistics
import sys
import tempfile
import time

import yaml
from saltfactories.utils.functional import Loaders

from benchmarks.common import minion_opts, netns_interface

CLIENTS = 1000


def pillar(ifname, config_dir):
    clients = {f"c{i:04d}": ({"preshared_key": True} if i % 10 == 0 else {})
               for i in range(CLIENTS)}
    return {"wireguard": {"lookup": {"config_dir": config_dir}, "interfaces": {ifname: {
        "address": "10.99.0.1/16", "listen_port": 51820, "endpoint": "198.18.0.1",
        "client_defaults": {"dns": ["10.99.0.1"], "persistent_keepalive": 25},
        "clients": clients}}}}


def sls(ifname, config_dir):
    def state(fun, require=None):
        args = [{"name": ifname}, {"config_dir": config_dir}]
        return {f"wireguard.{fun}": args + ([{"require": [{"wireguard": require}]}]
                                            if require else [])}
    return {"key": state("private_key"), "clients": state("clients", "key"),
            "conf": state("config", "clients"), "live": state("client_peers", "conf")}


def apply(ns, root):
    proc = ns.run([os.path.join(os.path.dirname(sys.executable), "salt-call"), "-c", root,
                   "--local", "--out=json", "state.apply", "bench"], check=False)
    result = json.loads(proc.stdout)["local"]
    assert all(r["result"] for r in result.values()), proc.stdout[:2000]
    duration = sum(r["duration"] for r in result.values()) / 1000
    changed = sum(1 for r in result.values() if r["changes"])
    if os.environ.get("BENCH_DETAIL"):
        print({sid.split("_|-")[1]: round(r["duration"]) for sid, r in result.items()})
    return duration, changed


def main():
    with tempfile.TemporaryDirectory() as root, netns_interface("bclients") as (ns, ifname):
        config_dir = f"{root}/wireguard"
        opts = minion_opts(root)
        opts["pillar_roots"] = {"base": [f"{root}/pillar"]}
        for sub in ("srv", "pillar"):
            os.makedirs(f"{root}/{sub}")
        with open(f"{root}/minion", "w") as handle:
            yaml.safe_dump({k: opts[k] for k in (
                "id", "file_client", "cachedir", "pki_dir", "sock_dir", "log_file",
                "module_dirs", "states_dirs", "utils_dirs", "file_roots",
                "pillar_roots")}, handle)
        with open(f"{root}/pillar/top.sls", "w") as handle:
            handle.write("base:\n  '*':\n    - data\n")
        with open(f"{root}/pillar/data.sls", "w") as handle:
            json.dump(pillar(ifname, config_dir), handle)
        with open(f"{root}/srv/bench.sls", "w") as handle:
            yaml.safe_dump(sls(ifname, config_dir), handle)
        ok = True
        print(f"{CLIENTS} clients of one interface on a real wireguard-go interface "
              "(salt-call --local):")
        for label, goal in (("1,000 clients allocated, keyed, in the conf, live", 5.0),
                            ("applied again, nothing to change", 1.0)):
            duration, changed = apply(ns, root)
            ok &= duration < goal
            print(f"  {label:52s} {duration:6.2f} s  ({changed} state(s) changed; "
                  f"goal < {goal:.0f} s)")
        live = ns.run(["wg", "show", ifname, "peers"]).stdout.split()
        assert len(live) == CLIENTS, len(live)
        with ns.entered():
            loaders = Loaders(opts)
            loaders.refresh_pillar()
            times = []
            for i in range(5):
                t0 = time.perf_counter()
                paths = loaders.modules.wireguard.client_config(
                    ifname, f"c{i * 100:04d}", qr="png", path=f"{root}/export",
                    config_dir=config_dir)
                times.append(time.perf_counter() - t0)
            assert os.path.getsize(paths["qr"]) > 0
        export = statistics.median(times)
        ok &= export < 1.0
        print(f"  {'one client exported (config + PNG QR code)':52s} {export:6.2f} s  "
              f"(median of 5; goal < 1 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
