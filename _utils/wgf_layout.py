"""
Where the formula keeps its files on a minion: the map's values (``parameters/`` and
pillar ``wireguard:lookup``) checked, the systemd drop-in that points ``wg-quick@`` at a
config directory that is not ``/etc/wireguard``, and what ``clean`` may remove.

Every SLS that imports ``map.jinja`` and every loader module that reads
``wireguard:lookup`` goes through :func:`check_map` / :func:`config_dir`: a bad lookup
fails the render, naming ``wireguard:lookup:<key>``, before anything changes.
"""

import dataclasses
import os
import re
import shutil

from salt.exceptions import SaltInvocationError

import wgf_confirm
import wgf_metrics
import wgf_tc
from wgf_addr import is_interface_name, shown

DEFAULT_CONFIG_DIR = "/etc/wireguard"
DEFAULT_SERVICE = "wg-quick@{interface}"
#: The formula's directory on the file server (its SLS files' ``tplroot``).
FORMULA_DIR = "wireguard"
#: The formula's map data on the file server (the modules read it to learn the service).
MAP_DATA = f"salt://{FORMULA_DIR}/mapdata.jinja"
#: The init script Alpine's wireguard-tools-openrc ships: it runs ``wg-quick up
#: ${SVCNAME#*.}``, a name wg-quick looks up in /etc/wireguard only.
STOCK_OPENRC_SCRIPT = "/etc/init.d/wg-quick"
INIT_SCRIPT_DIR = "/etc/init.d"
#: OpenRC's runlevels: a link ``<RUNLEVELS_DIR>/<runlevel>/<service>`` per service in it.
RUNLEVELS_DIR = "/etc/runlevels"
#: Written by the formula into a config directory it creates; clean removes the
#: directory only when this is there and nothing but the formula's files is.
MARKER = ".wireguard-formula"
#: The drop-in of ``wg-quick@<if>.service`` the formula writes for a config dir
#: that is not the default.
DROPIN_NAME = "50-wireguard-formula-config-dir.conf"
SYSTEMD_UNIT_DIR = "/etc/systemd/system"
#: The networkd backend (issue 25, ``wgf_networkd``): its unit files per interface,
#: ``<NETWORK_DIR>/<NETWORKD_PRIORITY>-wireguard-<if>.netdev`` and ``.network``, the
#: copies of the keys networkd reads, in ``<NETWORKD_KEYS_DIR>/<if>/`` (0750
#: root:systemd-network, files 0640), and networkd's own drop-in (``wgf_networkd.FOREIGN``).
NETWORK_DIR = "/etc/systemd/network"
NETWORKD_PRIORITY = "50"
NETWORKD_KEYS_DIR = "/etc/systemd/network/wireguard-keys"
NETWORKD_CONF_DROPIN = "/etc/systemd/networkd.conf.d/50-wireguard-formula.conf"
NETWORKD_SERVICE = "systemd-networkd"
#: The file the ``hosts`` option keeps one block per interface in (``wgf_hosts``).
HOSTS_FILE = "/etc/hosts"
#: A restart a run decided and has not finished yet: a run killed between writing the
#: file and restarting leaves its mark here, and the next run restarts although the file
#: is already as wanted. Under /run: after a reboot the interface is built from the file.
RESTART_PENDING_DIR = "/run/wireguard-formula/restart-pending"
#: The latest reachability probe of the minion (issue 22: ``wireguard.verify_probe``):
#: ``{"time", "passed", "failed"}`` of the assertions probed from it (no secret); read
#: by ``wireguard.metrics``.
VERIFY_RESULT = "/var/lib/wireguard-formula/verify/last.json"
#: Directories no config dir may be (nor their direct parents); nothing under the
#: kernel's and the device manager's file systems either.
_SYSTEM_DIRS = """
/ /etc /usr /var /root /home /boot /proc /sys /dev /run /tmp /bin /sbin /lib /lib32
/lib64 /libx32 /opt /srv /mnt /media /usr/bin /usr/sbin /usr/lib /usr/lib64 /usr/local
/usr/share /usr/include /usr/libexec /var/lib /var/log /var/tmp /var/run /var/cache
/var/spool /var/mail /etc/systemd /etc/systemd/system /etc/init.d /etc/conf.d
/etc/sysctl.d /usr/lib/sysctl.d /run/sysctl.d /etc/default /etc/ssh /etc/ssl
/etc/network /etc/NetworkManager /etc/systemd/network /run/systemd
"""
SYSTEM_DIRS = frozenset(_SYSTEM_DIRS.split())
_VIRTUAL = ("/proc", "/sys", "/dev")
#: Files of the system a sysctl file of the formula must not be (clean removes it).
SYSTEM_FILES = frozenset({"/etc/sysctl.conf"})
#: Characters a path of the formula may hold: it is written into unit files and
#: command lines, where spaces, quotes, ``%`` (systemd specifiers) and ``$`` mean
#: something.
_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
_UNIT = re.compile(r"[A-Za-z0-9:_.@{}\\-]+")
_FIREWALLS = ("auto", "nftables", "iptables", "none")
_PKG_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:~@/=<>*-]*")


