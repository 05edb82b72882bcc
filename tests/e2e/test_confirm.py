"""Never cut off (issue 21), through a real master that the minions reach only through
the tunnel the formula manages ("Salt over the tunnel", tests/lab/tunnel.py).

The hub container runs the salt-master and is a WireGuard node; three spokes were
bootstrapped masterless (`salt-call --local`), then their salt-minions were pointed at
the hub's tunnel address. Every change below is applied from that master with `salt` /
`salt-run`, like a user would: a change that cuts a spoke off must come back by itself
(the job fails naming the reason and `undone`), a good one is confirmed, a killed
minion or a reboot before confirmation leaves the old config, the rollout stops at
a breaking canary, and a bad `confirm` (or an init that cannot undo alone) is refused
before anything changes. One lab for the whole file; confirm timeouts are short (6 s).
"""

from __future__ import annotations

import copy
import json
import pathlib
import re
import sys
import time

import pytest

from tests.e2e.events import Events
from tests.e2e.fingerprint import assert_restart_builds_the_same
from tests.e2e.traffic import steady_ping
from tests.lab.saltmaster import refusal
from tests.lab.tunnel import bootstrap, in_parallel, join
from tests.lab.util import LabError, wait_for

HUB = "tunhub"
SPOKES = ("tunspoke1", "tunspoke2", "tunspoke3")
S1, S2, S3 = SPOKES
INET = "198.18.21"
NET = "10.21.0"
HUB_IP = f"{NET}.1"
ADDR = {HUB: HUB_IP, S1: f"{NET}.11", S2: f"{NET}.12", S3: f"{NET}.13"}
UNDERLAY = {HUB: f"{INET}.1", S1: f"{INET}.11", S2: f"{INET}.12", S3: f"{INET}.13"}
PORT = 51820
TIMEOUT = 6
CONF = "/etc/wireguard/wg0.conf"
STATE_DIR = "/var/lib/wireguard-formula/confirm/wg0"
UNITS = (
    "wireguard-confirm-wg0.timer",
    "wireguard-confirm-wg0.service",
    "wireguard-confirm-restore-wg0.service",
)
EVENT = "wireguard/confirm/undone"
#: The reactor the formula ships for the event (sent at the next minion start).
REACTOR = "salt://reactor/wireguard-confirm.sls"
MASTER_FILES = {
    "/etc/salt/master.d/confirm-reactor.conf": (
        f"reactor:\n  - 'salt/minion/*/start':\n    - {REACTOR}\n"
    )
}
KEY_SHAPED = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


# ----------------------------------------------------------------------------- lab


def keypairs(host, names) -> dict:
    out = {}
    for name in names:
        private = host.out(["wg", "genkey"]).strip()
        public = host.out(["wg", "pubkey"], input=private + "\n").strip()
        out[name] = (private, public)
    return out


def base_pillars(keys) -> dict:
    """hub: every spoke a peer (its /32); each spoke: the hub (endpoint, keepalive) and,
    for tunspoke1 and tunspoke2, each other directly. Confirm on everywhere: the spokes
    probe their master (the hub, through the tunnel), the hub its peers."""
    hub_peers = {s: {"public_key": keys[s][1], "allowed_ips": [f"{ADDR[s]}/32"]} for s in SPOKES}
    pillars = {
        HUB: {
            "wireguard": {
                "lookup": {"confirm": {"timeout": TIMEOUT, "probes": ["peers"]}},
                "interfaces": {
                    "wg0": {
                        "address": f"{HUB_IP}/24",
                        "listen_port": PORT,
                        "private_key": keys[HUB][0],
                        "peers": hub_peers,
                        # the formula's firewall (and conntrack) from the start, so the
                        # spokes' connections are tracked from their first packet
                        "access": {"default": "accept"},
                    }
                },
            }
        }
    }
    for s in SPOKES:
        peers = {
            "hub": {
                "public_key": keys[HUB][1],
                "endpoint": f"{UNDERLAY[HUB]}:{PORT}",
                "allowed_ips": [f"{HUB_IP}/32"],
                "persistent_keepalive": 25,
            }
        }
        other = {S1: S2, S2: S1}.get(s)
        if other:
            peers[other] = {
                "public_key": keys[other][1],
                "endpoint": f"{UNDERLAY[other]}:{PORT}",
                "allowed_ips": [f"{ADDR[other]}/32"],
            }
        pillars[s] = {
            "wireguard": {
                "lookup": {"confirm": {"timeout": TIMEOUT, "probes": ["master"]}},
                "interfaces": {
                    "wg0": {
                        "address": f"{ADDR[s]}/24",
                        "listen_port": PORT,
                        "private_key": keys[s][0],
                        "peers": peers,
                    }
                },
            }
        }
    return pillars


