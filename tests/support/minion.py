"""The Salt minion options under which the functional tests and the benchmarks run the
formula's modules from this checkout."""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys

import salt.config

from tests.support.netns import Netns

REPO = pathlib.Path(__file__).resolve().parents[2]
SALT_CALL = str(pathlib.Path(sys.executable).parent / "salt-call")


def minion_opts(root, minion_id: str = "functional") -> dict:
    """A masterless minion loading the checkout's modules, states and utils; every
    directory it writes is under ``root``."""
    root = pathlib.Path(root)
    opts = salt.config.minion_config(None)
    opts.update(
        id=minion_id,
        file_client="local",
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        log_file=str(root / "minion.log"),
        module_dirs=[str(REPO / "_modules")],
        states_dirs=[str(REPO / "_states")],
        utils_dirs=[str(REPO / "_utils")],
        file_roots={"base": [str(root / "srv")]},
        pillar_roots={"base": [str(root / "pillar")]},
        pillar={},
        config_dir=str(root / "etc-wireguard"),
    )
    return opts


def master_opts(root, **more) -> dict:
    """A master's options loading the checkout's ext_pillar and utils; every directory
    it writes is under ``root``; ``more`` on top."""
    root = pathlib.Path(root)
    opts = salt.config.master_config(None)
    opts.update(
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        pillar_dirs=[str(REPO / "_pillar")],
        utils_dirs=[str(REPO / "_utils")],
        **more,
    )
    return opts


#: The options a ``salt-call -c DIR`` configuration file takes from ``minion_opts``.
CONFIG_KEYS = (
    "id",
    "file_client",
    "cachedir",
    "pki_dir",
    "sock_dir",
    "log_file",
    "module_dirs",
    "states_dirs",
    "utils_dirs",
    "file_roots",
    "pillar_roots",
)


def config_file(opts) -> dict:
    """What a ``salt-call -c DIR`` minion configuration file holds of ``opts``."""
    return {key: opts[key] for key in CONFIG_KEYS}


class SaltCall:
    """A ``salt-call --local`` minion whose modules are the formula's, in ``ns``."""

    def __init__(self, root, ns):
        self.root, self.ns = root, ns
        self.config_dir = root / "etc-wireguard"
        self.config_dir.mkdir(mode=0o700)
        (root / "pillar").mkdir()
        (root / "conf").mkdir()
        config = config_file(minion_opts(root, "cli"))
        config.update(log_level_logfile="debug", file_roots={"base": [str(REPO)]})
        (root / "conf" / "minion").write_text(json.dumps(config))

    def pillar(self, data):
        (self.root / "pillar" / "top.sls").write_text("base:\n  '*':\n    - data\n")
        (self.root / "pillar" / "data.sls").write_text(json.dumps(data))

    def call(self, *args, check=True):
        proc = self.ns.run(
            [SALT_CALL, "-c", str(self.root / "conf"), "--local", "--out=json", *args], check=False
        )
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


@contextlib.contextmanager
def salt_call_in_netns(label, root):
    """A ``SaltCall`` minion in its own network namespace (``label``), which is removed
    afterwards."""
    ns = Netns(label)
    try:
        ns.create()
        yield SaltCall(root, ns)
    finally:
        ns.delete()
