"""Every change live (issue 12): the running interface is reconciled to its config in
full, and restarted only where Linux cannot change it in place.

One small deployment for the whole module: host `live-a` (the one changed) runs wg0 with
two peers, `live-b` and `live-c`; `live-c` is the peer that does not change. During every
live change A pings C 20 times a second, and no reply may be missing; wg0 keeps its
ifindex and its wireguard-go process. After every change the live interface must be
exactly what `systemctl restart wg-quick@wg0` builds from the file just written: its
fingerprint (wg settings and peers, addresses and MTU, routes in every table, policy
rules, /etc/resolv.conf) is taken before and after such a restart, and must not change.

A starts with a hand-written config that the formula adopts (the first test); later
tests apply A's pillar through the real salt-master.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.e2e.fingerprint import assert_restart_builds_the_same, fingerprint
from tests.e2e.traffic import steady_ping
from tests.lab.saltmaster import describe_failures, summarize
from tests.lab.util import LabError
from tests.support.keys import keypair

A, B, C = "live-a", "live-b", "live-c"
UNDERLAY = {A: "198.18.0.1", B: "198.18.0.2", C: "198.18.0.3"}
TUNNEL = {A: ("10.40.0.1", "fd40::1"), B: ("10.40.0.2", "fd40::2"), C: ("10.40.0.3", "fd40::3")}
PORT = 51820
UNIT = "wg-quick@wg0"
# an address outside the tunnel's subnets that B answers for (on its loopback)
BEYOND_B = "172.31.7.7"
STATIC_ROUTE = "172.31.9.0/24"
SPARE_TABLE = 1234
CONF = "/etc/wireguard/wg0.conf"
HEADER = "# Managed by Salt"


# -------------------------------------------------------------------- live readings
def wg_pid(host) -> int:
    """The wireguard-go process behind wg0 (there is exactly one)."""
    pids = host.out("pidof wireguard-go", check=False).split()
    assert len(pids) == 1, f"{host.name}: wireguard-go processes: {pids}"
    return int(pids[0])


def routes_to(host, dst: str) -> list[tuple]:
    """The device's routes (every table) whose destination is `dst`."""
    return [r for r in fingerprint(host)["routes"] if r[0] in (dst, dst.split("/")[0])]


