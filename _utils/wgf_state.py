"""What the formula's state modules share: the shape of a state's return, a restart
that copes with systemd's start limit and puts the old config back, and what several
state files ask of the minion in one call (``Minion``: its live peers, read once per
run, the peer diff, pillar's keys). Plain Python: the states hand in their dunders and
the host adapter."""

import contextlib
import ipaddress

from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_files
import wgf_gc
import wgf_keys
import wgf_layout
import wgf_schema


def loaded(salt, virtualname):
    """A state file's ``__virtual__``: it loads with the execution module it calls."""
    if "wireguard.show" not in salt:
        return (False, "The wireguard execution module did not load")
    return virtualname


def ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def pending(result, comment, test):
    """``result`` for test mode when there are changes (None), or after applying them."""
    result["comment"] = comment
    if test:
        result["result"] = None
    return result


def failed(result, exc):
    result.update(result=False, changes={}, comment=str(exc))
    return result


# ------------------------------------------------------------------ restarts

#: systemd refuses to start a unit that was started more than ``StartLimitBurst`` times
#: within ``StartLimitIntervalSec`` (5 in 10 s by default), until the interval has
#: passed or ``systemctl reset-failed`` flushes its counter. The unit's ``Result`` is
#: then this, and systemctl says the start "was attempted too often".
START_LIMIT_HIT = "start-limit-hit"
START_LIMIT_SAID = "attempted too often"


def start_limit_hit(result, said=""):
    """Whether systemd refused a start for the unit's start limit: ``result`` is the
    unit's ``Result`` property (None without systemd), ``said`` what the start said."""
    return result == START_LIMIT_HIT or START_LIMIT_SAID in (said or "")


def config_comment(path, service, restart, result, test=False):
    """The comment of a config state with changes: the file, the restart and why, and
    whether systemd's start limit of ``service`` was (in test mode: would be) reset."""
    changes = result["changes"]
    if set(changes) == {"start_limit_reset"}:
        comment = f"{path} is as pillar says"
    elif test:
        comment = f"{path} would be updated" + (f" and {service} restarted" if restart else "")
    else:
        comment = f"{path} updated" + (
            f"; {service} restarted because {restart}" if restart else ""
        )
    if "start_limit_reset" in changes or changes.get("restarted", {}).get("start_limit_reset"):
        comment += (
            f"; systemd's start limit of {service} {'would be' if test else 'was'} "
            "reset (it had refused to start it again so soon)"
        )
    return comment


def _attempt(restart):
    """``restart()``: Salt's service modules return False or raise when it fails."""
    try:
        return None if restart() else "the service did not start"
    except CommandExecutionError as exc:
        return str(exc) or "the service did not start"


def restarted(restart, result=None, reset_failed=None):
    """Restart a service; returns ``(None, limited)`` when it runs again, else ``(what
    it said, limited)``. ``limited``: systemd had refused the start for the unit's
    start limit, so its failed state and start counter were reset (``reset_failed()``)
    and it was restarted once more. A start that fails on its own is not retried.

    ``result()`` and ``reset_failed()`` are systemd's (``systemctl show -p Result``,
    ``systemctl reset-failed``); without systemd (OpenRC) they are None and a failed
    restart is what it is. Why not a drop-in raising the unit's limit instead: the
    limit is the admin's (it guards every unit against restart loops, and a drop-in
    would change it for starts the formula does not make); the formula restarts once
    per changed config, so it clears only the refusal of its own restart."""
    error = _attempt(restart)
    if error is None or result is None or reset_failed is None:
        return error, False
    try:
        limited = start_limit_hit(result(), error)
    except CommandExecutionError:
        limited = start_limit_hit(None, error)
    if not limited:
        return error, False
    try:
        reset_failed()
    except CommandExecutionError as exc:  # the caller still puts the old file back
        return f"{error} ({exc})", False
    return _attempt(restart), True


def restart_with_fallback(service, path, restart, put_back, said, result=None, reset_failed=None):
    """Restart ``service`` after its config ``path`` changed; returns whether systemd's
    start limit had to be reset (see ``restarted``). When the restart fails,
    ``put_back()`` restores the previous file (None: there was none) and the service
    is restarted with it the same way, so an interface that was up before stays up;
    then raises CommandExecutionError with what ``said()`` (the service's log) says.
    """
    error, limited = restarted(restart, result, reset_failed)
    if error is None:
        return limited
    log = said()
    if put_back is None:
        raise CommandExecutionError(f"{service} failed to restart: {log}")
    put_back()
    again, _ = restarted(restart, result, reset_failed)
    raise CommandExecutionError(
        f"{service} failed with the new {path}, so the previous file was put back"
        f"{' and is running again' if again is None else ' (which failed too)'}. "
        f"The service said: {log}"
    )


