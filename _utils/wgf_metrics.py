"""Metrics with names (issue 22, part 2): the series of ``wireguard.metrics``, the
``wireguard:lookup:metrics`` settings, and the alert rules of ``salt-run
wireguard.alert_rules``.

Plain data in (``wgf_dump.parse``'s live interfaces, ``wireguard.pillar_interfaces``,
the key files' mtimes, the verify result), plain data out: :func:`series` returns the
families as records; :func:`registry` puts them in a ``prometheus_client``
``CollectorRegistry`` through a custom collector, and :func:`exposition` is its
``generate_latest``. No text of the exposition is formatted here. ``prometheus_client``
is imported only where a registry is built, so the settings check (every SLS renders
it) works on a minion without it.

Every peer carries the labels ``interface``, ``peer`` (its name in pillar: the peer's,
the network node's or the client's; the public key's first 8 characters where pillar
names none), ``network`` (the network's name, else empty) and ``kind`` (``peer``,
``client`` or ``node``). No key material is in any label or value.
"""

import collections
import datetime
import difflib
import json
import os
import re

from salt.exceptions import SaltInvocationError

import wgf_addr
import wgf_checks_files
import wgf_staleness

#: Pillar's place of the settings, and their keys.
WHERE = "wireguard:lookup:metrics"
KEYS = ("textfile", "interval")
DEFAULT_INTERVAL = 30
INTERVAL_MIN, INTERVAL_MAX = 5, 3600
#: The minion's scheduler job that keeps the textfile fresh, and what it runs.
JOB = "wireguard-metrics"
FUNCTION = "wireguard.metrics"
#: How much of a public key names a peer pillar does not declare.
KEY_PREFIX = 8
PEER_LABELS = ("interface", "peer", "network", "kind")
PEER, CLIENT, NODE = "peer", "client", "node"

GAUGE, COUNTER = "gauge", "counter"
#: name: (type, help). A counter's name here is without ``_total``, which
#: prometheus_client adds to its sample.
FAMILIES = {
    "wireguard_peer_up": (
        GAUGE,
        "1 when the link to the peer is up by the formula's staleness rule (a handshake "
        "within 180 s, as wireguard.check and the audit judge it), else 0",
    ),
    "wireguard_peer_expected": (
        GAUGE,
        "1 when pillar declares the peer (it should be up), 0 for a live peer pillar "
        "does not declare",
    ),
    "wireguard_peer_latest_handshake_age_seconds": (
        GAUGE,
        "Seconds since the latest handshake with the peer (no sample before the first)",
    ),
    "wireguard_peer_receive_bytes": (COUNTER, "Bytes received from the peer"),
    "wireguard_peer_transmit_bytes": (COUNTER, "Bytes sent to the peer"),
    "wireguard_interface_key_age_seconds": (
        GAUGE,
        "Seconds since the interface's private key file was last written",
    ),
    "wireguard_interface_max_key_age_seconds": (
        GAUGE,
        "The interface's max_key_age from pillar, in seconds (only where pillar sets it)",
    ),
    "wireguard_verify_failures": (
        GAUGE,
        "Reachability assertions that failed in the latest verify (salt-run, issue 22 "
        "part 1) on this minion",
    ),
    "wireguard_verify_last_run_timestamp_seconds": (
        GAUGE,
        "When the latest reachability verify result on this minion was written (epoch seconds)",
    ),
}
#: Per client where pillar sets them (issue 23, :func:`_client_series`).
CLIENT_EXPIRY = "wireguard_client_expiry_timestamp_seconds"
CLIENT_QUOTA = "wireguard_client_quota_bytes"
FAMILIES[CLIENT_EXPIRY] = (
    GAUGE,
    "When the client's access expires (epoch seconds; pillar's expires, UTC)",
)
FAMILIES[CLIENT_QUOTA] = (GAUGE, "The client's data quota per period (pillar's limits:quota)")
CLIENT_QUOTA_USED = "wireguard_client_quota_used_bytes"
FAMILIES[CLIENT_QUOTA_USED] = (
    GAUGE,
    "Bytes the client used of its quota in the current period (both directions)",
)