class Tunnel:
    """The hub (master + WireGuard node), the spokes, their keys and base pillar."""

    def __init__(self, lab):
        self.lab = lab
        self.hub = lab.tunnel_master(HUB, files=MASTER_FILES)
        self.spokes = {s: lab.container(s, minion=False, formula=True) for s in SPOKES}
        self.hosts = {HUB: self.hub, **self.spokes}
        inet = lab.bridge("tun-inet")
        for name, host in self.hosts.items():
            inet.attach(host, "eth0", (f"{UNDERLAY[name]}/24",))
        self.hub.wait_booted()
        self.keys = keypairs(self.hub, self.hosts)
        self.base = base_pillars(self.keys)
        self.dirty: set[str] = set()  # minions a test applied something else to

    def up(self) -> None:
        # the hub's own minion talks to its master over loopback: apply from there
        self.hub.wait_minions([HUB], hosts={HUB: self.hub})
        self.hub.sync_all()
        self.hub.salt(HUB, "saltutil.sync_all", timeout=120)
        self.hub.state_apply(HUB, {HUB: self.base[HUB]})
        in_parallel(lambda s: bootstrap(self.spokes[s], self.base[s]), SPOKES)
        for s in SPOKES:
            self.spokes[s].ping_until(HUB_IP, within=20)
        join(self.hub, list(self.spokes.values()), HUB_IP)
        # the master's pillar of the spokes: what they bootstrapped with
        self.hub.write_pillar(self.base)

    def apply(self, minions, pillars=None, **kwargs) -> dict:
        """`salt MINIONS state.apply wireguard` from the hub, with `pillars` (default:
        the base) as the master's pillar; failures are returned, not raised."""
        self.dirty |= {minions} if isinstance(minions, str) else set(minions)
        return self.hub.state_apply(
            minions, pillars or self.base, check=False, timeout=120, **kwargs
        )

    def restore(self) -> None:
        """Back to the base pillar on the minions a test changed (each answering the
        master first: a restarted or rebooted minion takes a moment), then each spoke
        handshakes with the hub. With none changed, only the master's pillar is the
        base again (a refused run changed nothing else)."""
        dirty = sorted(self.dirty)
        self.dirty = set()
        if not dirty:
            self.hub.write_pillar(self.base)
            return
        silent = list(dirty)

        def all_answer():
            silent[:] = [m for m in silent if not answers_ping(self, m)]
            return not silent

        # a minion whose master connection the undo cut reconnects on its own schedule
        # (salt-minion's back-off), slower on a loaded machine
        wait_for(
            all_answer,
            180,
            f"{', '.join(dirty)} to answer the master",
            1,
            detail=lambda: f"still silent: {', '.join(silent)}",
        )
        ret = self.hub.state_apply(dirty, self.base, check=False, timeout=120)
        problems = [m for m in dirty if not isinstance(ret.get(m), dict)]
        if problems:
            raise LabError(f"restoring the base pillar: no answer from {problems}: {ret}")
        for s in SPOKES:
            self.spokes[s].ping_until(HUB_IP, within=20)


@pytest.fixture(scope="module")
def tunnel(lab):
    with lab.section():
        t = Tunnel(lab)
        t.up()
        yield t


@pytest.fixture
def base(tunnel):
    """The test may change pillars: the base is applied again after it."""
    yield tunnel
    tunnel.restore()


# ------------------------------------------------------------------------- helpers


def changed(pillars, minion, edit) -> dict:
    out = copy.deepcopy(pillars)
    edit(out[minion]["wireguard"])
    return out


def by_id(ret: dict, sid: str) -> dict:
    for state in ret.values():
        if isinstance(state, dict) and state.get("__id__") == sid:
            return state
    raise AssertionError(f"no state {sid} in {sorted(ret)}")