def _shown(value):
    """A value as a refusal shows it: a string quoted (and cut short), anything else by
    its type only (an integer past Python's digit limit has no ``str``)."""
    if isinstance(value, str):
        return shown(value if len(value) <= 100 else value[:100] + "...")
    return "null" if value is None else f"a value of type {type(value).__name__}"


class _Errors(list):
    def add(self, key, message):
        self.append(f"wireguard:lookup:{key}: {message}")


def _path(value, key, errors, what="directory"):
    """``value`` if it is an absolute, normalised path of safe characters, else None
    (with the reason in ``errors``)."""
    if not isinstance(value, str):
        errors.add(key, f"must be an absolute path (a string), not {_shown(value)}")
        return None
    if not value.startswith("/"):
        errors.add(key, f"{_shown(value)} is not an absolute path")
        return None
    if not _PATH.fullmatch(value):
        errors.add(
            key, f"{_shown(value)}: only letters, digits and . _ @ + - / are allowed in a path"
        )
        return None
    if ".." in value.split("/") or "." in value.split("/")[1:] or os.path.normpath(value) != value:
        errors.add(
            key,
            f"{_shown(value)} is not a normalised path (no '.', '..', '//' or "
            f"trailing '/'): write {_shown(os.path.normpath(value))}",
        )
        return None
    if (
        value in SYSTEM_DIRS
        or any(value == d or value.startswith(d + "/") for d in _VIRTUAL)
        or any(os.path.dirname(d) == value for d in SYSTEM_DIRS if d != "/")
    ):
        errors.add(
            key,
            f"{_shown(value)} is a system directory: the formula would change "
            f"its mode and clean would remove it; name a {what} of its own, "
            f"such as {DEFAULT_CONFIG_DIR}",
        )
        return None
    return value


def _text(value, key, errors, null=False, pattern=None, what="a name"):
    if value is None and null:
        return None
    if not isinstance(value, str) or not value or (pattern and not pattern.fullmatch(value)):
        errors.add(key, f"{_shown(value)} is not {what}" + (" or null" if null else ""))
        return None
    return value


def _bool(value, key, errors, null=False):
    if isinstance(value, bool) or (value is None and null):
        return value
    errors.add(key, f"{_shown(value)} is not true or false" + (" or null" if null else ""))
    return None


def _mapping(value, key, errors):
    if isinstance(value, dict):
        return value
    errors.add(key, f"must be a mapping, not {_shown(value)}")
    return {}


