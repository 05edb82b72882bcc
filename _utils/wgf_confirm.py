"""
Confirmed changes (issue 21): a change to a running tunnel is confirmed by probes or
undone, even if Salt dies. This file holds what needs no minion: the ``confirm``
settings checked (``wireguard:lookup:confirm`` and the per-interface override), the
probes as typed records, whether a run arms an undo for an interface, the names of the
units that undo, the undo's command line, and the judgement of the probes' answers.

Plain Python, no Salt loader dunders. Problems raise ``SaltInvocationError`` naming the
pillar place (``wireguard:lookup:confirm:<key>``,
``wireguard:interfaces:<if>:confirm:<key>``) and the bad value as ``wgf_addr.shown``
shows it (a key typed where a probe goes is hidden).
"""

import dataclasses
import difflib
import ipaddress
import re

from salt.exceptions import SaltInvocationError

import wgf_addr

DEFAULT_TIMEOUT = 30
TIMEOUT_MIN = 5
TIMEOUT_MAX = 3600
DEFAULT_PROBES = ("master",)
#: The settings ``confirm`` takes (a mapping), besides ``true``/``false``.
KEYS = ("timeout", "probes")
WORDS = ("master", "peers")
#: The ``peers`` probe checks the peers with a handshake this long before the change.
PEERS_WINDOW = 180
#: Salt's default ``master_port``: where a minion sends its returns (the master's
#: request server); ``publish_port`` (4505) is the other one.
SALT_RET_PORT = 4506
#: What a run records before it changes a running interface, per interface: the files,
#: the firewall table and the undo script, root-only (directory 0700, files 0600). It
#: survives a reboot, so the boot-time unit can put the recorded file back.
STATE_ROOT = "/var/lib/wireguard-formula/confirm"
STATE_DIR_MODE = 0o700
STATE_FILE_MODE = 0o600
#: Files inside an interface's state directory.
UNDO_SCRIPT = "undo"
ARMED = "armed"
UNDONE = "undone"
LOCK = "lock"
#: OpenRC: the process id of the detached process that waits for the deadline.
WAITER = "waiter"
#: The kernel's id of the running boot: ``armed`` holds it, so the ``boot`` mode of the
#: undo acts only after a reboot.
BOOT_ID = "/proc/sys/kernel/random/boot_id"
UNIT_PREFIX = "wireguard-confirm-"
RESTORE_PREFIX = "wireguard-confirm-restore-"
#: OpenRC's boot-time service of an interface: ``wireguard-confirm-restore.<if>``, as
#: its ``wg-quick.<if>``.
OPENRC_RESTORE_PREFIX = "wireguard-confirm-restore."
SYSTEMD_RUN = "systemd-run"
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]+")
SHELL = "/bin/sh"
#: The event a minion sends at its next start for each undo it did not report itself.
EVENT_UNDONE = "wireguard/confirm/undone"
#: The modes of the undo script: ``timer`` (the deadline passed: put back and restart),
#: ``boot`` (before ``wg-quick@<if>`` starts: put the files back, start nothing),
#: ``now`` (a probe failed in the run: the state undoes at once).
UNDO_MODES = ("timer", "boot", "now")

ANSWERED = "answered"
FAILED = "failed"
NOT_APPLICABLE = "not applicable"


# ---------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class MasterProbe:
    """A TCP connect to each Salt master the minion uses, at its return port."""

    def __str__(self):
        return "master"


@dataclasses.dataclass(frozen=True)
class PeersProbe:
    """Every peer with a handshake in the :data:`PEERS_WINDOW` before the change
    answers again after it."""

    def __str__(self):
        return "peers"


@dataclasses.dataclass(frozen=True)
class IcmpProbe:
    """An ICMP echo to an address (normalised: ``ipaddress``'s text)."""

    address: str

    @property
    def version(self):
        return ipaddress.ip_address(self.address).version

    def __str__(self):
        return self.address