def snapshot(host) -> dict:
    """What a user compares: the conf file (endpoints included), and `wg show`: keys,
    port, fwmark, each peer's AllowedIPs, and the addresses of wg0."""
    dump = host.out(["wg", "show", "wg0", "dump"]).splitlines()
    rows = [line.split("\t") for line in dump]
    # peers by key and AllowedIPs: an endpoint the hub learned is not config, and a
    # restarted hub knows it again only at the spoke's next keepalive
    live = [rows[0][1:4], *sorted([r[0], r[3]] for r in rows[1:])]
    return {
        "conf": host.out(["sha256sum", CONF]).split()[0],
        "live": live,
        "addr": re.findall(r" inet (\S+)", host.out(["ip", "-o", "-4", "addr", "show", "wg0"])),
    }


def confirm_units(host) -> list[str]:
    out = host.out(
        ["systemctl", "list-units", "--all", "--plain", "--no-legend", "wireguard-confirm-wg0*"]
    )
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def is_armed(host) -> bool:
    return host.file_exists(f"{STATE_DIR}/armed")


def recorded_secret(host, private_key: str) -> bool:
    """Whether the confirm state directory still holds the recorded private key."""
    proc = host.run(["grep", "-rqF", "--", private_key, STATE_DIR], check=False)
    return proc.returncode == 0


def answers_ping(tunnel, minion) -> bool:
    return tunnel.hub.salt(minion, "test.ping", timeout=15).get(minion) is True


def answers_again(tunnel, minion, within: float = 180) -> bool:
    """`salt MINION test.ping` answers within `within` seconds. An undo on the hub
    restarts its wg0, which learns a spoke's endpoint again only at the spoke's next
    keepalive (25 s), and the TCP connections of Salt that were cut meanwhile resend
    with exponential backoff (seen in the lab: over 60 s for one spoke)."""
    wait_for(lambda: answers_ping(tunnel, minion), within, f"{minion} to answer", 1)
    return True


# ----------------------------------------------------------------------- the lab


def test_a_spoke_reaches_the_master_only_through_the_tunnel(tunnel):
    """Its only links are lo, eth0 (the underlay) and wg0; its minion's connection to
    the master goes to the hub's tunnel address; `salt <spoke> test.ping` answers."""
    spoke = tunnel.spokes[S1]
    assert sorted(spoke.links()) == ["eth0", "lo", "wg0"]
    route = spoke.out(["ip", "route", "get", HUB_IP])
    assert "dev wg0" in route, route
    conns = spoke.out(["ss", "-Htn", "state", "established", "dst", HUB_IP])
    assert ":4506" in conns or ":4505" in conns, conns
    assert spoke.ping("198.19.255.1", count=1, wait=0.5).received == 0
    for s in SPOKES:
        assert answers_ping(tunnel, s)


def test_no_change_arms_nothing(tunnel):
    ret = tunnel.apply([HUB, *SPOKES])
    for minion in (HUB, *SPOKES):
        states = ret[minion]
        assert isinstance(states, dict), ret
        assert not [s for s in states.values() if s.get("changes")], minion
        arm = by_id(states, "wireguard-confirm-arm-wg0")
        assert arm["result"] is True and not arm["changes"]
        assert confirm_units(tunnel.hosts[minion]) == [
            u for u in confirm_units(tunnel.hosts[minion]) if "restore" in u
        ]
        assert not is_armed(tunnel.hosts[minion])


def test_test_mode_says_a_confirm_would_be_armed_with_its_probes(base):
    pillars = changed(base.base, S3, lambda w: w["interfaces"]["wg0"].update(mtu=1380))
    before = snapshot(base.spokes[S3])
    ret = base.apply(S3, pillars, test=True)
    arm = by_id(ret[S3], "wireguard-confirm-arm-wg0")
    assert arm["result"] is None, arm
    assert "master" in arm["comment"] and "armed" in arm["comment"], arm["comment"]
    assert snapshot(base.spokes[S3]) == before
    assert [u for u in confirm_units(base.spokes[S3]) if "restore" not in u] == []
    assert not is_armed(base.spokes[S3])


# ------------------------------------------------------------------------ bad input

