"""Confirm (issue 21) against real network stacks, in namespaces this file creates: the
host adapter's TCP and ICMP probes against a listener in another namespace (and a probe
that did not answer before the change is not applicable), and the undo script run for
real against a wg-quick interface on wireguard-go, with ``systemctl`` replaced by a stub
on PATH that restarts the interface the way ``wg-quick@`` does."""

import os
import subprocess
import time
import uuid

import pytest

import wgf_confirm
import wgf_confirm_run
import wgf_confirm_undo
import wgf_dump
import wgf_firewall
import wgf_host
import wgf_iptables
import wgf_keys
import wgf_layout
from tests.functional.conftest import pillar_for
from tests.support.netns import Netns

LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.21.2", 4506))
s.listen(8)
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


@pytest.fixture
def two(loaders):
    """``local`` and ``remote`` joined by a veth (198.18.21.1 and .2), a TCP listener on
    198.18.21.2:4506 in ``remote``; the test runs inside ``local``."""
    local, remote = Netns("cflocal"), Netns("cfremote")
    listener = None
    try:
        local.create()
        remote.create()
        local.veth(remote, "eth0", "eth0", "198.18.21.1/24", "198.18.21.2/24")
        listener = remote.popen(["python3", "-c", LISTENER])
        assert listener.stdout.readline().strip() == "listening"
        with local.entered():
            yield wgf_host.Host(loaders.modules), listener
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        local.delete()
        remote.delete()


def test_tcp_and_icmp_probes_answer_what_the_network_answers(two):
    host, _ = two
    assert host.tcp_answers("198.18.21.2", 4506) is True
    assert host.tcp_answers("198.18.21.2", 4507, timeout=1) is False  # refused
    assert host.tcp_answers("198.18.21.9", 4506, timeout=1) is False  # nobody there
    assert host.icmp_answers("198.18.21.2") is True
    assert host.icmp_answers("198.18.21.9") is False


def test_a_probe_that_did_not_answer_before_is_not_applicable_one_that_stopped_fails(two):
    host, listener = two
    confirm = wgf_confirm_run.probes_of(
        {"timeout": 5, "probes": ["198.18.21.2:4506", "198.18.21.9", "198.18.21.2"]}
    )
    opts = {"master_type": "disable"}
    before = wgf_confirm_run.sample_before(host, "lo", confirm, opts, {})
    assert before["targets"] == {
        "198.18.21.2:4506": True,
        "198.18.21.9": False,
        "198.18.21.2": True,
    }
    listener.kill()  # "the change" breaks the TCP path, not the ICMP one
    listener.wait()
    found = wgf_confirm_run.outcomes(host, "lo", confirm, opts, before, {}, 0, set())
    assert [(o.label, o.status) for o in found] == [
        ("198.18.21.2:4506", wgf_confirm.FAILED),
        ("198.18.21.9", wgf_confirm.NOT_APPLICABLE),
        ("198.18.21.2", wgf_confirm.ANSWERED),
    ]
    assert wgf_confirm.failure_message("wg0", found, 5) == (
        "wg0: change undone: 198.18.21.2:4506 did not answer within 5 s"
    )


def _peer_rx(pair):
    dump = pair.local.out(["wg", "show", pair.ifname, "dump"])
    return [p["rx_bytes"] for p in wgf_dump.parse(dump, pair.ifname)[pair.ifname]["peers"].values()]


