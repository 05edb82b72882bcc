"""Keys never reach a command line: wg reads preshared keys from 0600 files.

How ``wireguard.apply_peers`` batches its ``wg set`` calls is tested on a real
interface in tests/functional/test_module_live.py, and that no key shows in any
process's argv during a real apply in tests/e2e/test_hardening.py.
"""

import os
import stat

import pytest

import wgf_files
import wgf_schema
from tests.unit.conftest import load

PEER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="


@pytest.fixture(scope="module")
def module():
    """The execution module as a plain module, for its dunder-free ``_peer_args``."""
    return load("_modules/wireguard.py", "wireguard_module_under_test")


def test_preshared_key_goes_through_a_private_file(module):
    change = wgf_schema.normalise_peer_change(
        "wg0", {"public_key": PEER, "allowed_ips": ["10.0.0.2/32"], "preshared_key": PSK}
    )
    with wgf_files.key_files() as put_key:
        argv = module._peer_args(change, put_key)
        assert argv[:4] == ["peer", PEER, "allowed-ips", "10.0.0.2/32"]
        assert PSK not in " ".join(argv)
        path = argv[argv.index("preshared-key") + 1]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        with open(path) as handle:
            assert handle.read().strip() == PSK
    assert not os.path.exists(os.path.dirname(path)), "removed once wg has read it"


def test_an_empty_preshared_key_removes_it_without_a_file(module):
    change = wgf_schema.normalise_peer_change("wg0", {"public_key": PEER, "preshared_key": ""})
    written = []
    assert module._peer_args(change, written.append) == ["peer", PEER, "preshared-key", "/dev/null"]
    assert written == []