@dataclasses.dataclass(frozen=True)
class TcpProbe:
    """A TCP connect to ``host:port``; an IPv6 host is kept without brackets."""

    host: str
    port: int

    def __str__(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Confirm:
    """The effective confirm of one interface."""

    timeout: int = DEFAULT_TIMEOUT
    probes: tuple = (MasterProbe(),)

    def describe(self):
        return ", ".join(str(probe) for probe in self.probes)


def _place(interface=None):
    if interface is None:
        return "wireguard:lookup:confirm"
    return f"wireguard:interfaces:{interface}:confirm"


def parse_probe(value, where):
    """One probe as written in pillar, as a typed record; raise naming ``where``."""
    if not isinstance(value, str) or isinstance(value, bool):
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)} is no probe; a probe is master, peers, "
            "an IP address or host:port"
        )
    wgf_addr.text(value, where)
    word = value.strip()
    if word in WORDS:
        return MasterProbe() if word == "master" else PeersProbe()
    if wgf_addr.ADDRESS_CHARS.fullmatch(word) and wgf_addr.is_address(word):
        return IcmpProbe(str(ipaddress.ip_address(word)))
    if word.startswith("[") and word.endswith("]"):
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)} has no port; an address to ping is written "
            "without brackets, a TCP probe as [address]:port"
        )
    if ":" in word or word.startswith("["):
        try:
            wgf_addr.endpoint(word, where)
        except SaltInvocationError as exc:
            raise _naming_the_probe(exc, value, where) from None
        host, port = wgf_addr.split_endpoint(word)
        if wgf_addr.is_address(host):
            host = str(ipaddress.ip_address(host))
        return TcpProbe(host, port)
    close = difflib.get_close_matches(word.lower(), WORDS, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    if _DOTTED_QUAD.fullmatch(word):
        hint = "; it is not an IPv4 address (four numbers 0-255)"
    raise SaltInvocationError(
        f"{where}: unknown probe {wgf_addr.shown(value)}: a probe is master, peers, "
        f"an IP address (ICMP) or host:port (TCP, IPv6 as [address]:port){hint}"
    )


#: What was meant as an IPv4 address (``10.0.0.300``): said so when it is none.
_DOTTED_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def _naming_the_probe(exc, value, where):
    """``exc`` (about a part of the probe ``value``, such as its port) naming the whole
    probe too: a list of probes says which of them is bad."""
    message = str(exc)
    if wgf_addr.shown(value) in message:
        return exc
    detail = message[len(where) + 2 :] if message.startswith(f"{where}: ") else message
    return SaltInvocationError(f"{where}: probe {wgf_addr.shown(value)}: {detail}")


def parse_probes(value, where):
    """A non-empty list of probes as typed records, duplicates dropped, order kept."""
    if not isinstance(value, list):
        raise SaltInvocationError(
            f"{where}: expected a list of probes (master, peers, an IP address, host:port), "
            f"got {type(value).__name__}"
        )
    if not value:
        raise SaltInvocationError(
            f"{where}: [] (an empty list) confirms nothing; name at least one probe "
            "(master, peers, an IP address, host:port), or set confirm: false"
        )
    probes = []
    for item in value:
        probe = parse_probe(item, where)
        if probe not in probes:
            probes.append(probe)
    return tuple(probes)


def parse_timeout(value, where):
    """A whole number of seconds from :data:`TIMEOUT_MIN` to :data:`TIMEOUT_MAX`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)} is not a whole number of seconds; "
            f"timeout is {TIMEOUT_MIN}-{TIMEOUT_MAX}"
        )
    return wgf_addr.integer(value, where, TIMEOUT_MIN, TIMEOUT_MAX, "timeout")


def check(value, interface=None):
    """The ``confirm`` value of lookup (``interface`` None) or of an interface, checked.

    Returns None (absent: lookup's applies), False (off), or a dict holding the keys
    given, parsed (``timeout`` an int, ``probes`` a tuple of probe records); ``True``
    is ``{}`` (on, with lookup's values or the defaults)."""
    if interface is not None:
        wgf_addr.check_interface_name(interface)
    where = _place(interface)
    if value is None or value is False:
        return value
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise SaltInvocationError(
            f"{where}: expected a mapping (timeout, probes), true or false, "
            f"got {type(value).__name__}"
        )
    wgf_addr.no_huge_numbers(value, where)
    checked = {}
    for key, item in value.items():
        if key not in KEYS:
            name = key if isinstance(key, str) else ""
            close = difflib.get_close_matches(name.lower(), KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
            raise SaltInvocationError(f"{where}: unknown key {wgf_addr.shown(key)}{hint}")
        if key == "timeout":
            checked[key] = parse_timeout(item, f"{where}:timeout")
        else:
            checked[key] = parse_probes(item, f"{where}:probes")
    return checked


def effective(lookup_value, interface_value, interface):
    """The :class:`Confirm` of ``interface``, or None when confirm is off for it.

    Lookup's ``confirm`` (absent: off) is the default of every interface; an
    interface's ``confirm`` overrides it key by key (``false`` turns it off there, a
    mapping turns it on even when lookup has none). What is given nowhere is
    :data:`DEFAULT_TIMEOUT` and :data:`DEFAULT_PROBES`."""
    wgf_addr.check_interface_name(interface)
    base = check(lookup_value)
    own = check(interface_value, interface)
    if own is False or (own is None and not isinstance(base, dict)):
        return None
    merged = dict(base) if isinstance(base, dict) else {}
    merged.update(own or {})
    return Confirm(
        timeout=merged.get("timeout", DEFAULT_TIMEOUT),
        probes=merged.get("probes", tuple(parse_probe(w, "") for w in DEFAULT_PROBES)),
    )


def effective_all(lookup_value, interfaces):
    """``{interface: Confirm or None}`` for a mapping of interface names to their pillar
    (each's ``confirm`` read from it); every value is checked, also of interfaces
    confirm is off for."""
    check(lookup_value)
    return {
        name: effective(lookup_value, (data or {}).get("confirm"), name)
        for name, data in sorted(interfaces.items())
    }


#: What can undo a change without salt-minion (grains ``init``): on systemd a transient
#: timer, on OpenRC a detached process that leaves salt-minion's cgroup. The undo script
#: knows both.
INITS = ("systemd", "openrc")


def check_init(init, interface=None):
    """Refuse ``confirm`` on a minion whose init (grains ``init``) can run no undo of its
    own, before anything changes."""
    if init in INITS:
        return init
    raise SaltInvocationError(
        f"{_place(interface)}: confirm needs systemd or OpenRC to undo a change without "
        f"salt-minion; this minion's init is {wgf_addr.shown(init)}"
    )


# ------------------------------------------------------------------------ the decision


@dataclasses.dataclass(frozen=True)
class Changes:
    """What a run is going to change on one interface (from the states' plan, before
    anything is changed).

    ``running``: the interface is up before the run. ``kept``: it is meant to be up
    after it (not ``absent``, not ``enabled: false``). The rest: the run changes the
    config file, the live interface (addresses, MTU, DNS, key, port, fwmark, routes, or
    a restart), the live peers, or the formula's firewall table for this interface."""

    running: bool
    kept: bool = True
    file: bool = False
    live: bool = False
    peers: bool = False
    firewall: bool = False

    def parts(self):
        names = ("file", "live", "peers", "firewall")
        return tuple(name for name in names if getattr(self, name))


@dataclasses.dataclass(frozen=True)
class Decision:
    arm: bool
    reason: str


def decide(interface, changes, confirm):
    """Whether the run arms an undo for ``interface`` before its first change."""
    if confirm is None:
        return Decision(False, f"{interface}: confirm is off")
    parts = changes.parts()
    if not parts:
        return Decision(False, f"{interface}: nothing changes, nothing to confirm")
    if not changes.kept:
        return Decision(False, f"{interface}: taken down or removed, nothing to confirm")
    if not changes.running:
        return Decision(
            False, f"{interface}: not running before the change (no working path to protect)"
        )
    return Decision(
        True,
        f"{interface}: {', '.join(parts)} change on a running interface: undone in "
        f"{confirm.timeout} s unless {confirm.describe()} answer",
    )


def blind_spots(interface, changes, confirm):
    """Warnings for a confirm whose probes cannot see what the run changes: WireGuard
    counts received bytes and handshakes before the firewall sees a packet (measured: a
    tunnel ping dropped by the input chain, ``rx_bytes`` still grew), so ``peers`` alone
    does not notice a firewall change that drops the tunnel's traffic."""
    if confirm is None or not changes.firewall:
        return []
    if any(not isinstance(probe, PeersProbe) for probe in confirm.probes):
        return []
    return [
        f"{interface}: the firewall changes and only the peers probe checks it; WireGuard "
        "counts a peer's packets before the firewall drops them: add the master probe, "
        "and roll out a rule that may drop what others send here with wireguard.rollout, "
        "which checks them"
    ]


def test_comment(interface, decision):
    """What ``test=True`` says about the confirm of ``interface``."""
    if decision.arm:
        return f"a confirm would be armed: {decision.reason}"
    return f"no confirm would be armed: {decision.reason}"


# --------------------------------------------------------------------- units and argv


def unit_part(interface):
    """``interface`` as a unit name may hold it: systemd allows ``A-Za-z0-9:_.\\-`` and
    ``@``; the one interface character outside them, ``=``, becomes ``\\x3d`` as
    ``systemd-escape`` writes it (no ``\\`` is in an interface name, so no two
    interfaces share a unit)."""
    wgf_addr.check_interface_name(interface)
    return interface.replace("=", "\\x3d")


def unit_name(interface):
    """The transient units' name (``<name>.timer`` and ``<name>.service``)."""
    return UNIT_PREFIX + unit_part(interface)


def timer_unit(interface):
    return unit_name(interface) + ".timer"


def service_unit(interface):
    return unit_name(interface) + ".service"


def restore_unit(interface, init="systemd"):
    """The boot-time unit (systemd) or service (OpenRC) that puts the recorded file back
    before the interface starts."""
    if init == "openrc":
        wgf_addr.check_interface_name(interface)
        return OPENRC_RESTORE_PREFIX + interface
    return RESTORE_PREFIX + unit_part(interface) + ".service"


def state_dir(interface, root=STATE_ROOT):
    wgf_addr.check_interface_name(interface)
    return f"{root}/{interface}"


# --------------------------------------------------------------------- master targets


def master_targets(opts):
    """``[(host, port)]`` the ``master`` probe connects to, from the minion's options.

    A minion that is connected has ``master_uri`` (``tcp://<ip>:<master_port>``, set by
    ``salt.minion.resolve_dns``): the master this job came from, already resolved, so
    the probe needs no DNS, which may itself go through the tunnel. Otherwise each of
    ``master`` (a name, ``host:port``, ``[v6]:port`` or a list of them, as
    ``salt.utils.network.parse_host_port`` reads them) at ``master_port``, the port the
    minion sends its returns to (``publish_port`` is the other one). Empty for a
    masterless minion (``file_client: local`` without ``use_master_when_local``,
    ``master_type: disable``)."""
    if opts.get("master_type") == "disable" or (
        opts.get("file_client") == "local" and not opts.get("use_master_when_local")
    ):
        return []
    port = opts.get("master_port", SALT_RET_PORT)
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = SALT_RET_PORT
    uri = opts.get("master_uri")
    if isinstance(uri, str) and uri.startswith("tcp://"):
        masters = [uri[len("tcp://") :]]
    else:
        masters = opts.get("master")
    if isinstance(masters, str):
        masters = [masters]
    targets = []
    for master in masters if isinstance(masters, list) else []:
        host = str(master).strip()
        if host.startswith("["):  # [v6] or [v6]:port
            host, _, rest = host[1:].partition("]")
            given = rest[1:] if rest.startswith(":") else ""
        elif host.count(":") == 1:  # name:port
            host, _, given = host.partition(":")
        else:  # a name or a bare IPv6 address
            given = ""
        if not host:
            continue
        target = (host, int(given) if given.isdigit() else port)
        if target not in targets:
            targets.append(target)
    return targets


def target_label(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def master_label(host, port):
    """How a message names a master: ``master 10.0.0.1:4506``."""
    return f"master {target_label(host, port)}"


# -------------------------------------------------------------------- judging probes


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One target's verdict: ``label`` as a message names it (``master 10.0.0.1:4506``,
    ``10.0.0.1``, ``10.0.0.1:22``, ``peer hub``), ``status`` one of ANSWERED, FAILED,
    NOT_APPLICABLE, and why."""

    label: str
    status: str
    detail: str = ""


def judge(label, before, after):
    """A target that answered ``before`` the change must answer ``after`` it; one that
    did not answer before is not applicable (the path was broken already: no reason to
    undo)."""
    if not before:
        return Outcome(label, NOT_APPLICABLE, "did not answer before the change")
    if after:
        return Outcome(label, ANSWERED)
    return Outcome(label, FAILED, "did not answer")


@dataclasses.dataclass(frozen=True)
class PeerSample:
    """One peer as ``wg show dump`` shows it at one moment: its public key, latest
    handshake (epoch seconds, 0 = never) and bytes received."""

    public_key: str
    latest_handshake: int = 0
    rx_bytes: int = 0


def peers_to_check(before, changed_at, window=PEERS_WINDOW):
    """The names (pillar name, else public key) of the peers the ``peers`` probe checks:
    a handshake in the ``window`` seconds up to the change."""
    return sorted(
        name
        for name, sample in before.items()
        if sample.latest_handshake and changed_at - window <= sample.latest_handshake
    )


def judge_peer(name, before, after, changed_at, own_key_changed=False):
    """Whether peer ``name`` answered after the change.

    - gone after the change (the run removed it): not applicable;
    - a new public key under the same name, or the interface's own key changed
      (``own_key_changed``): it must handshake after the change. WireGuard stops sending
      on the sessions of an old own key at once, but goes on receiving on them until they
      expire (up to 3 minutes): the peer's keepalives would count as bytes received
      although no handshake with the new key can succeed;
    - the same keys: a handshake after the change, or bytes received since the sample
      before it. WireGuard does not handshake again while a session is younger than 2
      minutes (Rekey-After-Time), so traffic forced through an unchanged session shows
      as bytes received, not as a handshake."""
    label = f"peer {name}"
    if before is None or not before.latest_handshake:
        return Outcome(label, NOT_APPLICABLE, "no handshake before the change")
    if after is None:
        return Outcome(label, NOT_APPLICABLE, "removed by the change")
    same_peer = after.public_key == before.public_key
    handshook = after.latest_handshake >= changed_at and after.latest_handshake > (
        before.latest_handshake if same_peer else 0
    )
    if handshook:
        return Outcome(label, ANSWERED)
    if same_peer and not own_key_changed and after.rx_bytes > before.rx_bytes:
        return Outcome(label, ANSWERED)
    return Outcome(label, FAILED, "did not handshake")


def judge_peers(before, after, changed_at, window=PEERS_WINDOW, own_key_changed=False):
    """The ``peers`` probe: one outcome per peer checked (``judge_peer``), or one
    not-applicable outcome when no peer had a handshake in the window before the
    change."""
    names = peers_to_check(before, changed_at, window)
    if not names:
        return [
            Outcome(
                "peers",
                NOT_APPLICABLE,
                f"no peer had a handshake in the {window // 60} minutes before the change",
            )
        ]
    return [
        judge_peer(name, before[name], after.get(name), changed_at, own_key_changed)
        for name in names
    ]


def must_undo(outcomes):
    return any(outcome.status == FAILED for outcome in outcomes)


def failure_message(interface, outcomes, timeout):
    """``wg0: change undone: master 10.0.0.1:4506 did not answer within 30 s``, each
    failed target named (no key: labels are names and addresses)."""
    failed = [o for o in outcomes if o.status == FAILED]
    if not failed:
        raise ValueError("no probe failed")
    parts = [f"{o.label} {o.detail or 'did not answer'} within {timeout} s" for o in failed]
    return f"{interface}: change undone: " + "; ".join(parts)


def confirmed_message(interface, seconds, outcomes):
    """``wg0: confirmed in 3 s``, followed by the probes that did not count."""
    message = f"{interface}: confirmed in {round(seconds)} s"
    skipped = [
        f"{o.label}: not applicable ({o.detail})" for o in outcomes if o.status == NOT_APPLICABLE
    ]
    if skipped:
        message += "; " + "; ".join(skipped)
    return message