Series = collections.namedtuple("Series", "name type help labels samples")


# ------------------------------------------------------------------ settings


_PATH = re.compile(r"/[A-Za-z0-9._@+/-]*")
_VIRTUAL = ("/proc", "/sys", "/dev")


def check_textfile(value, where, isdir=os.path.isdir):
    """``value`` if it is an absolute, normalised path of a file (not a directory) in
    an absolute directory, of safe characters (it is written into the schedule job),
    outside the kernel's file systems; else a SaltInvocationError naming ``where``."""
    if not isinstance(value, str):
        raise SaltInvocationError(
            f"{where}: expected the absolute path of a file (a string), got {type(value).__name__}"
        )
    if not value.startswith("/"):
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)} is not an absolute path: name a file in an "
            "absolute directory, such as /var/lib/prometheus/node-exporter/wireguard.prom"
        )
    if not _PATH.fullmatch(value):
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)}: only letters, digits and . _ @ + - / are "
            "allowed in the path"
        )
    parts = value.split("/")[1:]
    if ".." in parts or "." in parts or os.path.normpath(value) != value or value == "/":
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)} is not a normalised path of a file (no '.', "
            "'..', '//' or trailing '/')"
        )
    if any(value == d or value.startswith(d + "/") for d in _VIRTUAL):
        raise SaltInvocationError(f"{where}: {wgf_addr.shown(value)} is under {_VIRTUAL}")
    if isdir(value):
        raise SaltInvocationError(
            f"{where}: {wgf_addr.shown(value)} is a directory; name the file to write in it, "
            "such as <directory>/wireguard.prom"
        )
    return value