def test_after_the_own_key_is_replaced_the_peers_keepalives_are_no_answer(loaders, pair, remote2):
    """WireGuard goes on receiving on the sessions of the old own key: a peer that cannot
    know the new key still shows bytes received. The peers probe asks for a handshake."""
    host, local_public = wgf_host.Host(loaders.modules), wgf_keys.pubkey(pair.local_key)
    remote_if = f"{pair.ifname[:11]}r2"
    pair.remote.run(["wg", "set", remote_if, "peer", local_public, "persistent-keepalive", "1"])
    confirm, opts = wgf_confirm_run.probes_of({"timeout": 5, "probes": ["peers"]}), {}
    before = wgf_confirm_run.sample_before(host, pair.ifname, confirm, opts, {remote2: "r2"})
    assert before["own_key"] == local_public and list(before["peers"]) == ["r2"]
    changed_at = int(time.time())
    rx_before = _peer_rx(pair)
    pair.local.run(["wg", "set", pair.ifname, "private-key", "/dev/stdin"], input=wgf_keys.genkey())
    time.sleep(3)  # three keepalives on the old session
    assert _peer_rx(pair)[0] > rx_before[0], "the old session received nothing"
    found = wgf_confirm_run.outcomes(
        host, pair.ifname, confirm, opts, before, {remote2: "r2"}, changed_at, set()
    )
    assert found == [wgf_confirm.Outcome("peer r2", wgf_confirm.FAILED, "did not handshake")]
    # the old key back (as the undo puts it): the nudge makes a handshake with it
    pair.local.run(["wg", "set", pair.ifname, "private-key", "/dev/stdin"], input=pair.local_key)
    for _ in range(10):
        found = wgf_confirm_run.outcomes(
            host, pair.ifname, confirm, opts, before, {remote2: "r2"}, changed_at, set()
        )
        if found[0].status == wgf_confirm.ANSWERED:
            break
        time.sleep(0.5)
    assert found == [wgf_confirm.Outcome("peer r2", wgf_confirm.ANSWERED)]


# ------------------------------------------------------------------ the undo script

SYSTEMCTL = """#!/bin/sh
# systemctl as the undo uses it, logged; restart brings the interface down and up
# again from its file, as wg-quick@ does
echo "systemctl $*" >> "{log}"
case "$1" in
restart) wg-quick down "{conf}" >/dev/null 2>&1; exec wg-quick up "{conf}" ;;
esac
"""


DROPIN = "[Service]\nEnvironment=WG_ENDPOINT_RESOLUTION_RETRIES=5\n"


def conf(key, address):
    return f"[Interface]\nPrivateKey = {key}\nAddress = {address}\nListenPort = 51900\n"


@pytest.fixture
def undo_box(tmp_path):
    """A namespace with a wg-quick interface on wireguard-go, its original file recorded
    and armed, then "changed": a new file and address live, a new nftables table."""
    ifname = f"wgq{uuid.uuid4().hex[:6]}"
    ns = Netns("cfundo")
    etc, root, stubs = tmp_path / "etc", tmp_path / "confirm", tmp_path / "bin"
    for directory in (etc, root, stubs):
        directory.mkdir(mode=0o700)
    path = etc / f"{ifname}.conf"
    key = wgf_keys.genkey()
    original = conf(key, "10.78.0.1/24")
    state = root / ifname
    state.mkdir(mode=0o700)
    (state / "conf").write_text(original)
    os.chmod(state / "conf", 0o600)  # as the state records it
    (state / "firewall").write_text(wgf_firewall.nft_replace(None))
    # the service's drop-in as recorded; live as it was unless a test changes it
    dropin = etc / "wireguard-formula.conf"
    (state / "dropin").write_text(DROPIN)
    dropin.write_text(DROPIN)
    log = tmp_path / "systemctl.log"
    (stubs / "systemctl").write_text(SYSTEMCTL.format(log=log, conf=path))
    os.chmod(stubs / "systemctl", 0o755)
    (state / "undo").write_text(
        wgf_confirm_undo.undo_script(
            ifname,
            [
                wgf_confirm_undo.Restore(str(path), "conf"),
                wgf_confirm_undo.Restore(str(dropin), "dropin"),
            ],
            f"wg-quick@{ifname}",
            "nftables",
            root=str(root),
            restart_pending=str(tmp_path / "pending"),
        )
    )
    (state / "armed").write_text(wgf_confirm_undo.armed_text("00000000-0000"))
    ns.env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    try:
        ns.create()
        path.write_text(original)
        os.chmod(path, 0o600)
        ns.run(["wg-quick", "up", str(path)])
        # the change: another address in the file and live, and the formula's table
        path.write_text(conf(key, "10.78.0.9/24"))
        ns.run(["wg-quick", "down", str(path)])
        ns.run(["wg-quick", "up", str(path)])
        ns.run(["nft", "add table inet wireguard"])
        yield ns, ifname, path, original, state, log
    finally:
        ns.run(["wg-quick", "down", str(path)], check=False)
        ns.delete()


def addresses(ns, ifname):
    return ns.ip("-o", "-4", "addr", "show", "dev", ifname)


