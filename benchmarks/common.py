"""Shared set-up for the benchmarks: a wireguard-go interface in a throw-away namespace,
and Salt loaders (or salt-call) running the formula's modules inside it."""

import contextlib
import json
import os
import subprocess
import tempfile
import uuid

import yaml
from saltfactories.utils.functional import Loaders

from tests.support.minion import SALT_CALL, config_file, minion_opts
from tests.support.netns import Netns


@contextlib.contextmanager
def netns_interface(label):
    """Yield ``(namespace, interface name)``; everything is removed afterwards."""
    ns = Netns(label).create()
    ifname = f"wgb{uuid.uuid4().hex[:6]}"
    try:
        key = subprocess.run(
            ["wg", "genkey"], capture_output=True, text=True, check=True
        ).stdout.strip()
        ns.wireguard(ifname, key, "10.99.0.1/16", 51820)
        yield ns, ifname
    finally:
        ns.delete()


@contextlib.contextmanager
def loaders_in(ns):
    with tempfile.TemporaryDirectory() as root, ns.entered():
        yield Loaders(minion_opts(root, "bench"))


def salt_call_config(root, pillar=None):
    """A masterless ``salt-call -c root`` configuration: the checkout's modules, state
    files in ``root/srv``, and ``pillar`` (if any) as its whole pillar. Its opts."""
    opts = minion_opts(root, "bench")
    opts["pillar_roots"] = {"base": [f"{root}/pillar"]}
    for sub in ("srv", "pillar"):
        os.makedirs(f"{root}/{sub}", exist_ok=True)
    with open(f"{root}/minion", "w") as handle:
        yaml.safe_dump(config_file(opts), handle)
    with open(f"{root}/pillar/top.sls", "w") as handle:
        handle.write("base:\n  '*':\n    - data\n")
    with open(f"{root}/pillar/data.sls", "w") as handle:
        json.dump(pillar or {}, handle)
    return opts


def apply_sls(ns, root, states):
    """``salt-call --local state.apply`` of ``states`` inside ``ns``: (Salt's reported
    duration summed, in seconds; how many states changed something)."""
    with open(f"{root}/srv/bench.sls", "w") as handle:
        yaml.safe_dump(states, handle)
    proc = ns.run(
        [SALT_CALL, "-c", root, "--local", "--out=json", "state.apply", "bench"], check=False
    )
    result = json.loads(proc.stdout)["local"]
    assert all(r["result"] for r in result.values()), proc.stdout[:2000]
    if os.environ.get("BENCH_DETAIL"):
        print({sid.split("_|-")[1]: round(r["duration"]) for sid, r in result.items()})
    return (
        sum(r["duration"] for r in result.values()) / 1000,
        sum(1 for r in result.values() if r["changes"]),
    )