#: Each bad `confirm` value (issue 21, "Bad input") and how the refusal shows it.
BAD_CONFIRM = {
    "timeout 4": ({"timeout": 4}, "timeout", "4"),
    "timeout 3601": ({"timeout": 3601}, "timeout", "3601"),
    "timeout '30s'": ({"timeout": "30s"}, "timeout", "30s"),
    "timeout 12.5": ({"timeout": 12.5}, "timeout", "12.5"),
    "unknown probe word": ({"probes": ["mastr"]}, "probes", "mastr"),
    "bad probe address": ({"probes": ["10.0.0.300"]}, "probes", "10.0.0.300"),
    "bad probe port": ({"probes": ["10.0.0.1:70000"]}, "probes", "10.0.0.1:70000"),
    "probe without port": ({"probes": ["host:"]}, "probes", "host:"),
    "no probe": ({"probes": []}, "probes", "[]"),
}
#: Where the bad value is put: the spoke's interface, or lookup (every interface's).
BAD_PLACES = {
    "interfaces:wg0:confirm": sorted(BAD_CONFIRM),
    "lookup:confirm": ["unknown probe word"],
}


def mtu(host) -> str:
    return re.search(r" mtu (\d+)", host.out(["ip", "-o", "link", "show", "wg0"])).group(1)


def names(message: str, place: str, value: str) -> bool:
    """Whether a line of `message` names the pillar `place` and the bad `value` (a
    whole token: `4` is not found in `4506` or `10.0.0.4`)."""
    token = re.compile(rf"(?<![\w.]){re.escape(value)}(?![\w.])")
    return any(place in line and token.search(line) for line in message.splitlines())


def refused_and_nothing_changed(tunnel, minion, pillars) -> str:
    """`salt MINION state.apply wireguard` with `pillars` from the master: the run must
    fail, and the minion's file, live interface (its MTU too), confirm state and units
    are what they were; the minion still answers its master. Returns the refusal."""
    host = tunnel.spokes[minion]

    def state():
        return snapshot(host), mtu(host), confirm_units(host), is_armed(host)

    before = state()
    assert not before[-1]
    ret = tunnel.hub.state_apply(minion, pillars, check=False, timeout=120)
    after = state()
    if not isinstance(ret.get(minion), list) or after != before:
        tunnel.dirty.add(minion)  # the `base` fixture applies the base again
    message = refusal(ret, minion)
    assert after == before, message
    assert answers_ping(tunnel, minion)
    return message


@pytest.mark.parametrize(
    ("place", "case"), [(place, case) for place, cases in BAD_PLACES.items() for case in cases]
)
def test_a_bad_confirm_is_refused_before_anything_changes(base, place, case):
    """Each bad value of the issue's "Bad input", with a real change beside it (the MTU:
    with a good confirm the run would arm an undo): the job fails naming the interface
    (lookup's value: lookup), the key and the value, and nothing changed or was armed."""
    bad, key, value = BAD_CONFIRM[case]

    def edit(w):
        w["interfaces"]["wg0"]["mtu"] = 1380
        if place == "lookup:confirm":
            w["lookup"]["confirm"].update(bad)
        else:
            w["interfaces"]["wg0"]["confirm"] = bad

    message = refused_and_nothing_changed(base, S3, changed(base.base, S3, edit))
    assert names(message, f"wireguard:{place}:{key}", value), message


def test_confirm_on_an_init_without_systemd_or_openrc_is_refused(base):
    """The spoke's `init` grain made `sysvinit` (/etc/salt/grains overrides the core
    grain): a change with confirm on is refused naming the interface and that init;
    the grain is removed afterwards and the core grain (`systemd`) is back."""
    hub = base.hub

    def init_grain():
        return hub.salt(S2, "grains.get", "init", timeout=15).get(S2)

    assert init_grain() == "systemd"
    try:
        hub.salt(S2, "grains.setval", "init", "sysvinit", timeout=15)
        assert init_grain() == "sysvinit"
        pillars = changed(base.base, S2, lambda w: w["interfaces"]["wg0"].update(mtu=1380))
        message = refused_and_nothing_changed(base, S2, pillars)
        line = [x for x in message.splitlines() if "wireguard:interfaces:wg0:confirm" in x]
        assert line and "sysvinit" in line[0], message
    finally:
        hub.salt(S2, "grains.delkey", "init", timeout=15)
        hub.salt(S2, "saltutil.refresh_grains", timeout=15)
    assert init_grain() == "systemd"