# ---------------------------------------------------------------------- deployment
class LiveDeployment:
    """A, B and C on one underlay switch; A's wg0 pillar is what each test sets."""

    def __init__(self, lab):
        self.lab = lab
        self.keys = {h: keypair() for h in (A, B, C)}
        self.hosts = {}
        self.current: dict | None = None  # A's wg0 pillar last applied (None: unknown)

    def __getitem__(self, name):
        return self.hosts[name]

    # -- pillar ---------------------------------------------------------------------
    def peer(self, name: str) -> dict:
        v4, v6 = TUNNEL[name]
        return {
            "public_key": self.keys[name].public,
            "endpoint": f"{UNDERLAY[name]}:{PORT}",
            "allowed_ips": [f"{v4}/32", f"{v6}/128"],
            "persistent_keepalive": 25,
        }

    def interface(self, name: str, peers) -> dict:
        v4, v6 = TUNNEL[name]
        return {
            "address": [f"{v4}/24", f"{v6}/64"],
            "listen_port": PORT,
            "private_key": self.keys[name].private,
            "peers": {p: self.peer(p) for p in peers},
        }

    def base(self) -> dict:
        """A's wg0 as the module starts it: two peers, nothing else."""
        return self.interface(A, (B, C))

    def pillars(self, a_wg0: dict) -> dict:
        def of(wg0):
            return {"wireguard": {"interfaces": {"wg0": wg0}}}

        return {A: of(a_wg0), B: of(self.interface(B, (A,))), C: of(self.interface(C, (A,)))}

    # -- set-up ---------------------------------------------------------------------
    def build(self) -> LiveDeployment:
        inet = self.lab.bridge("live-inet")
        for name in (A, B, C):
            self.hosts[name] = self.lab.container(name)
            inet.attach(self.hosts[name], "eth0", f"{UNDERLAY[name]}/24")
        self.hosts[B].ip("addr", "add", f"{BEYOND_B}/32", "dev", "lo")
        self.lab.wait_ready()
        self.apply(self.base(), [B, C])
        a = self.hosts[A]
        a.write(CONF, hand_written(self.keys, self.peer), mode=0o600)
        a.run(["systemctl", "enable", "--now", UNIT])
        self.reachable()
        return self

    # -- salt -----------------------------------------------------------------------
    def apply(self, a_wg0: dict, minions=(A,), check: bool = True, test: bool = False) -> dict:
        """A's wg0 pillar (B and C as always) on the master, then `salt MINIONS
        state.apply wireguard`; with `check`, a failed state fails the test (with
        `test`, the test looks at the predictions itself)."""
        kwargs = {"test": True} if test else {}
        ret = self.lab.master.state_apply(list(minions), self.pillars(a_wg0), check=False, **kwargs)
        failures = describe_failures(ret)
        missing = sorted(set(minions) - set(ret))
        if check and not test and (failures or missing):
            journals = "".join(
                f"\n--- {m}: journalctl -u {UNIT}\n"
                + self.hosts[m].out(
                    ["journalctl", "-u", UNIT, "-n", "15", "--no-pager", "-o", "cat"], check=False
                )
                for m in minions
            )
            raise LabError(
                f"state.apply wireguard on {', '.join(minions)} failed\n"
                f"{failures}{' no answer from ' if missing else ''}{missing or ''}"
                f"{journals}"
            )
        if A in minions and not test:
            self.current = copy.deepcopy(a_wg0) if not (failures or missing) else None
        return ret

    def ensure(self, a_wg0: dict) -> None:
        """A runs `a_wg0` (applied only when it is not what A runs already)."""
        if self.current != a_wg0:
            self.apply(a_wg0)
        self.reachable()

    def reachable(self) -> None:
        for dst in TUNNEL[C][0], TUNNEL[B][0]:
            res = self.hosts[A].ping_until(dst, within=30)
            assert res.received, f"{A} cannot reach {dst}: {res}"


def hand_written(keys, peer) -> str:
    """A's wg0.conf as a person writes it: other key order, comments, `Address = a, b`
    on one line, peers in another order, odd spacing. It means what base() says."""
    c, b = peer(C), peer(B)
    return f"""\
# wg0, set up by hand long before Salt
[Interface]
ListenPort={PORT}
Address = {TUNNEL[A][0]}/24, {TUNNEL[A][1]}/64   # both families
PrivateKey = {keys[A].private}

[Peer]
# C
PublicKey = {c["public_key"]}
AllowedIPs = {c["allowed_ips"][0]},{c["allowed_ips"][1]}
PersistentKeepalive = 25
Endpoint = {c["endpoint"]}

[Peer]
AllowedIPs = {", ".join(b["allowed_ips"])}
Endpoint = {b["endpoint"]}
PublicKey = {b["public_key"]}
PersistentKeepalive = 25
"""


# -------------------------------------------------------------------- state returns
def state_returns(ret: dict, function: str, minion: str = A) -> list[dict]:
    """The returns of the `wireguard.<function>` states for wg0 on `minion`."""
    states = ret.get(minion)
    assert isinstance(states, dict), f"{minion}: {states}"
    found = []
    for key, result in states.items():
        parts = key.split("_|-")
        if parts[0] == "wireguard" and parts[-1] == function and parts[-2] == "wg0":
            found.append(result)
    return found


def config_changes(ret: dict) -> dict:
    (config,) = state_returns(ret, "config")
    return config.get("changes") or {}


def restart_reason(ret: dict) -> str:
    """What the wireguard.config state's changes say besides the diff (the restart and
    why), as text."""
    return json.dumps({k: v for k, v in config_changes(ret).items() if k != "diff"})


def live_changes(ret: dict) -> dict:
    """Every change the wireguard states report for wg0 on A, merged by key."""
    merged = {}
    for states in (ret.get(A) or {}).values():
        merged.update(states.get("changes") or {})
    return merged


# --------------------------------------------------------------------------- fixture
@pytest.fixture(scope="module")
def live(lab):
    with lab.section():
        yield LiveDeployment(lab).build()