def _names(value, key, errors):
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(key, f"must be a list of package names, not {_shown(value)}")
        return []
    for i, item in enumerate(value):
        if isinstance(item, dict) and len(item) == 1:  # pkg.installed's {name: version}
            ((item, version),) = item.items()
            if not isinstance(version, (str, int, float)) or isinstance(version, bool):
                errors.add(f"{key}:{i}", f"{_shown(version)} is not a version")
        _text(item, f"{key}:{i}", errors, pattern=_PKG_NAME, what="a package name")
    return value


def check_config_dir(value, key="config_dir"):
    """``value`` if it is a config dir the formula may own, else a SaltInvocationError
    naming ``wireguard:lookup:<key>``."""
    errors = _Errors()
    _path(value, key, errors)
    if errors:
        raise SaltInvocationError("; ".join(errors))
    return value


def check_map(values):
    """The map's values (defaults, per-OS layers, pillar ``wireguard:lookup``), checked:
    ``values`` itself, or a SaltInvocationError that lists every bad key."""
    errors = _Errors()
    if not isinstance(values, dict):
        raise SaltInvocationError(f"wireguard:lookup: must be a mapping, not {_shown(values)}")
    pkgs = _mapping(values.get("pkgs"), "pkgs", errors)
    _text(pkgs.get("tools"), "pkgs:tools", errors, pattern=_PKG_NAME, what="a package name")
    for name in ("resolvconf", "go"):
        _text(
            pkgs.get(name),
            f"pkgs:{name}",
            errors,
            null=True,
            pattern=_PKG_NAME,
            what="a package name",
        )
    if pkgs.get("firewall") is not None:
        for backend, names in _mapping(pkgs["firewall"], "pkgs:firewall", errors).items():
            if backend not in _FIREWALLS[1:]:
                errors.add(
                    f"pkgs:firewall:{backend}",
                    f"{_shown(backend)} is not one of {', '.join(_FIREWALLS[1:])}",
                )
            _names(names, f"pkgs:firewall:{backend}", errors)
    _names(pkgs.get("extra"), "pkgs:extra", errors)
    _bool(values.get("install_go"), "install_go", errors)
    _bool(values.get("install_recommends"), "install_recommends", errors, null=True)
    _path(values.get("config_dir"), "config_dir", errors)
    service = _mapping(values.get("service"), "service", errors)
    name = _text(
        service.get("name"),
        "service:name",
        errors,
        pattern=_UNIT,
        what="a service name (letters, digits, : _ . @ - and {interface})",
    )
    if name and "{interface}" not in name:
        errors.add(
            "service:name",
            f"{_shown(name)} must contain {{interface}}: each interface runs as its own service",
        )
    link = service.get("link")
    if (
        link is not None
        and _text(link, "service:link", errors, what="a path")
        and "{interface}" not in link
    ):
        errors.add("service:link", f"{_shown(link)} must contain {{interface}}")
    elif link is not None and isinstance(link, str):
        _path(link.replace("{interface}", "wg0"), "service:link", errors, "file")
    target = service.get("link_target")
    if target is not None:
        _path(target, "service:link_target", errors, "file")
    if (link is None) != (target is None):
        errors.add(
            "service:link_target",
            "service:link and service:link_target go together: set both or neither",
        )
    sysctl_file = _path(values.get("sysctl_file"), "sysctl_file", errors, "file")
    if sysctl_file and (sysctl_file in SYSTEM_FILES or not sysctl_file.endswith(".conf")):
        errors.add(
            "sysctl_file",
            f"{_shown(sysctl_file)}: name a file of the formula's own "
            "ending in .conf, such as /etc/sysctl.d/99-wireguard.conf "
            "(clean removes it)",
        )
    backend = values.get("backend")
    if backend is not None and backend not in ("wg-quick", "networkd"):
        errors.add("backend", f"{_shown(backend)} is not one of wg-quick, networkd")
    firewall = values.get("firewall")
    if firewall is not None and firewall not in _FIREWALLS:
        errors.add("firewall", f"{_shown(firewall)} is not one of {', '.join(_FIREWALLS)}")
    try:
        wgf_confirm.check(values.get("confirm"))
    except SaltInvocationError as exc:  # names wireguard:lookup:confirm:<key> itself
        errors.append(str(exc))
    try:
        wgf_metrics.check(values.get("metrics"))
    except SaltInvocationError as exc:  # names wireguard:lookup:metrics:<key> itself
        errors.append(str(exc))
    if errors:
        raise SaltInvocationError("; ".join(errors))
    return values