# ------------------------------------------------------------------ breaking changes


def _wrong_hub_key(keys):
    stranger = keys["stranger"][1]
    return S1, lambda w: w["interfaces"]["wg0"]["peers"]["hub"].update(public_key=stranger)


def _address_outside(keys):
    return S1, lambda w: w["interfaces"]["wg0"].update(address=f"{NET}.99/24")


BREAKING = {
    "wrong hub public key": (_wrong_hub_key, r"master .*4506 did not answer"),
    "address outside the hub's AllowedIPs": (_address_outside, r"master .*4506 did not answer"),
}


@pytest.mark.parametrize("case", sorted(BREAKING))
def test_a_breaking_change_is_undone_and_the_spoke_answers(base, case):
    make, reason = BREAKING[case]
    keys = {**base.keys, **keypairs(base.hub, ["stranger"])}
    target, edit = make(keys)
    watched = {S1: base.spokes[S1], S2: base.spokes[S2]}
    before = {name: snapshot(host) for name, host in watched.items()}
    before_target = snapshot(base.hosts[target])
    t0 = time.monotonic()
    ret = base.apply(target, changed(base.base, target, edit))
    took = time.monotonic() - t0
    states = ret.get(target)
    assert isinstance(states, dict), ret
    check = by_id(states, "wireguard-confirm-check-wg0")
    assert check["result"] is False, check
    assert check["comment"].startswith("wg0: change undone: "), check["comment"]
    assert re.search(reason, check["comment"]), check["comment"]
    assert took < TIMEOUT + 60
    # the spoke answers its master again, through the tunnel
    assert answers_again(base, S1)
    # file and live interface are what they were, on the changed minion and the spokes
    assert snapshot(base.hosts[target]) == before_target
    for name, host in watched.items():
        assert snapshot(host) == before[name], name
    # the spoke's other peer lost nothing: spoke to spoke, directly
    assert base.spokes[S1].ping(ADDR[S2], count=5, interval=0.1).ok
    assert [u for u in confirm_units(base.hosts[target]) if "restore" not in u] == []
    # what the undo left running is what a fresh start from the restored file builds
    assert_restart_builds_the_same(base.hosts[target])
    assert answers_again(base, target)


# --------------------------------------------------------------------------- faults


def _async_apply(tunnel, minion, pillars) -> None:
    tunnel.dirty.add(minion)
    tunnel.hub.write_pillar(pillars)
    tunnel.hub.run(["salt", "--async", minion, "state.apply", "wireguard"])


def _wait_changed(host, before: dict, within: float = 60) -> float:
    """Until the conf file changed (only the file: the live interface may be halfway)."""

    def digest():
        return host.out(["sha256sum", CONF]).split()[0]

    wait_for(lambda: digest() != before["conf"], within, "the change", 0.1)
    return time.monotonic()


def test_a_killed_minion_is_undone_at_the_timeout_and_reported(base):
    spoke = base.spokes[S3]
    before = snapshot(spoke)
    stranger = keypairs(base.hub, ["x"])["x"][1]
    pillars = changed(
        base.base,
        S3,
        lambda w: w["interfaces"]["wg0"]["peers"]["hub"].update(public_key=stranger),
    )
    _async_apply(base, S3, pillars)
    changed_at = _wait_changed(spoke, before)
    spoke.run(["systemctl", "kill", "--signal=SIGKILL", "salt-minion.service"])
    spoke.run(["systemctl", "stop", "salt-minion.service"])
    wait_for(
        lambda: spoke.file_exists(f"{STATE_DIR}/undone"),
        TIMEOUT + 15,
        "the timer's undo",
        0.2,
    )
    undone_after = time.monotonic() - changed_at
    assert TIMEOUT - 2 <= undone_after <= TIMEOUT + 10, undone_after
    assert snapshot(spoke) == before
    assert [u for u in confirm_units(spoke) if "restore" not in u] == []
    assert_restart_builds_the_same(spoke)
    events = Events(base.hub, EVENT)
    spoke.run(["systemctl", "start", "salt-minion.service"])
    found = events.wait(EVENT, 60)
    assert found, "no wireguard/confirm/undone event after the minion restarted"
    assert found[0].get("interface") == "wg0" and found[0].get("mode") == "timer", found
    assert answers_again(base, S3)