def test_the_undo_puts_file_interface_and_firewall_back(undo_box):
    ns, ifname, path, original, state, log = undo_box
    assert "10.78.0.9/24" in addresses(ns, ifname)
    done = ns.run(["/bin/sh", str(state / "undo"), "now"], check=False)
    assert done.returncode == 0, done.stderr
    assert path.read_text() == original
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    shown = addresses(ns, ifname)
    assert "10.78.0.1/24" in shown and "10.78.0.9" not in shown
    assert ns.run(["nft", "list", "tables"]).stdout.strip() == ""
    assert log.read_text().splitlines() == [
        f"systemctl reset-failed wg-quick@{ifname}",
        f"systemctl restart wg-quick@{ifname}",
    ]
    undone = dict(line.split("=", 1) for line in (state / "undone").read_text().splitlines())
    assert undone["mode"] == "now" and undone["failed"] == "0"
    assert not (state / "armed").exists()
    # a second run (the timer firing late) finds nothing armed and does nothing
    assert ns.run(["/bin/sh", str(state / "undo"), "timer"]).returncode == 0
    assert len(log.read_text().splitlines()) == 2


def test_at_boot_in_the_same_boot_the_undo_does_nothing(undo_box):
    ns, _, path, original, state, log = undo_box
    with open(wgf_confirm.BOOT_ID) as handle:
        boot_id = handle.read().strip()
    (state / "armed").write_text(wgf_confirm_undo.armed_text(boot_id))
    assert ns.run(["/bin/sh", str(state / "undo"), "boot"]).returncode == 0
    assert path.read_text() != original and (state / "armed").exists()
    assert not log.exists()


def test_a_changed_drop_in_is_put_back_and_reloaded_before_the_restart(undo_box):
    """systemd restarts a service with the drop-in it has cached: the undo of a changed
    drop-in reloads first (the other undo tests leave it alone: no reload there)."""
    ns, ifname, path, original, state, log = undo_box
    dropin = path.parent / "wireguard-formula.conf"
    dropin.write_text("[Service]\nEnvironment=WG_ENDPOINT_RESOLUTION_RETRIES=1\n")
    done = ns.run(["/bin/sh", str(state / "undo"), "now"], check=False)
    assert done.returncode == 0, done.stderr
    assert dropin.read_text() == DROPIN and path.read_text() == original
    assert log.read_text().splitlines() == [
        "systemctl daemon-reload",
        f"systemctl reset-failed wg-quick@{ifname}",
        f"systemctl restart wg-quick@{ifname}",
    ]


def test_held_under_the_lock_the_undo_waits(undo_box):
    """A disarm holds the directory's lock: the timer's undo waits for it, then finds
    nothing armed."""
    ns, _, path, original, state, log = undo_box
    holder = subprocess.Popen(
        ["flock", str(state / "lock"), "sh", "-c", f"sleep 1; rm -f {state / 'armed'}"]
    )
    try:
        subprocess.run(["sleep", "0.2"], check=True)
        assert ns.run(["/bin/sh", str(state / "undo"), "timer"]).returncode == 0
    finally:
        holder.wait()
    assert path.read_text() != original and not log.exists()


# ------------------------------------------- the undo of the formula's iptables chains

TOOLS = {4: "iptables", 6: "ip6tables"}
#: The admin's own rules: the undo leaves them as they are.
ADMIN = """*filter
:ADMIN-LOG - [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
-A FORWARD -j ADMIN-LOG
COMMIT
*nat
-A POSTROUTING -o eth9 -j MASQUERADE
COMMIT
"""


def _formula(version, listen_port):
    """What the formula's iptables backend loads for an interface with its listen port
    open, an access rule and masquerade."""
    peer = "10.79.0.2/32" if version == 4 else "fd79::2/128"
    address = "10.79.0.1/24" if version == 4 else "fd79::1/64"
    iface = {
        "name": "wgi0",
        "firewall": "iptables",
        "enabled": True,
        "absent": False,
        "listen_port": listen_port,
        "open_port": True,
        "access": {
            "default": "drop",
            "rules": [{"sources": [peer], "to": [], "proto": "tcp", "ports": ["22"]}],
        },
        "masquerade": ["eth9"],
        "address": [address],
        "peers": {"p": {"absent": False, "allowed_ips": [peer]}},
    }
    return wgf_iptables.iptables_rules([iface], version)


