"""The Salt minion options under which the functional tests and the benchmarks run the
formula's modules from this checkout."""

from __future__ import annotations

import pathlib

import salt.config

REPO = pathlib.Path(__file__).resolve().parents[2]


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