# ------------------------------------------------------------------------ adoption
def test_a_running_hand_written_config_is_adopted_without_a_restart(live):
    a = live[A]
    assert live.current is None, "A must still run its hand-written config"
    ifindex, pid = a.ifindex("wg0"), wg_pid(a)
    with steady_ping(a, TUNNEL[C][0]) as ping:
        ret = live.apply(live.base())
    assert "restart" not in restart_reason(ret), restart_reason(ret)
    assert a.ifindex("wg0") == ifindex, "adopting the hand-written config recreated wg0"
    assert wg_pid(a) == pid, "adopting the hand-written config restarted wireguard-go"
    ping.check("adoption")
    conf = a.read(CONF)
    assert conf.startswith(HEADER), f"{CONF} was not rewritten in the formula's format"
    assert f"Address = {TUNNEL[A][0]}/24, {TUNNEL[A][1]}/64" in conf
    again = summarize(live.apply(live.base()))[A]
    assert again["changed"] == 0, f"the second apply changed {again['changed_ids']}"
    assert_restart_builds_the_same(a)


# ---------------------------------------------------------------------- live changes
def with_address(cidr):
    return lambda wg0: wg0["address"].append(cidr)


def setting(key, value):
    return lambda wg0: wg0.update({key: value})


def widened(wg0):
    wg0["peers"][B]["allowed_ips"].append(f"{BEYOND_B}/32")


def without_b(wg0):
    del wg0["peers"][B]


# More than 200 peers whose AllowedIPs are all on-link: the formula's file says
# Table = off (wg-quick would ask `ip route show ... match` once per AllowedIP at start
# and add no route); one off-link AllowedIP brings table auto back. Neither restarts.
ON_LINK_PEERS = 201


@functools.cache
def road_warrior_keys() -> tuple[str, ...]:
    """Public keys of the hub's other peers (no device behind them)."""
    return tuple(keypair().public for _ in range(ON_LINK_PEERS - 2))


def big_on_link_hub(wg0):
    for n, public in enumerate(road_warrior_keys(), start=4):
        wg0["peers"][f"rw{n}"] = {"public_key": public, "allowed_ips": [f"10.40.0.{n}/32"]}


def table_off(present):
    def check(a):
        assert ("Table = off" in a.read(CONF).splitlines()) is present, a.read(CONF)[:400]
        assert len(a.out(["wg", "show", "wg0", "peers"]).split()) == ON_LINK_PEERS

    return check


def all_of(*checks):
    def check(a):
        for one in checks:
            one(a)

    return check


def both(*changes):
    def change(wg0):
        for one in changes:
            one(wg0)

    return change


def has_address(cidr, present=True):
    def check(a):
        shown = a.out(["ip", "-br", "addr", "show", "dev", "wg0"])
        assert (cidr in shown.split()) == present, shown

    return check


def has_mtu(mtu):
    def check(a):
        shown = a.out(["ip", "link", "show", "dev", "wg0"])
        assert f"mtu {mtu} " in shown, shown

    return check


def wg_shows(what, value):
    def check(a):
        assert a.out(["wg", "show", "wg0", what]).strip() == value

    return check


def resolv_conf(*present, absent=()):
    def check(a):
        text = a.read("/etc/resolv.conf")
        for line in present:
            assert line in text.splitlines(), f"/etc/resolv.conf lacks {line!r}:\n{text}"
        for line in absent:
            assert line not in text.splitlines(), f"/etc/resolv.conf has {line!r}:\n{text}"

    return check


def static_route(a):
    assert a.out(["ip", "route", "show", STATIC_ROUTE, "dev", "wg0", "proto", "static"])


def beyond_b_reachable(a):
    assert routes_to(a, BEYOND_B), "no route to the widened AllowedIP"
    assert f"{BEYOND_B}/32" in a.out(["wg", "show", "wg0", "allowed-ips"])
    res = a.ping(BEYOND_B, count=3)
    assert res.ok, f"{A} cannot reach {BEYOND_B} through the tunnel right after the apply: {res}"