def test_a_reboot_before_confirmation_brings_the_old_config_up(base):
    spoke = base.spokes[S3]
    before = snapshot(spoke)
    # an address outside the hub's AllowedIPs: the master probe answered before the
    # change and does not after it, so the run waits in confirm_checked (120 s)
    pillars = changed(
        base.base,
        S3,
        lambda w: (
            w["lookup"]["confirm"].update(timeout=120),
            w["interfaces"]["wg0"].update(address=f"{NET}.98/24"),
        ),
    )
    _async_apply(base, S3, pillars)
    _wait_changed(spoke, before)
    events = Events(base.hub, EVENT)
    spoke.reboot()
    wait_for(
        lambda: "inet " in spoke.out(["ip", "-o", "-4", "addr", "show", "dev", "wg0"], check=False),
        30,
        "tunspoke3's wg0 with an address after the reboot",
        0.2,
        detail=lambda: spoke.out(
            "systemctl --no-pager status wg-quick@wg0 wireguard-confirm-restore-wg0; "
            "journalctl -b --no-pager -n 40 -o cat",
            check=False,
        ),
    )
    assert snapshot(spoke) == before
    journal = spoke.out(["journalctl", "-b", "-o", "cat", "--no-pager"])
    restore = journal.find("wireguard-confirm-restore-wg0")
    quick = journal.find("Starting wg-quick@wg0")
    assert 0 <= restore < quick, journal[-3000:]
    found = events.wait(EVENT, 90)
    assert found and found[0].get("interface") == "wg0" and found[0].get("mode") == "boot", found
    wait_for(lambda: answers_ping(base, S3), 60, "tunspoke3 after its reboot", 1)


def _formula_utils():
    """The formula's own utils (``_utils/``), for what a run writes into a container."""
    utils = str(pathlib.Path(__file__).resolve().parents[2] / "_utils")
    if utils not in sys.path:
        sys.path.insert(0, utils)
    import wgf_confirm
    import wgf_confirm_undo
    import wgf_layout

    return wgf_confirm, wgf_confirm_undo, wgf_layout


def test_a_drop_in_restored_at_boot_is_the_one_the_interface_comes_up_with(lab):
    """A change moved the interface's file into another config dir (its drop-in names
    the new file), then the host rebooted before confirmation: systemd loaded the changed
    drop-in at boot, the boot-time unit puts the recorded one back and reloads, so
    ``wg-quick@<if>``, which starts after it, runs the old file. Without the reload it
    would run the new one."""
    confirm, undo, layout = _formula_utils()
    ifname, service = "wgx", "wg-quick@wgx"
    old, new = "/etc/wga", "/etc/wgb"
    directory = confirm.state_dir(ifname)
    dropin = layout.dropin_path(ifname)
    with lab.section():
        host = lab.container("cfdropin", minion=False)
        key = host.out(["wg", "genkey"]).strip()
        for config_dir, address in ((old, "10.55.0.1/24"), (new, "10.55.0.9/24")):
            text = f"[Interface]\nPrivateKey = {key}\nAddress = {address}\n"
            host.write(f"{config_dir}/{ifname}.conf", text, 0o600)
        # armed as a run does: the drop-in recorded as it was, the undo, the boot unit
        host.run(["install", "-d", "-m", "0700", directory])
        host.write(f"{directory}/dropin", layout.dropin_text(ifname, old), 0o600)
        script = undo.undo_script(
            ifname, [undo.Restore(dropin, "dropin")], layout.Layout(new).unit(ifname)
        )
        host.write(f"{directory}/undo", script, 0o600)
        boot_id = host.out(["cat", confirm.BOOT_ID]).strip()
        host.write(f"{directory}/armed", undo.armed_text(boot_id), 0o600)
        host.write(layout.confirm_restore_path(ifname), undo.restore_unit_text(ifname, service))
        # the change: the drop-in names the new file, and the service runs it
        host.write(dropin, layout.dropin_text(ifname, new))
        host.systemctl("daemon-reload")
        host.systemctl("enable", confirm.restore_unit(ifname), f"{service}.service")
        host.systemctl("start", f"{service}.service")

        def addresses():
            shown = host.out(["ip", "-o", "-4", "addr", "show", "dev", ifname], check=False)
            return re.findall(r" inet (\S+)", shown)

        assert addresses() == ["10.55.0.9/24"]
        host.reboot()
        wait_for(
            addresses,
            30,
            f"{ifname} with an address after the reboot",
            0.2,
            detail=lambda: host.out(
                f"systemctl --no-pager status {service} {confirm.restore_unit(ifname)}; "
                "journalctl -b --no-pager -n 40 -o cat",
                check=False,
            ),
        )
        assert addresses() == ["10.55.0.1/24"]
        assert host.read(dropin) == layout.dropin_text(ifname, old)
        done = host.read(f"{directory}/undone")
        assert "mode=boot" in done and "failed=0" in done, done
        assert not host.file_exists(f"{directory}/armed")
        journal = host.out(["journalctl", "-b", "-o", "cat", "--no-pager"])
        assert "Reloading" in journal, journal[-3000:]