def config_dir(lookup, given=None):
    """The config dir: ``given`` (a function's argument) or pillar's
    ``wireguard:lookup:config_dir`` (``lookup`` is the unmasked ``wireguard:lookup``)
    or the default; checked either way."""
    if given is not None:
        return check_config_dir(given)
    value = lookup.get("config_dir") if isinstance(lookup, dict) else None
    return check_config_dir(DEFAULT_CONFIG_DIR if value is None else value)


def read_lookup(pillar_get):
    """Pillar ``wireguard:lookup`` read unmasked (Salt 3008 masks ``pillar.get``
    outside renders): ``pillar_get`` is ``__salt__["pillar.get"]``."""
    lookup = pillar_get("wireguard:lookup", {}, unmask=True)
    return lookup if isinstance(lookup, dict) else {}


def client_key_name(client, kind):
    """The name of a client's key file in its interface's ``clients_dir``: ``kind``
    ``key`` (its private key) or ``psk``."""
    return f"{client}.{kind}"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one minion keeps the formula's files, and what runs an interface: every
    path and unit name is built here (``Layout(config_dir, service)``)."""

    config_dir: str = DEFAULT_CONFIG_DIR
    service: str = DEFAULT_SERVICE
    #: OpenRC's per-interface link to the shared init script (``{interface}`` in it).
    service_link: str | None = None

    def conf(self, interface):
        return os.path.join(self.config_dir, f"{interface}.conf")

    def key(self, interface):
        """The interface's private key (0600)."""
        return os.path.join(self.config_dir, f"{interface}.key")

    def key_next(self, interface):
        """The private key a rotation staged and has not switched to yet."""
        return os.path.join(self.config_dir, f"{interface}.key.next")

    def clients_record(self, interface):
        """Where the interface's client allocations are kept (no secret in it)."""
        return os.path.join(self.config_dir, f"{interface}.clients.json")

    def clients_dir(self, interface):
        """The 0700 directory of the interface's client keys."""
        return os.path.join(self.config_dir, "clients", interface)

    def client_key(self, interface, client, kind):
        """``<config_dir>/clients/<if>/<client>.key`` (private key) or ``.psk``."""
        return os.path.join(self.clients_dir(interface), client_key_name(client, kind))

    @property
    def marker(self):
        return os.path.join(self.config_dir, MARKER)

    @property
    def hosts(self):
        """The hosts file where the ``hosts`` option names the peers (``wgf_hosts``)."""
        return HOSTS_FILE

    def unit(self, interface):
        """The service that runs ``interface`` (``wg-quick@wg0``, ``wg-quick.wg0``)."""
        return self.service.replace("{interface}", interface)

    def link(self, interface):
        """OpenRC's init script link of ``interface``, or None (systemd)."""
        return self.service_link.replace("{interface}", interface) if self.service_link else None

    def files(self, interface):
        """The interface's paths, for the SLS files (they build none themselves)."""
        return {
            "conf": self.conf(interface),
            "key": self.key(interface),
            "clients_record": self.clients_record(interface),
            "clients_dir": self.clients_dir(interface),
        }

    def networkd_files(self, interface):
        """The paths the networkd backend adds to ``files``."""
        return {
            "netdev": self.netdev(interface),
            "network": self.network(interface),
            "networkd_keys": self.networkd_keys(interface),
        }

    # the networkd backend (wgf_networkd)

    def netdev(self, interface):
        return f"{NETWORK_DIR}/{NETWORKD_PRIORITY}-wireguard-{interface}.netdev"

    def network(self, interface):
        return f"{NETWORK_DIR}/{NETWORKD_PRIORITY}-wireguard-{interface}.network"

    def networkd_keys(self, interface):
        """The 0750 root:systemd-network directory of the keys networkd reads."""
        return os.path.join(NETWORKD_KEYS_DIR, interface)

    def networkd_key(self, interface):
        return os.path.join(self.networkd_keys(interface), "private.key")

    def networkd_psk(self, interface, file_name):
        return os.path.join(self.networkd_keys(interface), file_name)

    def backend_unit(self, interface, backend):
        """The unit that runs ``interface`` under ``backend`` (``wgf_networkd``)."""
        return NETWORKD_SERVICE if backend == "networkd" else self.unit(interface)