def beyond_b_gone(a):
    assert not routes_to(a, BEYOND_B), routes_to(a, BEYOND_B)
    assert f"{BEYOND_B}/32" not in a.out(["wg", "show", "wg0", "allowed-ips"])


def b_gone(a):
    assert len(a.out(["wg", "show", "wg0", "peers"]).split()) == 1, "B is still a peer"
    assert f"{TUNNEL[B][0]}/32" not in a.out(["wg", "show", "wg0", "allowed-ips"])
    beyond_b_gone(a)


def routed_into_spare_table(a):
    found = routes_to(a, BEYOND_B)
    assert [r[1] for r in found] == [str(SPARE_TABLE)], found
    for peer in (B, C):
        assert [r[1] for r in routes_to(a, TUNNEL[peer][0])] == [str(SPARE_TABLE)]


@dataclass
class Change:
    """A's wg0 goes from `before` to `after` (both changes of base()), and `visible`
    checks it on the running interface."""

    id: str
    after: Callable[[dict], None]
    visible: Callable
    before: Callable[[dict], None] | None = None
    # replies that may be lost: a new listen port closes the old socket, and a reply
    # already on its way to it (one at most, at 20 a second and a sub-ms RTT) has no
    # socket to land on; the next request from the new port moves the peer's endpoint
    may_lose: int = 0


def nothing(wg0):
    return None


# nameservers that refuse at once (B and C run no DNS server): a resolver that waited
# for a silent one would stall every lookup in the minion's run for seconds
DNS1, DNS2 = TUNNEL[C][0], TUNNEL[B][0]
LIVE_CHANGES = [
    Change("ipv4-address-added", with_address("10.41.0.1/24"), has_address("10.41.0.1/24")),
    Change(
        "ipv4-address-removed",
        nothing,
        has_address("10.41.0.1/24", False),
        before=with_address("10.41.0.1/24"),
    ),
    Change("ipv6-address-added", with_address("fd41::1/64"), has_address("fd41::1/64")),
    Change(
        "ipv6-address-removed",
        nothing,
        has_address("fd41::1/64", False),
        before=with_address("fd41::1/64"),
    ),
    Change("mtu-set", setting("mtu", 1380), has_mtu(1380)),
    Change("mtu-unset", nothing, has_mtu(1420), before=setting("mtu", 1380)),
    Change(
        "listen-port",
        setting("listen_port", PORT + 1),
        wg_shows("listen-port", "51821"),
        may_lose=1,
    ),
    Change("fwmark-set", setting("fwmark", 0x4D2), wg_shows("fwmark", "0x4d2")),
    Change("fwmark-removed", nothing, wg_shows("fwmark", "off"), before=setting("fwmark", 0x4D2)),
    Change("dns-added", setting("dns", [DNS1]), resolv_conf(f"nameserver {DNS1}")),
    Change(
        "dns-changed",
        setting("dns", [DNS2, "lab.test"]),
        resolv_conf(f"nameserver {DNS2}", "search lab.test", absent=[f"nameserver {DNS1}"]),
        before=setting("dns", [DNS1]),
    ),
    Change(
        "dns-removed",
        nothing,
        resolv_conf(absent=[f"nameserver {DNS2}"]),
        before=setting("dns", [DNS2, "lab.test"]),
    ),
    Change("routes", setting("routes", [STATIC_ROUTE]), static_route),
    Change("allowed-ips-widened", widened, beyond_b_reachable),
    Change("allowed-ips-narrowed", nothing, beyond_b_gone, before=widened),
    Change("peer-removed", without_b, b_gone, before=widened),
    Change(
        "allowed-ips-widened-table-number",
        both(setting("table", SPARE_TABLE), widened),
        routed_into_spare_table,
        before=setting("table", SPARE_TABLE),
    ),
    Change("big-on-link-hub", big_on_link_hub, table_off(True)),
    Change(
        "big-on-link-hub-allowed-ips-widened",
        both(big_on_link_hub, widened),
        all_of(table_off(False), beyond_b_reachable),
        before=big_on_link_hub,
    ),
    Change(
        "big-on-link-hub-allowed-ips-narrowed",
        big_on_link_hub,
        all_of(table_off(True), beyond_b_gone),
        before=both(big_on_link_hub, widened),
    ),
]