def _saved(ns, version):
    """``ip(6)tables-save`` of the namespace, without its comment lines (a timestamp)."""
    shown = ns.out([f"{TOOLS[version]}-save"])
    return [line for line in shown.splitlines() if not line.startswith("#")]


def _load(ns, version, text, tmp_path):
    rules = tmp_path / f"load{version}-{uuid.uuid4().hex[:6]}"
    rules.write_text(text)
    ns.run([f"{TOOLS[version]}-restore", "--noflush", str(rules)])


@pytest.fixture
def ipt_box(loaders, tmp_path):
    """A namespace with the admin's own rules (both IP versions), and ``arm()``: record
    the formula's chains as confirm does (the host adapter's ip(6)tables-save, inside the
    namespace), write the undo for backend iptables and arm it; ``undo()`` runs it
    there, with ``systemctl`` a stub that logs."""
    ifname = f"wgi{uuid.uuid4().hex[:6]}"
    ns = Netns("cfipt")
    root, stubs, etc = tmp_path / "confirm", tmp_path / "bin", tmp_path / "etc"
    for directory in (root, stubs, etc):
        directory.mkdir(mode=0o700)
    state = root / ifname
    state.mkdir(mode=0o700)
    log = tmp_path / "systemctl.log"
    (stubs / "systemctl").write_text(f'#!/bin/sh\necho "systemctl $*" >> "{log}"\n')
    os.chmod(stubs / "systemctl", 0o755)
    ns.env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    host = wgf_host.Host(loaders.modules)
    layout = wgf_layout.Layout(str(etc), f"wg-quick@{ifname}")

    def arm():
        with ns.entered():
            records, restores, kind, iptables = wgf_confirm_run._records(
                host, ifname, layout, "iptables"
            )
        assert kind == "iptables" and sorted(iptables) == [4, 6]
        records["undo"] = wgf_confirm_undo.undo_script(
            ifname,
            restores,
            f"wg-quick@{ifname}",
            kind,
            root=str(root),
            restart_pending=str(tmp_path / "pending"),
            iptables=iptables,
        )
        for name, text in records.items():
            (state / name).write_text(text)
        (state / "armed").write_text(wgf_confirm_undo.armed_text("00000000-0000"))

    def undo():
        done = ns.run(["/bin/sh", str(state / "undo"), "now"], check=False)
        assert done.returncode == 0, done.stderr
        assert "failed=0" in (state / "undone").read_text()

    try:
        ns.create()
        for version in (4, 6):
            _load(ns, version, ADMIN, tmp_path)
        yield ns, arm, undo, state, log
    finally:
        ns.delete()


@pytest.mark.parametrize("version", [4, 6])
def test_iptables_chains_that_existed_come_back_with_their_rules_and_one_jump(
    ipt_box, tmp_path, version
):
    ns, arm, undo, state, log = ipt_box
    other = 10 - version  # the other IP version: its chains must be left as they were
    for v in (version, other):
        _load(ns, v, wgf_iptables.iptables_restore(_formula(v, 51820), set()), tmp_path)
    before = {v: _saved(ns, v) for v in (version, other)}
    arm()
    assert (state / "firewall").exists() and (state / "firewall6").exists()
    # the change: other rules in the chains, a second jump, a jump gone
    tool = TOOLS[version]
    _load(ns, version, wgf_iptables.iptables_restore(_formula(version, 40000), set()), tmp_path)
    ns.run([tool, "-t", "filter", "-D", "FORWARD", "-j", "WIREGUARD-FORWARD"])
    assert _saved(ns, version) != before[version]
    assert sum(" -j WIREGUARD-INPUT" in line for line in _saved(ns, version)) == 2
    undo()
    after = _saved(ns, version)
    assert after == before[version]
    ours = wgf_iptables.iptables_ours("\n".join(after))
    for table, chains in wgf_iptables.IPTABLES_CHAINS.items():
        for chain, builtin in chains:
            assert ours.count(f"{table} -A {builtin} -j {chain}") == 1, chain
    assert "51820" in "\n".join(ours) and "40000" not in "\n".join(ours)
    assert _saved(ns, other) == before[other]
    assert log.read_text().splitlines()[-1] == f"systemctl restart wg-quick@{state.name}"