# ---------------------------------------------------------------- the service


def restart_pending(interface):
    """The mark of a restart of ``interface`` a run decided and has not finished."""
    return os.path.join(RESTART_PENDING_DIR, interface)


def unit_file(unit):
    return unit if unit.endswith(".service") else unit + ".service"


def dropin(interface, config_dir, service=DEFAULT_SERVICE, init="systemd"):
    """On systemd ``{"path": ..., "text": ...}`` of the drop-in that makes
    ``wg-quick@<if>`` read ``<config_dir>/<if>.conf``, with text None where there must
    be none (the default config dir, a unit of the user's own); None on other init
    systems."""
    if init != "systemd":
        return None
    if not is_interface_name(interface):
        raise SaltInvocationError(f"interface {_shown(interface)}: not a valid interface name")
    check_config_dir(config_dir)
    wanted = service == DEFAULT_SERVICE and config_dir != DEFAULT_CONFIG_DIR
    return {
        "path": dropin_path(interface, service),
        "text": dropin_text(interface, config_dir) if wanted else None,
    }


def confirm_restore_path(interface, init="systemd"):
    """The boot-time unit that puts an unconfirmed change back (issue 21:
    ``wgf_confirm.restore_unit``): under /etc/systemd/system, or OpenRC's init script
    under /etc/init.d."""
    if init == "openrc":
        return f"{INIT_SCRIPT_DIR}/{wgf_confirm.restore_unit(interface, init)}"
    return f"{SYSTEMD_UNIT_DIR}/{wgf_confirm.restore_unit(interface)}"


def dropin_path(interface, service=DEFAULT_SERVICE):
    unit = unit_file(service.replace("{interface}", interface))
    return f"{SYSTEMD_UNIT_DIR}/{unit}.d/{DROPIN_NAME}"


def dropin_text(interface, config_dir):
    """The stock unit's three commands, naming the file instead of the interface
    (wg-quick takes a path and names the interface after the file)."""
    conf = Layout(config_dir).conf(interface)
    return (
        "# Managed by the wireguard formula: wireguard:lookup:config_dir is not\n"
        f"# {DEFAULT_CONFIG_DIR}, and the stock unit reads {DEFAULT_CONFIG_DIR}/%i.conf only.\n"
        "[Service]\n"
        "ExecStart=\n"
        f"ExecStart=wg-quick up {conf}\n"
        "ExecStop=\n"
        f"ExecStop=wg-quick down {conf}\n"
        "ExecReload=\n"
        f"ExecReload=bash -c 'exec wg syncconf {interface} <(exec wg-quick strip {conf})'\n"
    )


