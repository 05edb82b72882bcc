"""Entry points of the ``salt.loader`` group: where Salt finds this extension's modules.

Salt calls each function while it builds the loader of that kind (execution modules,
states, runners, beacons, ext_pillars) and loads the ``wireguard`` module from the
returned directory.

The shared code of ``_utils/`` (``wgf_*.py``) is not in this list: Salt does not read
extension utils directories (its utils loader runs with ``load_extensions=False``), so
the wheel installs those files as top-level modules instead, where the loader modules'
``import wgf_keys`` finds them.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _dirs(kind):
    return [str(PACKAGE_DIR / kind)]


def get_module_dirs():
    """Execution modules (``wireguard.genkey``, ``wireguard.show``, ...)."""
    return _dirs("modules")


def get_states_dirs():
    """State modules (``wireguard.config``, ``wireguard.peer``, ...)."""
    return _dirs("states")


def get_runner_dirs():
    """Runners (``wireguard.audit``, ``wireguard.graph``)."""
    return _dirs("runners")


def get_beacons_dirs():
    """Beacons (``wireguard``)."""
    return _dirs("beacons")


def get_pillar_dirs():
    """The ext_pillar ``wireguard`` (the preshared keys of networks)."""
    return _dirs("pillar")