# ------------------------------------------------------------- one state call


class NotUpYet(Exception):
    """In test mode: the interface is not up yet, its service would start it."""


def guarded(ret, func, *args, waits=False):
    """The one place state errors are caught and turned into a failed result. The state
    runs with the garbage collector paused (``wgf_gc``), unless it ``waits`` (confirm's
    probes, up to their deadline): a pause is for building data, not for minutes."""
    try:
        with contextlib.nullcontext() if waits else wgf_gc.paused():
            return func(ret, *args)
    except NotUpYet as exc:
        ret.update(
            result=None,
            changes={},
            comment=(
                f"Interface {exc} is not up yet: it gets its peers from its config file "
                "when its service starts"
            ),
        )
        return ret
    except (CommandExecutionError, SaltInvocationError) as exc:
        return failed(ret, exc)


#: ``__context__`` keys: each interface's live state read once per run, and the config
#: file a run replaced (put back should a live change of the same run fail).
LIVE = "wireguard.live"
#: Set in a cached live interface once a state of the run changed a peer's endpoint (wg
#: resolves it: the cache no longer knows it), so whoever needs endpoints reads again.
ENDPOINTS_FORGOTTEN = "endpoints_forgotten"
PREVIOUS_CONF = "wireguard.previous_conf"
#: The endpoints a running interface knew before a state made it anew (a restart, a
#: backend switch), for the interface that is built: ``{interface: {key: endpoint}}``.
LEARNED_ENDPOINTS = "wireguard.learned_endpoints"