def openrc_link(interface, config_dir, link_target):
    """OpenRC: Alpine's init script (``STOCK_OPENRC_SCRIPT``) sets ``CONF`` to the
    interface name after ``/etc/conf.d`` is read, so no conf.d file can point it
    elsewhere, and ``wg-quick up <name>`` reads ``/etc/wireguard/<name>.conf``. The
    equivalent of the drop-in is a link there to ``<config_dir>/<if>.conf`` (wg-quick
    resolves links: the interface still takes the file's name). ``{"path": ...,
    "target": ...}``, target None where there must be no link (the default dir);
    None for an init script of the user's own."""
    if link_target != STOCK_OPENRC_SCRIPT:
        return None
    if not is_interface_name(interface):
        raise SaltInvocationError(f"interface {_shown(interface)}: not a valid interface name")
    check_config_dir(config_dir)
    wanted = config_dir != DEFAULT_CONFIG_DIR
    return {
        "path": f"{DEFAULT_CONFIG_DIR}/{interface}.conf",
        "target": f"{config_dir}/{interface}.conf" if wanted else None,
    }


# ------------------------------------------------------------------ clean


_OWN_SUFFIXES = (".conf", ".key", ".key.next", ".clients.json")


def _own_name(name):
    """Whether ``name`` (an entry of the config dir) is a file the formula writes:
    ``<if>.conf``, ``<if>.key``, ``<if>.key.next``, ``<if>.clients.json``, or what a
    killed atomic write of one left (``.<that name>.<random>``)."""
    if name.startswith(".") and name != MARKER:
        stem = name[1:].rsplit(".", 1)[0]
        return _own_name(stem) if stem and not stem.startswith(".") else False
    for suffix in _OWN_SUFFIXES:
        if name.endswith(suffix) and is_interface_name(name[: -len(suffix)]):
            return True
    return False


def _own_client_dir(path):
    """Whether ``path`` (``clients/<if>``) holds only clients' key files."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    return all(
        e.is_file(follow_symlinks=False)
        and re.fullmatch(r"\.?[A-Za-z0-9_.=+-]+\.(key|psk)(\.[A-Za-z0-9_]+)?", e.name)
        for e in entries
    )


def formula_entries(directory):
    """The entries of ``directory`` the formula made (files by name, the clients' key
    directories), sorted; the marker is not among them."""
    found = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.is_file(follow_symlinks=False) and _own_name(entry.name):
            found.append(entry.path)
    clients = os.path.join(directory, "clients")
    if os.path.isdir(clients) and not os.path.islink(clients):
        for entry in sorted(os.scandir(clients), key=lambda e: e.name):
            if (
                entry.is_dir(follow_symlinks=False)
                and is_interface_name(entry.name)
                and _own_client_dir(entry.path)
            ):
                found.append(entry.path)
    return found


def clean_plan(directory):
    """What clean removes in ``directory``: ``(paths, remove_directory, kept)``, the
    formula's entries (and the client rates script of each interface config there),
    whether the directory goes too (the formula made it and nothing else is left), and
    the foreign entries that stay."""
    if not os.path.isdir(directory) or os.path.islink(directory):
        return [], False, []
    paths = formula_entries(directory)
    gone = set(paths)
    # the client rates script (wgf_tc) of each interface whose config goes
    for path in list(paths):
        name = os.path.basename(path)
        if name.endswith(".conf") and os.path.isfile(wgf_tc.script_path(name[:-5])):
            paths.append(wgf_tc.script_path(name[:-5]))
    kept = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.path in gone or entry.name == MARKER:
            continue
        if (
            entry.name == "clients"
            and entry.is_dir(follow_symlinks=False)
            and all(e.path in gone for e in os.scandir(entry.path))
        ):
            continue
        kept.append(entry.path)
    made = os.path.isfile(os.path.join(directory, MARKER))
    return paths, made and not kept, kept


def clean(directory):
    """Remove what :func:`clean_plan` says; return ``(removed paths, kept paths)``."""
    paths, remove_directory, kept = clean_plan(directory)
    removed = []
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed.append(path)
    clients = os.path.join(directory, "clients")
    if os.path.isdir(clients) and not os.listdir(clients):
        os.rmdir(clients)
        removed.append(clients)
    if remove_directory:
        os.unlink(os.path.join(directory, MARKER))
        os.rmdir(directory)
        removed.append(directory)
    return removed, kept