# ----------------------------------------------------------------------- good change


def test_a_good_change_is_confirmed_and_other_peers_lose_nothing(base):
    spoke = base.spokes[S1]
    extra = keypairs(base.hub, ["phone"])["phone"][1]
    pillars = changed(
        base.base,
        S1,
        lambda w: w["interfaces"]["wg0"]["peers"].update(
            phone={"public_key": extra, "allowed_ips": [f"{NET}.50/32"]}
        ),
    )
    with steady_ping(spoke, ADDR[S2]) as ping:
        ret = base.apply(S1, pillars)
    ping.check("a good change on tunspoke1, pinging tunspoke2")
    check = by_id(ret[S1], "wireguard-confirm-check-wg0")
    assert check["result"] is True, check
    assert re.search(r"confirmed in \d+ s", check["comment"]), check["comment"]
    assert [u for u in confirm_units(spoke) if "restore" not in u] == []
    assert not is_armed(spoke) and not recorded_secret(spoke, base.keys[S1][0])
    assert extra in spoke.out(["wg", "show", "wg0", "peers"])


# --------------------------------------------------------------------------- secrecy


def test_no_key_in_units_argv_journal_events_or_the_job_while_armed(base):
    """A good change held armed (the rollout's pillar override), looked at from every
    side a user or another local account could; then accepted."""
    spoke = base.spokes[S2]
    pillars = changed(base.base, S2, lambda w: w["interfaces"]["wg0"].update(mtu=1380))
    events = Events(base.hub, "*")
    ret = base.apply(S2, pillars, pillar={"wireguard_rollout": {"hold": 60}})
    bus = events.stop()
    status = base.hub.salt(S2, "wireguard.confirm_status", timeout=15)[S2]
    assert status["wg0"]["armed"] is True and status["wg0"]["deadline"], status
    secrets = {base.keys[S2][0]}
    # the recorded state: root only
    modes = spoke.out(["sh", "-c", f"stat -c '%a %U %n' {STATE_DIR} {STATE_DIR}/*"])
    lines = modes.splitlines()
    assert lines[0].startswith("700 root"), modes
    for line in lines[1:]:
        mode = line.split()[0]
        assert int(mode[-2:]) == 0, modes  # nothing for group or others
    units = spoke.out(["systemctl", "cat", *UNITS], check=False)
    argv = spoke.out(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"])
    journal = spoke.out(["journalctl", "-o", "cat", "--no-pager"])
    for where, text in {
        "unit files": units,
        "argv": argv,
        "journal": journal,
        "events": bus,
        "job return": json.dumps(ret),
        "confirm_status": json.dumps(status),
    }.items():
        for secret in secrets:
            assert secret not in text, where
    assert "wireguard-confirm-wg0" in units
    accepted = base.hub.salt(S2, "wireguard.confirm_accept", timeout=15)[S2]
    assert accepted == {"wg0": "confirmed"}, accepted
    assert [u for u in confirm_units(spoke) if "restore" not in u] == []
    assert not is_armed(spoke) and not recorded_secret(spoke, base.keys[S2][0])


# --------------------------------------------------------------------------- rollout


def rollout(tunnel, pillars) -> tuple[int, dict]:
    """`salt-run wireguard.rollout` of `pillars` to the hub (canary) and the spokes,
    as a user runs it: (exit code, its JSON return)."""
    tunnel.hub.write_pillar(pillars)
    tunnel.dirty |= {HUB, *SPOKES}
    proc = tunnel.hub.run(
        [
            "salt-run",
            "--out=json",
            "-t",
            "300",
            "wireguard.rollout",
            f"tgt={','.join([HUB, *SPOKES])}",
            "tgt_type=list",
            f"canary={HUB}",
            "batch=1",
        ],
        check=False,
        timeout=400,
    )
    ret = json.loads(proc.stdout)
    return proc.returncode, ret.get("return", ret)


def state_jobs(tunnel) -> dict:
    """{jid: the minions it targeted} of every state.apply job in the master's cache."""
    jobs = json.loads(tunnel.hub.out(["salt-run", "--out=json", "jobs.list_jobs"]))
    return {
        jid: set(j["Target"] if isinstance(j.get("Target"), list) else [j.get("Target")])
        for jid, j in jobs.items()
        if j.get("Function") == "state.apply"
    }


def test_a_rollout_of_a_breaking_hub_change_stops_at_the_canary(base):
    """The hub's private key replaced: its peers probe sees no spoke handshake again,
    the hub undoes it, and the rollout stops there: no spoke gets a job."""
    new_private = keypairs(base.hub, ["hubnew"])["hubnew"][0]
    pillars = changed(
        base.base, HUB, lambda w: w["interfaces"]["wg0"].update(private_key=new_private)
    )
    before = {name: snapshot(host) for name, host in base.hosts.items()}
    jobs_before = state_jobs(base)
    code, ret = rollout(base, pillars)
    assert code != 0, ret
    assert ret["ok"] is False and ret["stopped"] == 0, ret
    (wave,) = ret["waves"]
    assert wave["minions"] == [HUB] and wave["undone"] is True, wave
    assert wave["health"][HUB]["ok"] is False, wave
    assert "change undone" in " ".join(wave["health"][HUB]["problems"]), wave
    assert ret["untouched"] == sorted(SPOKES)
    for name, host in base.hosts.items():
        assert snapshot(host) == before[name], name
    new = {jid: t for jid, t in state_jobs(base).items() if jid not in jobs_before}
    assert set().union(*new.values()) == {HUB}, new
    for s in SPOKES:
        assert answers_again(base, s)


def test_an_access_rule_on_the_hub_that_drops_a_spoke_is_undone_by_the_rollout(base):
    """No probe on the hub can see this change: what the hub sends gets its replies
    (the formula's access rules pass conntrack's reply direction) and WireGuard counts
    a peer's handshakes and bytes before nftables. The spoke's own master connection is
    cut. The rollout catches it by its partners: the hub's change stays armed (hold),
    tunspoke1 does not answer wireguard.check, the wave is undone. (The hub's base has
    `access: {default: accept}`: conntrack saw the spokes' connections open. A table
    made by this change would start conntrack mid-stream, and it may take the master
    for the side that opened a connection and let the spoke's packets pass as
    replies.)"""
    pillars = changed(
        base.base,
        HUB,
        lambda w: w["interfaces"]["wg0"].update(
            access={"default": "drop", "rules": [{"from": [S2, S3]}]}
        ),
    )
    before = {name: snapshot(host) for name, host in base.hosts.items()}
    code, ret = rollout(base, pillars)
    assert code != 0, ret
    (wave,) = ret["waves"]
    assert wave["minions"] == [HUB] and wave["changed"] == [HUB], wave
    assert wave["health"][HUB]["ok"] is True, wave  # its own probes passed
    assert wave["health"][S1]["ok"] is False, wave
    assert wave["undone"] is True and ret["untouched"] == sorted(SPOKES), ret
    assert answers_again(base, S1)
    for name, host in base.hosts.items():
        assert snapshot(host) == before[name], name
    assert base.spokes[S1].ping(ADDR[S2], count=5, interval=0.1).ok
    assert not is_armed(base.hub)