def check(value, isdir=os.path.isdir):
    """Pillar's ``wireguard:lookup:metrics``, checked: None (off: absent, null or
    false) or ``{"textfile": path, "interval": seconds}``; else a SaltInvocationError
    naming ``wireguard:lookup:metrics:<key>``."""
    if value is None or value is False:
        return None
    if not isinstance(value, dict):
        raise SaltInvocationError(
            f"{WHERE}: expected a mapping (textfile, interval), got {type(value).__name__}"
        )
    wgf_addr.no_huge_numbers(value, WHERE)
    for key in value:
        if key not in KEYS:
            name = key if isinstance(key, str) else ""
            close = difflib.get_close_matches(name.lower(), KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(KEYS)}"
            raise SaltInvocationError(f"{WHERE}: unknown key {wgf_addr.shown(key)}{hint}")
    if value.get("textfile") is None:
        raise SaltInvocationError(
            f"{WHERE}:textfile: required: the absolute path of the file node_exporter's "
            "textfile collector reads"
        )
    textfile = check_textfile(value["textfile"], f"{WHERE}:textfile", isdir)
    interval = value.get("interval", DEFAULT_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise SaltInvocationError(
            f"{WHERE}:interval: {wgf_addr.shown(interval)} is not a whole number of seconds; "
            f"interval is {INTERVAL_MIN}-{INTERVAL_MAX}"
        )
    interval = wgf_addr.integer(
        interval, f"{WHERE}:interval", INTERVAL_MIN, INTERVAL_MAX, "interval (seconds)"
    )
    return {"textfile": textfile, "interval": interval}


# -------------------------------------------------------------------- series


def verify_result(text):
    """``{"time", "passed", "failed"}`` of the verify result file's ``text`` (None: no
    file), or None when it is not that shape (a half-written or foreign file).
    ``failed`` is a count (a list of the failed assertions counts as its length)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    failed = data.get("failed")
    if isinstance(failed, list):  # the failed assertions themselves: count them
        failed = len(failed)
    if isinstance(failed, bool) or not isinstance(failed, int) or failed < 0:
        return None
    when = data.get("time")
    when = when if isinstance(when, (int, float)) and not isinstance(when, bool) else None
    return {"time": when, "passed": data.get("passed"), "failed": failed}


def _aged(peer, now):
    """The live peer with its handshake age taken at ``now``."""
    handshake = peer.get("latest_handshake")
    return {**peer, "latest_handshake_age": max(0, now - handshake) if handshake else None}


def is_up(peer, now, stale_after=wgf_staleness.STALE_AFTER):
    """The formula's one staleness rule (``wgf_staleness.link_state``) at ``now``."""
    return wgf_staleness.link_state(_aged(peer, now), stale_after) == wgf_staleness.UP


def peers_of(name, declared, live, network):
    """``[(labels, expected, live peer or None)]`` of one interface: every peer and
    client pillar declares (also when it is not live), then every live peer it does
    not declare, named by its key's first characters. A peer pillar marks ``absent``
    shows only while it is still live, not expected."""
    live_peers = (live or {}).get("peers") or {}
    found, seen = [], set()
    if declared and not declared["absent"]:
        for pname, peer in sorted(declared["peers"].items()):
            kind = CLIENT if peer.get("client") else NODE if network else PEER
            key = peer["public_key"]
            now = live_peers.get(key) if key else None
            if key:
                seen.add(key)
            if peer["absent"] and now is None:
                continue
            labels = (name, pname, network if kind == NODE else "", kind)
            found.append((labels, not peer["absent"], now))
        for cname, client in sorted(declared["clients"].items()):
            if not client["absent"] and cname not in declared["peers"]:  # its key is not made
                found.append(((name, cname, "", CLIENT), True, None))
    for key, peer in sorted(live_peers.items()):
        if key not in seen:
            found.append(((name, key[:KEY_PREFIX], "", PEER), False, peer))
    return found


def _client_series(name, declared, use=None):
    """``[(family, labels, value)]`` of client expiry (:data:`CLIENT_EXPIRY`), quota
    (:data:`CLIENT_QUOTA`) and its use (:data:`CLIENT_QUOTA_USED`, from ``use``:
    ``{client: wgf_quota.use}``) per client of interface ``name``, where pillar sets
    them."""
    found = []
    for cname, client in sorted(((declared or {}).get("clients") or {}).items()):
        if client.get("absent"):
            continue
        labels = (name, cname, "", CLIENT)
        if client.get("expires"):  # the pipeline's UTC text: 2027-01-31T18:00:00Z
            when = datetime.datetime.fromisoformat(client["expires"].replace("Z", "+00:00"))
            found.append((CLIENT_EXPIRY, labels, when.timestamp()))
        quota = (client.get("limits") or {}).get("quota")
        if quota:
            found.append((CLIENT_QUOTA, labels, quota))
        if (use or {}).get(cname):
            found.append((CLIENT_QUOTA_USED, labels, use[cname]["used"]))
    return found


def series(live, declared, networks, key_mtimes, verify, now, only=None, use=None):
    """The families of ``wireguard.metrics`` as :class:`Series` records, empty ones
    left out.

    live
        ``wireguard.show`` (``wgf_dump.parse``): ``{interface: {"peers": {key: peer}}}``.
    declared
        ``wireguard.pillar_interfaces``.
    networks
        ``{interface: network name}`` of the interfaces mine-driven networks give.
    key_mtimes
        ``{interface: mtime of its private key file, or None}``.
    verify
        :func:`verify_result` of the verify result file, or None.
    now
        Epoch seconds: the handshake ages and the key ages are taken then.
    only
        One interface's series (and no verify result).
    use
        ``{interface: {client: wgf_quota.use}}``: the clients' quota use.
    """
    rows = {name: [] for name in FAMILIES}
    names = set(live) | {n for n, i in declared.items() if not i["absent"]}
    for name in sorted(names if only is None else {only}):
        iface = declared.get(name)
        for labels, expected, peer in peers_of(name, iface, live.get(name), networks.get(name)):
            rows["wireguard_peer_expected"].append((labels, 1 if expected else 0))
            rows["wireguard_peer_up"].append((labels, 1 if peer and is_up(peer, now) else 0))
            if peer is None:
                continue
            if peer.get("latest_handshake"):
                age = max(0, now - peer["latest_handshake"])
                rows["wireguard_peer_latest_handshake_age_seconds"].append((labels, age))
            rows["wireguard_peer_receive_bytes"].append((labels, peer["rx_bytes"]))
            rows["wireguard_peer_transmit_bytes"].append((labels, peer["tx_bytes"]))
        age = wgf_checks_files.key_age_seconds({"mtime": key_mtimes.get(name)}, now)
        if age is not None:
            rows["wireguard_interface_key_age_seconds"].append(((name,), age))
        if iface and not iface["absent"] and iface.get("max_key_age"):
            limit = iface["max_key_age"] * 86400
            rows["wireguard_interface_max_key_age_seconds"].append(((name,), limit))
        for family, labels, value in _client_series(name, iface, (use or {}).get(name)):
            rows[family].append((labels, value))
    if verify is not None and only is None:
        rows["wireguard_verify_failures"].append(((), verify["failed"]))
        if verify["time"] is not None:
            rows["wireguard_verify_last_run_timestamp_seconds"].append(((), verify["time"]))
    found = []
    for name, samples in rows.items():
        if not samples:
            continue
        kind, text = FAMILIES[name]
        labels = (
            PEER_LABELS
            if name.startswith(("wireguard_peer_", "wireguard_client_"))
            else ("interface",)
            if name.startswith("wireguard_interface_")
            else ()
        )
        found.append(Series(name, kind, text, labels, samples))
    return found


class Collector:
    """A ``prometheus_client`` custom collector of :class:`Series` records."""

    def __init__(self, records):
        self._records = records

    def describe(self):
        return []  # registered without names: nothing else shares the registry

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for record in self._records:
            cls = CounterMetricFamily if record.type == COUNTER else GaugeMetricFamily
            family = cls(record.name, record.help, labels=list(record.labels))
            for labels, value in record.samples:
                family.add_metric(list(labels), value)
            yield family


def registry(records):
    """A ``CollectorRegistry`` holding only the :class:`Collector` of ``records``."""
    from prometheus_client import CollectorRegistry

    found = CollectorRegistry(auto_describe=False)
    found.register(Collector(records))
    return found


def exposition(records):
    """Prometheus text exposition of ``records`` (``generate_latest``)."""
    from prometheus_client import generate_latest

    return generate_latest(registry(records)).decode("utf-8")


# --------------------------------------------------------------- alert rules

#: How long an expected peer is down before it alerts; the days ahead of a client's
#: expiry; the rules' group.
DOWN_FOR = "5m"
EXPIRY_DAYS = 7
GROUP = "wireguard"
#: The textfile's name the docs suggest: watched when no minion sets one.
SUGGESTED_TEXTFILE = "wireguard.prom"
#: A textfile older than this many intervals is stale.
STALE_INTERVALS = 3


def _file_matcher(basename):
    """A PromQL regex matcher of node_textfile_mtime_seconds's ``file`` label, which
    holds the file's name or path depending on node_exporter's version."""
    return '{file=~"' + ("(.*/)?" + re.escape(basename)).replace("\\", "\\\\") + '"}'


def _stale_rules(minions):
    """One rule per textfile name the minions write, with the longest interval."""
    longest = {}
    for data in minions.values():
        metrics = data.get("metrics")
        if metrics:
            base = os.path.basename(metrics["textfile"])
            longest[base] = max(longest.get(base, 0), metrics["interval"])
    comment = (
        "salt-minion's scheduler rewrites the textfile every lookup:metrics:interval "
        "seconds: when salt-minion is down, its mtime stops"
    )
    if not longest:
        longest = {SUGGESTED_TEXTFILE: DEFAULT_INTERVAL}
        comment += f"; no minion sets lookup:metrics:textfile, so this watches {SUGGESTED_TEXTFILE}"
    rules = []
    for base, interval in sorted(longest.items()):
        limit = STALE_INTERVALS * interval
        rules.append(
            (
                [comment],
                {
                    "alert": "WireGuardMetricsStale",
                    "expr": f"time() - node_textfile_mtime_seconds{_file_matcher(base)} > {limit}",
                    "for": DOWN_FOR,
                    "labels": {"severity": "warning"},
                    "annotations": {
                        "summary": "WireGuard metrics of {{ $labels.instance }} are stale",
                        "description": (
                            f"{base} was last written {{{{ $value | humanizeDuration }}}} ago "
                            f"(every {interval} s when salt-minion runs): is salt-minion down?"
                        ),
                    },
                },
            )
        )
    return rules


def alert_rules(minions, skipped=()):
    """The Prometheus rules file (YAML, one group) of ``salt-run wireguard.alert_rules``.

    ``minions`` is ``{minion: {"max_key_age": {interface: days}, "metrics": check()'s
    settings or None}}`` from each minion's pillar; ``skipped`` names the minions whose
    pillar could not be read. Each rule's comment says where its values come from."""
    import yaml

    limits = [
        wgf_addr.LINE_BREAKING.sub("?", f"{minion} {ifname}: {days} days")
        for minion, data in sorted(minions.items())
        for ifname, days in sorted((data.get("max_key_age") or {}).items())
        if days
    ]
    rules = [
        (
            ["a peer pillar declares (wireguard_peer_expected 1) that is not up for 5 min"],
            {
                "alert": "WireGuardPeerDown",
                "expr": "wireguard_peer_expected == 1 and wireguard_peer_up == 0",
                "for": DOWN_FOR,
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": (
                        "WireGuard {{ $labels.kind }} {{ $labels.peer }} on "
                        "{{ $labels.interface }} of {{ $labels.instance }} is down"
                    ),
                    "description": (
                        "No handshake within 180 s (the formula's staleness rule) for "
                        "over 5 minutes; salt '<minion>' wireguard.check says why."
                    ),
                },
            },
        )
    ]
    key_comment = (
        ["max_key_age (days) in pillar: " + "; ".join(limits)]
        if limits
        else ["no minion's pillar sets max_key_age: this rule matches nothing until one does"]
    )
    rules.append(
        (
            key_comment,
            {
                "alert": "WireGuardKeyTooOld",
                "expr": (
                    "wireguard_interface_key_age_seconds > wireguard_interface_max_key_age_seconds"
                ),
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": (
                        "WireGuard key of {{ $labels.interface }} on {{ $labels.instance }} "
                        "is older than max_key_age"
                    ),
                    "description": (
                        "The private key file is {{ $value | humanizeDuration }} old: rotate "
                        "it (salt-run wireguard.rotate_keys, docs/rotation.md)."
                    ),
                },
            },
        )
    )
    rules.append(
        (
            [f"{CLIENT_EXPIRY}: each client whose pillar (or group) sets expires"],
            {
                "alert": "WireGuardClientExpiresSoon",
                "expr": f"{CLIENT_EXPIRY} - time() < {EXPIRY_DAYS} * 86400",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": (
                        "WireGuard client {{ $labels.peer }} on {{ $labels.interface }} of "
                        "{{ $labels.instance }} expires within 7 days"
                    ),
                },
            },
        )
    )
    rules += _stale_rules(minions)
    lines = [
        "# Prometheus alerting rules of the wireguard formula, made by",
        f"# salt-run wireguard.alert_rules from the pillar of {len(minions)} minion(s).",
        *(
            [wgf_addr.LINE_BREAKING.sub("?", f"# left out (pillar not read): {', '.join(skipped)}")]
            if skipped
            else []
        ),
        "groups:",
        f"  - name: {GROUP}",
        "    rules:",
    ]
    for comments, rule in rules:
        lines += [f"      # {c}" for c in comments]
        dumped = yaml.safe_dump([rule], sort_keys=False, default_flow_style=False, width=1000)
        lines += ["      " + line for line in dumped.splitlines()]
    return "\n".join(lines) + "\n"