@pytest.mark.parametrize("version", [4, 6])
def test_iptables_chains_the_change_made_go_with_their_jumps(ipt_box, tmp_path, version):
    ns, arm, undo, _, _ = ipt_box
    before = {v: _saved(ns, v) for v in (4, 6)}
    arm()
    for v in (4, 6):
        _load(ns, v, wgf_iptables.iptables_restore(_formula(v, 51820), set()), tmp_path)
    ns.run([TOOLS[version], "-t", "nat", "-I", "POSTROUTING", "1", "-j", "WIREGUARD-POSTROUTING"])
    assert any("WIREGUARD" in line for line in _saved(ns, version))
    undo()
    for v in (4, 6):
        assert _saved(ns, v) == before[v]
        assert not any("WIREGUARD" in line for line in _saved(ns, v))


def test_an_iptables_undo_run_twice_is_harmless(ipt_box, tmp_path):
    """The undo again (the timer after the run's own; armed once more): the same
    rules, no second jump, nothing failed."""
    ns, arm, undo, state, _ = ipt_box
    _load(ns, 4, wgf_iptables.iptables_restore(_formula(4, 51820), set()), tmp_path)
    before = {v: _saved(ns, v) for v in (4, 6)}
    arm()
    _load(ns, 4, wgf_iptables.iptables_restore(_formula(4, 40000), set()), tmp_path)
    _load(ns, 6, wgf_iptables.iptables_restore(_formula(6, 40000), set()), tmp_path)
    undo()
    (state / "armed").write_text(wgf_confirm_undo.armed_text("00000000-0000"))
    undo()
    assert {v: _saved(ns, v) for v in (4, 6)} == before


# ------------------------------------------------- the states through the real loader

SYSTEMD_STUB = """#!/bin/sh
# {name} as confirm uses it, logged; `systemctl restart` of the interface's service
# sets it from its file again, as wg-quick@'s restart would (wg syncconf)
echo "{name} $*" >> "{log}"
if [ "{name} $1" = "systemctl restart" ]; then
    wg-quick strip "{conf}" > "{conf}.stripped" && wg syncconf "{ifname}" "{conf}.stripped"
fi
"""


@pytest.fixture
def confirmed(loaders, pair, config_dir, remote2, set_pillar, tmp_path, monkeypatch):
    """The pair's interface as pillar says, with confirm on (6 s, a TCP probe to a
    listener in the remote namespace); systemd-run and systemctl stubbed on PATH, the
    state directory and the boot-time unit under tmp_path, grains and the host adapter
    saying systemd."""
    import wgf_layout

    stubs, log = tmp_path / "bin", tmp_path / "systemd.log"
    stubs.mkdir()
    conf_path = config_dir / f"{pair.ifname}.conf"
    for name in ("systemd-run", "systemctl"):
        (stubs / name).write_text(
            SYSTEMD_STUB.format(name=name, log=log, conf=conf_path, ifname=pair.ifname)
        )
        os.chmod(stubs / name, 0o755)
    monkeypatch.setenv("PATH", f"{stubs}:{os.environ['PATH']}")
    monkeypatch.setattr(wgf_confirm, "STATE_ROOT", str(tmp_path / "confirm"))
    monkeypatch.setattr(wgf_layout, "RESTART_PENDING_DIR", str(tmp_path / "pending"))
    # the systemd way (this machine's PID 1 is no systemd: test_confirm_waiter.py tests
    # the other), its boot-time unit written under tmp_path
    monkeypatch.setattr(wgf_host.Host, "has_systemd", lambda self: True)
    monkeypatch.setattr(wgf_layout, "SYSTEMD_UNIT_DIR", str(tmp_path / "systemd"))
    monkeypatch.setattr(wgf_layout, "INIT_SCRIPT_DIR", str(tmp_path / "init.d"))
    listener = pair.remote.popen(["python3", "-c", LISTENER.replace("21.2", "10.2")])
    assert listener.stdout.readline().strip() == "listening"
    confirm = {"timeout": 6, "probes": ["198.18.10.2:4506"]}

    def apply(on=True, **settings):
        pillar = pillar_for(pair, pair.local_key, remote2, confirm=confirm if on else False)
        pillar["wireguard"]["interfaces"][pair.ifname].update(settings)
        set_pillar(pillar)
        # the loader's grains, read again by set_pillar: this machine's PID 1 is no systemd
        loaders.grains["init"] = "systemd"
        states = loaders.states.wireguard
        arm = states.confirm_armed(pair.ifname, config_dir=str(config_dir))
        changed = [
            states.config(pair.ifname, config_dir=str(config_dir)),
            states.interface(pair.ifname, config_dir=str(config_dir)),
        ]
        return arm, changed

    try:
        apply(on=False)  # the file written as pillar says, confirm off
        arm, changed = apply()
        unit = tmp_path / "systemd" / f"wireguard-confirm-restore-{pair.ifname}.service"
        assert arm["changes"] == {"boot_unit": {"old": None, "new": str(unit)}}, arm
        assert "nothing changes" in arm["comment"] and unit.exists()
        assert not [c for c in changed if c["changes"]], changed
        assert states_dir_empty(tmp_path)
        yield apply, listener, conf_path, log
    finally:
        listener.kill()
        listener.wait()