def changed(base: dict, change) -> dict:
    wg0 = copy.deepcopy(base)
    (change or nothing)(wg0)
    return wg0


@pytest.mark.parametrize("change", LIVE_CHANGES, ids=[c.id for c in LIVE_CHANGES])
def test_change_is_applied_live_and_matches_a_restart(live, change):
    a = live[A]
    live.ensure(changed(live.base(), change.before))
    ifindex, pid = a.ifindex("wg0"), wg_pid(a)
    with steady_ping(a, TUNNEL[C][0]) as ping:
        ret = live.apply(changed(live.base(), change.after))
    assert summarize(ret)[A]["changed"] > 0, "the apply reported no change"
    assert "restart" not in restart_reason(ret), restart_reason(ret)
    assert a.ifindex("wg0") == ifindex, f"{change.id}: wg0 was recreated"
    assert wg_pid(a) == pid, f"{change.id}: wireguard-go was restarted"
    ping.check(change.id, change.may_lose)
    change.visible(a)
    assert_restart_builds_the_same(a)


def test_private_key_change_is_live(live):
    """A's key changes in pillar; B and C get A's new public key in theirs, all three
    applied together. C changes too here, so the steady ping does not apply: A keeps
    its interface and process and reaches both peers again with the new key."""
    a = live[A]
    live.ensure(live.base())
    ifindex, pid = a.ifindex("wg0"), wg_pid(a)
    old = live.keys[A]
    live.keys[A] = keypair()
    try:
        live.apply(live.base(), [A, B, C])
    except BaseException:
        live.keys[A] = old
        raise
    assert a.out(["wg", "show", "wg0", "public-key"]).strip() == live.keys[A].public
    assert a.ifindex("wg0") == ifindex, "a new private key recreated wg0"
    assert wg_pid(a) == pid, "a new private key restarted wireguard-go"
    live.reachable()
    assert_restart_builds_the_same(a)


# ----------------------------------------------------------------------- restarts
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(
            setting("post_up", ["touch /run/wgtest-post-up-%i"]), "hook|post_up", id="hook-added"
        ),
        pytest.param(setting("table", "off"), "table", id="table-auto-to-off"),
    ],
)
def test_what_linux_cannot_change_in_place_restarts_and_says_why(live, change, reason):
    a = live[A]
    live.ensure(live.base())
    ifindex = a.ifindex("wg0")
    ret = live.apply(changed(live.base(), change))
    assert a.ifindex("wg0") != ifindex, "the change did not restart wg0"
    why = restart_reason(ret)
    assert re.search(reason, why, re.I), f"the config state's changes do not say why: {why}"
    if "post_up" in reason:
        assert a.file_exists("/run/wgtest-post-up-wg0"), "the new PostUp hook did not run"
    live.reachable()
    assert_restart_builds_the_same(a)


# ------------------------------------------------------------ systemd's start limit
LIMIT_DROPIN_DIR = f"/run/systemd/system/{UNIT}.service.d"
TOO_OFTEN = "attempted too often"
HOOK_MARK = "/run/wgtest-start-limit-%i"


@contextlib.contextmanager
def start_limit_held(host):
    """systemd's default start limit (5 starts) counted over 10 minutes instead of 10 s
    (a runtime drop-in), so the apply meets the limit however slow the lab is; gone
    afterwards."""
    host.run(
        [
            "sh",
            "-c",
            f"mkdir -p {LIMIT_DROPIN_DIR} && printf '[Unit]\\n"
            "StartLimitIntervalSec=600\\nStartLimitBurst=5\\n' > "
            f"{LIMIT_DROPIN_DIR}/test-start-limit.conf",
        ]
    )
    host.run(["systemctl", "daemon-reload"])
    try:
        yield
    finally:
        host.run(["rm", "-rf", LIMIT_DROPIN_DIR])
        host.run(["systemctl", "daemon-reload"])
        host.run(["systemctl", "reset-failed", UNIT], check=False)
        host.run(["systemctl", "start", UNIT], check=False)