class Minion:
    """What the state files share about the minion in one state call: Salt's
    ``__salt__``, ``__opts__`` and ``__context__`` (handed in: this file names no
    dunder) and the host adapter (``wgf_host.Host``, or the tests' fake) that runs
    every command and write."""

    def __init__(self, salt, opts, context, host):
        self.salt, self.opts, self.context, self.host = salt, opts, context, host

    @property
    def test(self):
        return bool(self.opts["test"])

    def pending(self, result, comment):
        return pending(result, comment, self.opts["test"])

    def config_dir(self, config_dir):
        """The argument, else pillar's lookup:config_dir; checked either way."""
        return self.salt["wireguard_layout.config_dir"](config_dir)

    def declared(self, interface, config_dir):
        """Pillar's validated interface, or None."""
        return self.salt["wireguard.pillar_interfaces"](config_dir=config_dir).get(interface)

    def is_up(self, interface):
        return interface in self.salt["wireguard.interfaces"]()

    def live(self, interface):
        """The interface's live peers, read once per run."""
        cache = self.context.setdefault(LIVE, {})
        if interface not in cache:
            try:
                cache[interface] = self.salt["wireguard.show"](interface, psk_digests=True)[
                    interface
                ]
            except CommandExecutionError:
                if self.is_up(interface):
                    raise
                if self.test:
                    raise NotUpYet(interface) from None
                service = self.salt["wireguard.service_name"](interface)
                raise CommandExecutionError(
                    f"WireGuard interface '{interface}' is not up on this minion: start its "
                    f"service {service} first, or apply the wireguard formula"
                ) from None
        return cache[interface]

    def forget_live(self, interface=None):
        """Drop cached live state, after anything that may have changed it behind us."""
        if interface is None:
            self.context.pop(LIVE, None)
        else:
            self.context.get(LIVE, {}).pop(interface, None)

    def remember_endpoints(self, interface):
        """Keep, for this run, the endpoints the running ``interface``'s peers have: a
        road warrior or a site behind NAT has none in pillar, and the interface a
        restart builds knows it only from the peer's next handshake, which a peer that
        sends nothing starts when its session runs out (up to 3 minutes)."""
        peers = (self.live_or_none(interface) or {}).get("peers", {})
        found = {k: p["endpoint"] for k, p in peers.items() if p.get("endpoint")}
        if found:
            self.context.setdefault(LEARNED_ENDPOINTS, {})[interface] = found

    def carry_endpoints(self, interface):
        """Give the interface built anew each remembered endpoint its peers lack, so
        that this side can start the handshake. Once per remembering."""
        learned = self.context.get(LEARNED_ENDPOINTS, {}).pop(interface, None)
        live = self.live_or_none(interface) if learned else None
        if not live:
            return
        peers = live.get("peers", {})
        carried = [
            {"public_key": key, "endpoint": endpoint}
            for key, endpoint in sorted(learned.items())
            if key in peers and not peers[key].get("endpoint")
        ]
        if carried:
            self.salt["wireguard.apply_peers"](interface, peers=carried)
            self.forget_live(interface)

    def live_or_none(self, interface):
        """The live interface (``wireguard.show``), or None when it is not up."""
        try:
            return self.salt["wireguard.show"](interface)[interface]
        except (CommandExecutionError, KeyError):
            return None

    def peer_diff(self, interface, name, live, allowed_ips, endpoint, keepalive, psk):
        """Changes that bring the live peer ``live`` (or None) to the wanted attributes."""
        where = f"interface '{interface}', peer '{name}'"
        change = wgf_schema.normalise_peer_change(
            interface,
            {
                "public_key": name,
                "allowed_ips": allowed_ips or [],
                "endpoint": endpoint,
                "persistent_keepalive": keepalive or 0,
                "preshared_key": psk or "",
            },
        )
        live = live or {}
        diff, todo = {}, {"public_key": name}
        wanted_ips = _normalise_cidrs(change["allowed_ips"], f"{where}, allowed_ips")
        live_ips = _normalise_cidrs(live.get("allowed_ips", []), f"{where}, live allowed_ips")
        if not live or wanted_ips != live_ips:
            diff["allowed_ips"] = {"old": live_ips if live else None, "new": wanted_ips}
            todo["allowed_ips"] = wanted_ips
        if endpoint and (
            not live
            or live.get("endpoint")
            not in self.salt["wireguard.resolve_endpoint"](change["endpoint"])
        ):
            diff["endpoint"] = {"old": live.get("endpoint"), "new": change["endpoint"]}
            todo["endpoint"] = change["endpoint"]
        wanted_keepalive = change["persistent_keepalive"] or None
        if not live or live.get("persistent_keepalive") != wanted_keepalive:
            diff["persistent_keepalive"] = {
                "old": live.get("persistent_keepalive"),
                "new": wanted_keepalive,
            }
            todo["persistent_keepalive"] = wanted_keepalive or 0
        wanted_digest = wgf_keys.digest(psk) if psk else None
        live_digest = live.get("preshared_key_sha256")
        if wanted_digest != live_digest and (live or psk):
            diff["preshared_key"] = {
                "old": "set" if live_digest else "unset",
                "new": ("changed" if live_digest else "set") if psk else "unset",
            }
            todo["preshared_key"] = psk or ""
        return diff, todo

    def pillar_secrets(self, iface):
        """The keys pillar gives one validated interface, read here and nowhere else: they
        never pass through SLS, an execution function's return or a log."""
        pillar = self.salt["pillar.get"]("wireguard", {}, unmask=True)
        return wgf_schema.secrets_of(pillar, iface)

    def private_key_of(self, iface, config_dir):
        """The interface's private key: pillar's, else its key file's."""
        return self.pillar_secrets(iface)["private_key"] or wgf_files.read_key(
            wgf_layout.Layout(config_dir).key(iface["name"])
        )

    def client_peers_wanted(self, interface, config_dir):
        declared = self.declared(interface, config_dir)
        return {
            p["public_key"]: p
            for p in (declared or {}).get("peers", {}).values()
            if p.get("client")
        }

    def keep_previous(self, interface, path, text):
        """Remember the config file this run replaces (``text``; None: there was none)."""
        self.context.setdefault(PREVIOUS_CONF, {})[interface] = (path, text)

    def previous(self, interface):
        """``(path, text)`` of the config file this run replaced, or ``(None, None)``."""
        return self.context.get(PREVIOUS_CONF, {}).get(interface, (None, None))


def _normalise_cidrs(cidrs, where):
    try:
        return sorted({str(ipaddress.ip_network(c, strict=False)) for c in cidrs})
    except (TypeError, ValueError) as exc:
        raise SaltInvocationError(f"{where}: {exc}") from None


def remember(live, name, current, todo):
    """Update the cached live state with a change we made, instead of reading it again."""
    entry = dict(
        current
        or {
            "allowed_ips": [],
            "endpoint": None,
            "persistent_keepalive": None,
            "preshared_key_sha256": None,
        }
    )
    if "allowed_ips" in todo:
        entry["allowed_ips"] = todo["allowed_ips"]
    if "endpoint" in todo:
        entry["endpoint"] = None  # resolved by wg; read again if compared again
        live[ENDPOINTS_FORGOTTEN] = True
    if "persistent_keepalive" in todo:
        entry["persistent_keepalive"] = todo["persistent_keepalive"] or None
    if "preshared_key" in todo:
        entry["preshared_key_sha256"] = (
            wgf_keys.digest(todo["preshared_key"]) if todo["preshared_key"] else None
        )
    live["peers"][name] = entry


def client_psks(iface, config_dir):
    """``{client: preshared key}`` from the minion's files (made by ``clients``)."""
    found = {}
    for name, peer in iface["peers"].items():
        if peer.get("client") and peer["has_preshared_key"]:
            path = wgf_layout.Layout(config_dir).client_key(iface["name"], name, "psk")
            found[name] = wgf_files.read_key(path)
    return found
