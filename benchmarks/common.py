"""Shared set-up for the benchmarks: a wireguard-go interface in a throw-away namespace,
and Salt loaders (or salt-call) running the formula's modules inside it."""

import contextlib
import subprocess
import tempfile
import uuid

from saltfactories.utils.functional import Loaders

from tests.support.minion import minion_opts
from tests.support.netns import Netns


@contextlib.contextmanager
def netns_interface(label):
    """Yield ``(namespace, interface name)``; everything is removed afterwards."""
    ns = Netns(label).create()
    ifname = f"wgb{uuid.uuid4().hex[:6]}"
    try:
        key = subprocess.run(["wg", "genkey"], capture_output=True, text=True,
                             check=True).stdout.strip()
        ns.wireguard(ifname, key, "10.99.0.1/16", 51820)
        yield ns, ifname
    finally:
        ns.delete()


@contextlib.contextmanager
def loaders_in(ns):
    with tempfile.TemporaryDirectory() as root, ns.entered():
        yield Loaders(minion_opts(root, "bench"))
