"""Salt loaders (pytest-salt-factories) running the formula's modules for real, inside
a network namespace that holds real wireguard-go interfaces. The tests import the
formula's utils (``_utils/wgf_*.py``) by name, as the modules do."""

import json
import logging
import pathlib
import sys
import uuid

import pytest
from saltfactories.utils.functional import Loaders

from tests.support.confs import write_conf
from tests.support.minion import REPO
from tests.support.minion import minion_opts as make_minion_opts
from tests.support.netns import Netns

if str(REPO / "_utils") not in sys.path:
    sys.path.insert(0, str(REPO / "_utils"))


@pytest.fixture(scope="module")
def minion_opts(tmp_path_factory):
    return make_minion_opts(tmp_path_factory.mktemp("minion"))


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture
def write_pillar(loaders, minion_opts):
    """Give the minion this pillar, through real pillar_roots files."""
    root = pathlib.Path(minion_opts["pillar_roots"]["base"][0])

    def write(data):
        root.mkdir(parents=True, exist_ok=True)
        (root / "top.sls").write_text("base:\n  '*':\n    - data\n")
        (root / "data.sls").write_text(json.dumps(data))
        loaders.refresh_pillar()

    yield write
    write({})


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


class Pair:
    """Namespace ``local`` runs the code under test; ``remote`` holds peers to ping."""

    def __init__(self, modules):
        self.ifname = f"wgf{uuid.uuid4().hex[:6]}"
        self.local, self.remote = Netns("local"), Netns("remote")
        self.keys = {}
        try:
            self.local.create()
            self.remote.create()
            self.local.veth(self.remote, "eth0", "eth0", "198.18.10.1/24", "198.18.10.2/24")
            self.local_key = modules.wireguard.genkey()
            self.local.wireguard(self.ifname, self.local_key, "10.77.0.1/24", 51820)
        except BaseException:
            self.close()
            raise

    def add_remote(self, modules, n, route=False, psk=None):
        """A remote WireGuard interface 10.77.0.<n> that peers with ``local``; with
        ``route`` the remote namespace answers 10.77.0.1 through it (one remote only)."""
        key = modules.wireguard.genkey()
        name = f"{self.ifname[:11]}r{n}"
        self.remote.wireguard(name, key, f"10.77.0.{n}/32", 51820 + n)
        psk_args = ["preshared-key", "/dev/stdin"] if psk else []
        self.remote.run(
            [
                "wg",
                "set",
                name,
                "peer",
                modules.wireguard.pubkey(self.local_key),
                "allowed-ips",
                "10.77.0.1/32",
                "endpoint",
                "198.18.10.1:51820",
                *psk_args,
            ],
            input=psk,
        )
        if route:
            self.remote.run(["ip", "route", "add", "10.77.0.1/32", "dev", name])
        self.keys[n] = key
        return modules.wireguard.pubkey(key)

    def close(self):
        self.local.delete()
        self.remote.delete()


@pytest.fixture
def pair(loaders):
    pair = Pair(loaders.modules)
    try:
        with pair.local.entered():
            yield pair
    finally:
        pair.close()


def pytest_sessionfinish(session):
    # Salt's deferred start-up log handler flushes at exit into the stream pytest has
    # closed by then; its records were captured per test already, so drop the noise.
    logging.raiseExceptions = False


@pytest.fixture
def config_dir(tmp_path):
    directory = tmp_path / "wireguard"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def remote2(loaders, pair, config_dir):
    """A remote peer 10.77.0.2 that has handshaked with the local interface, and a
    config file that matches the live state."""
    wg = loaders.modules.wireguard
    key = pair.add_remote(loaders.modules, 2, route=True)
    wg.set_peer(pair.ifname, key, allowed_ips=["10.77.0.2/32"], endpoint="198.18.10.2:51822")
    assert pair.local.run(["ping", "-c", "1", "-W", "3", "10.77.0.2"], check=False).returncode == 0
    write_conf(config_dir, pair, {"r2": (key, ["10.77.0.2/32"], "198.18.10.2:51822")})
    return key


@pytest.fixture
def set_pillar(loaders, write_pillar):
    """Give the minion a pillar; the module loader is reloaded so its functions see it
    (the loader keeps the pillar it was created with), and again at the end."""

    def write(data):
        write_pillar(data)
        loaders.reload_all()

    yield write
    write_pillar({})
    loaders.reload_all()


def pillar_for(pair, key, remote, **settings):
    """The pillar of ``pair``'s local interface (key ``key``, one peer ``r2`` with the
    public key ``remote``), with ``settings`` on top."""
    iface = {
        "address": ["10.77.0.1/24"],
        "listen_port": 51820,
        "private_key": key,
        "peers": {
            "r2": {
                "public_key": remote,
                "allowed_ips": ["10.77.0.2/32"],
                "endpoint": "198.18.10.2:51822",
            }
        },
    }
    iface.update(settings)
    return {"wireguard": {"interfaces": {pair.ifname: iface}}}