def restart_to_the_limit(host, refused: bool) -> None:
    """Restart wg0's unit until systemd allows no further start; with `refused`, once
    more: systemd refuses that start, the unit has failed and wg0 is gone."""
    host.run(["systemctl", "reset-failed", UNIT])
    for _ in range(5):
        host.run(["systemctl", "restart", UNIT])
    if refused:
        res = host.run(["systemctl", "restart", UNIT], check=False)
        assert res.returncode != 0 and TOO_OFTEN in res.stderr, res.stderr
        assert host.ifindex("wg0") is None, "wg0 is up although systemd refused its start"
        shown = host.out(["systemctl", "show", "-p", "Result", "--value", UNIT]).strip()
        assert shown == "start-limit-hit", shown


@pytest.mark.parametrize("refused", [False, True], ids=["at-the-limit", "refused-and-down"])
def test_a_restart_at_systemds_start_limit_still_applies(live, refused):
    """Restarts in a row bring wg-quick@wg0 to systemd's start limit (or past it: wg0 is
    down); an apply that needs a restart then resets the limit, starts wg0 from the new
    file and says so."""
    a = live[A]
    live.ensure(live.base())
    a.run(["rm", "-f", HOOK_MARK.replace("%i", "wg0")])
    wanted = changed(live.base(), setting("post_up", [f"touch {HOOK_MARK}"]))
    with start_limit_held(a):
        restart_to_the_limit(a, refused)
        if refused:  # test=True predicts the reset and does nothing
            (predicted,) = state_returns(live.apply(wanted, test=True), "config")
            assert predicted["result"] is None, predicted
            assert "start_limit_reset" in predicted["changes"], predicted
            assert "would be reset" in predicted["comment"], predicted["comment"]
            assert (
                a.out(["systemctl", "show", "-p", "Result", "--value", UNIT]).strip()
                == "start-limit-hit"
            ), "test=True reset the unit"
            assert a.ifindex("wg0") is None, "test=True started wg0"
        ret = live.apply(wanted)
        changes = config_changes(ret)
        if refused:
            assert changes.get("start_limit_reset", {}).get("service") == UNIT, changes
        else:
            assert changes["restarted"].get("start_limit_reset") is True, changes
        assert "start limit" in state_returns(ret, "config")[0]["comment"]
        assert a.unit_state(UNIT)[0] == "active"
        assert a.file_exists(HOOK_MARK.replace("%i", "wg0")), "wg0 did not start from the new file"
        live.reachable()


def test_a_failing_restart_at_the_start_limit_puts_the_old_file_back_and_runs(live):
    """At systemd's start limit, a new file whose hook fails: the formula's restart is
    refused, then fails on its own; the previous file is put back and wg0 runs again."""
    a = live[A]
    live.ensure(live.base())
    conf = a.read(CONF)
    failing = changed(live.base(), setting("post_up", ["sh -c 'echo hook refused >&2; exit 1'"]))
    with start_limit_held(a):
        restart_to_the_limit(a, refused=False)
        ret = live.apply(failing, check=False)
        (state,) = state_returns(ret, "config")
        assert state["result"] is False, state
        assert "previous file was put back and is running again" in state["comment"], state
        assert "hook refused" in state["comment"], state["comment"]
        assert a.read(CONF) == conf, "the previous config file was not put back"
        assert a.unit_state(UNIT)[0] == "active"
        assert a.ifindex("wg0") is not None, "wg0 is down after the failed restart"
        live.reachable()
    assert_restart_builds_the_same(a)


def test_default_route_setup_matches_a_restart(live):
    """A /0 in AllowedIPs with table auto (wg-quick's policy rules, fwmark and
    suppress_prefixlength): live or by a restart, the result is what a restart builds,
    and a restart is explained."""
    a = live[A]
    live.ensure(live.base())
    ifindex = a.ifindex("wg0")

    def default_via_c(wg0):
        wg0["peers"][C]["allowed_ips"].append("0.0.0.0/0")

    ret = live.apply(changed(live.base(), default_via_c))
    rules = fingerprint(a)["rules"]
    assert any("suppress_prefixlen" in r for r in rules), rules
    if a.ifindex("wg0") != ifindex:
        assert re.search(r"0\.0\.0\.0/0|default", restart_reason(ret)), restart_reason(ret)
    live.reachable()
    assert_restart_builds_the_same(a)
    # and back: the rules go
    live.apply(live.base())
    assert not any("suppress_prefixlen" in r for r in fingerprint(a)["rules"])
    assert_restart_builds_the_same(a)