def states_dir_empty(tmp_path):
    root = tmp_path / "confirm"
    return not root.exists() or not any(p.name == "armed" for p in root.rglob("*"))


def listen_port(pair):
    return pair.local.run(["wg", "show", pair.ifname, "listen-port"]).stdout.strip()


def test_a_confirmed_change_is_disarmed_and_its_records_deleted(
    loaders, pair, confirmed, config_dir, tmp_path
):
    apply, _, conf_path, log = confirmed
    arm, changed = apply(listen_port=51830)
    assert arm["result"] is True and "confirm" in arm["changes"], arm
    assert all(c["result"] is True for c in changed), changed
    assert listen_port(pair) == "51830"
    check = loaders.states.wireguard.confirm_checked(pair.ifname, config_dir=str(config_dir))
    assert check["result"] is True and check["comment"].startswith(f"{pair.ifname}: confirmed in")
    # (Salt's own `systemctl --version` and the like left out)
    calls = [c for c in log.read_text().splitlines() if "wireguard-confirm-" in c]
    assert calls[0] == f"systemctl enable wireguard-confirm-restore-{pair.ifname}.service"
    calls = calls[1:]  # the boot-time unit, enabled by the fixture's first apply
    assert calls[0].startswith(f"systemd-run --unit=wireguard-confirm-{pair.ifname} ")
    assert "--on-active=6" in calls[0]
    assert calls[-1] == f"systemctl stop wireguard-confirm-{pair.ifname}.timer"
    state = tmp_path / "confirm" / pair.ifname
    assert sorted(p.name for p in state.iterdir() if p.name != "lock") == ["meta.json"]
    assert pair.local_key not in log.read_text()
    assert "51830" in conf_path.read_text() and listen_port(pair) == "51830"


def test_a_change_the_probe_does_not_confirm_is_undone_by_the_recorded_script(
    loaders, pair, confirmed, config_dir, tmp_path
):
    apply, listener, conf_path, log = confirmed
    before = conf_path.read_text()
    apply(listen_port=51830)
    state = tmp_path / "confirm" / pair.ifname
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert (state / "conf").read_text() == before
    assert oct((state / "conf").stat().st_mode & 0o777) == "0o600"
    listener.kill()  # the change "broke" the path the probe checks
    listener.wait()
    check = loaders.states.wireguard.confirm_checked(pair.ifname, config_dir=str(config_dir))
    assert check["result"] is False
    assert check["comment"] == (
        f"{pair.ifname}: change undone: 198.18.10.2:4506 did not answer within 6 s"
    )
    assert conf_path.read_text() == before
    assert listen_port(pair) == "51820"
    calls = log.read_text().splitlines()
    assert f"systemctl restart wg-quick@{pair.ifname}" in calls
    status = loaders.modules.wireguard.confirm_status(pair.ifname)[pair.ifname]
    assert status["armed"] is False and status["undone"]["mode"] == "now"
    assert status["undone"]["failed"] == ["198.18.10.2:4506"]
    assert not (state / "conf").exists()  # the recorded key copy is gone
