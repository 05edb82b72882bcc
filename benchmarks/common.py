"""Shared set-up for the benchmarks: a wireguard-go interface in a throw-away namespace,
and Salt loaders (or salt-call) running the formula's modules inside it."""

import contextlib
import pathlib
import subprocess
import tempfile
import uuid

import salt.config
from saltfactories.utils.functional import Loaders

from tests.support.netns import Netns

REPO = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def netns_interface(label):
    """Yield ``(namespace, interface name)``; everything is removed afterwards."""
    ns = Netns(label)
    ifname = f"wgb{uuid.uuid4().hex[:6]}"
    try:
        key = subprocess.run(["wg", "genkey"], capture_output=True, text=True,
                             check=True).stdout.strip()
        ns.wireguard(ifname, key, "10.99.0.1/16", 51820)
        yield ns, ifname
    finally:
        ns.close()


def minion_opts(root):
    opts = salt.config.minion_config(None)
    opts.update(id="bench", file_client="local", cachedir=f"{root}/cache",
                pki_dir=f"{root}/pki", sock_dir=f"{root}/sock", log_file=f"{root}/log",
                module_dirs=[str(REPO / "_modules")], states_dirs=[str(REPO / "_states")],
                utils_dirs=[str(REPO / "_utils")],
                file_roots={"base": [f"{root}/srv"]}, pillar={})
    return opts


@contextlib.contextmanager
def loaders_in(ns):
    with tempfile.TemporaryDirectory() as root, ns.entered():
        yield Loaders(minion_opts(root))