# ------------------------------------------------------------------ test=True, rollback
def test_test_mode_predicts_the_live_changes_and_touches_nothing(live):
    a = live[A]
    live.ensure(live.base())
    before, conf, ifindex = fingerprint(a), a.read(CONF), a.ifindex("wg0")
    wanted = changed(
        live.base(),
        both(
            with_address("10.45.0.1/24"),
            setting("mtu", 1380),
            setting("listen_port", PORT + 2),
            setting("routes", [STATIC_ROUTE]),
            widened,
        ),
    )
    ret = live.apply(wanted, test=True)
    predicted = live_changes(ret)
    for key in ("address", "mtu", "routes", "listen_port"):
        assert key in predicted, f"test=True does not predict {key}: {sorted(predicted)}"
        assert set(predicted[key]) >= {"old", "new"}, predicted[key]
    assert str(predicted["mtu"]["new"]) == "1380" and str(predicted["mtu"]["old"]) == "1420"
    assert str(predicted["listen_port"]["new"]) == str(PORT + 2)
    assert "10.45.0.1/24" in json.dumps(predicted["address"]["new"])
    assert STATIC_ROUTE in json.dumps(predicted["routes"]["new"]), predicted["routes"]
    assert f"{BEYOND_B}/32" in json.dumps(predicted["routes"]["new"]), (
        f"the route of the widened AllowedIPs is not predicted: {predicted['routes']}"
    )
    for state in ret[A].values():
        assert state["result"] in (True, None), state
    assert fingerprint(a) == before, "test=True changed the live interface"
    assert a.read(CONF) == conf, "test=True wrote the config file"
    assert a.ifindex("wg0") == ifindex


def test_a_half_failed_live_change_is_rolled_back(live):
    """IPv6 disabled on wg0 makes the kernel refuse IPv6 addresses: the IPv4 address
    and the MTU of the same run are put back, and the state names the failed step."""
    a = live[A]
    live.ensure(live.base())
    a.run(["sysctl", "-q", "-w", "net.ipv6.conf.wg0.disable_ipv6=1"])
    try:
        before, conf = fingerprint(a), a.read(CONF)
        ifindex, pid = a.ifindex("wg0"), wg_pid(a)
        wanted = changed(
            live.base(),
            both(with_address("10.44.0.1/24"), with_address("fd44::1/64"), setting("mtu", 1380)),
        )
        ret = live.apply(wanted, check=False)
        failed = [s for s in ret[A].values() if s["result"] is False]
        assert failed, "the apply did not fail although the kernel refused an address"
        comments = " | ".join(str(s.get("comment")) for s in failed)
        assert re.search(r"fd4[04]::1", comments) and re.search(r"addr", comments, re.I), (
            f"the failure does not name the step: {comments}"
        )
        assert fingerprint(a) == before, "the half-done change was not rolled back"
        assert a.read(CONF) == conf, "the previous config file was not put back"
        assert (a.ifindex("wg0"), wg_pid(a)) == (ifindex, pid)
    finally:
        a.run(["sysctl", "-q", "-w", "net.ipv6.conf.wg0.disable_ipv6=0"])
        live.current = None
    live.ensure(live.base())
    has_address(f"{TUNNEL[A][1]}/64")(a)
    assert_restart_builds_the_same(a)


# -------------------------------------------------------------------------- reboot
def test_reboot_brings_back_the_same_interface(live):
    a = live[A]
    live.ensure(
        changed(
            live.base(),
            both(
                setting("dns", [DNS1]),
                setting("mtu", 1400),
                setting("routes", [STATIC_ROUTE]),
                widened,
            ),
        )
    )
    before = fingerprint(a)
    a.reboot()
    assert a.unit_state(UNIT) == ("active", "enabled")
    live.reachable()
    assert fingerprint(a) == before
    live.lab.master.wait_minions([A], timeout=60)
