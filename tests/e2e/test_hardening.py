"""Hardening, through real `state.apply` runs from the master (issue 8): hostile pillar
is refused and changes nothing, no key leaks anywhere, and faults are survived.

Uses the `laptop-server` topology of examples/; every test leaves the server as the
example describes it.
"""

from __future__ import annotations

import copy
import json
import time
import uuid

import pytest

from tests.e2e.deployments import ready
from tests.lab.topologies import diagnostics

KEY = "A" * 43 + "="  # valid base64 of 32 bytes, not anyone's key
OTHER = "GVzXgtFq+HrUL7FxEfsvDe22zdNCWHDRhBs8SkNS62h="  # one character off the laptop's


@pytest.fixture(scope="module")
def tunnel(shared_deployments):
    return ready(shared_deployments.get("laptop-server"))


@pytest.fixture
def server(tunnel):
    """The server as examples/laptop-server has it, before and after the test."""
    yield tunnel["server"]
    tunnel.apply(copy.deepcopy(tunnel.base), ["server"])


def secrets(dep) -> list[str]:
    found = []
    for pillar in dep.base.values():
        for iface in pillar["wireguard"]["interfaces"].values():
            found.append(iface["private_key"])
            found += [p["preshared_key"] for p in iface["peers"].values() if "preshared_key" in p]
    return found


def override(wg0=None, peer=None, **extra):
    """A pillar override that merges into the server's pillar."""
    iface = dict(wg0 or {})
    if peer:
        iface["peers"] = {"laptop": peer}
    data = {"wireguard": {"interfaces": {"wg0": iface}}}
    for name, value in extra.items():
        data["wireguard"]["interfaces"][name] = value
    return data


def live(host) -> dict:
    """What a refused run must leave exactly as it was."""
    return {
        "conf": host.out(["sha256sum", "/etc/wireguard/wg0.conf", "/etc/wireguard/wg0.key"]),
        "config_dir": host.out(["ls", "-la", "/etc/wireguard"]),
        "peers": host.out(["wg", "show", "wg0", "allowed-ips"]),
        "endpoints": host.out(["wg", "show", "wg0", "endpoints"]),
        "service_since": host.out(
            ["systemctl", "show", "-P", "ActiveEnterTimestampMonotonic", "wg-quick@wg0"]
        ),
        "ifindex": host.ifindex("wg0"),
    }


NEW_FILES = (
    "find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run "
    "-o -path /var/cache/salt -o -path /var/log -o -path /var/lib/systemd "
    "-o -path /var/tmp/systemd-private-* \\) -prune -o -newer /run/hardening.mark "
    "-print"
)

BAD = [
    # (why, pillar override, words the refusal must name)
    (
        "name leaves the config dir",
        override(**{"../x": {"address": "10.9.0.1/24"}}),
        ["interface '../x'"],
    ),
    (
        "name with a path",
        override(**{"wg0/../../etc/x": {"address": "10.9.0.1/24"}}),
        ["interface 'wg0/../../etc/x'"],
    ),
    (
        "name over 15 characters",
        override(**{"wg0123456789abcd": {"address": "10.9.0.1/24"}}),
        ["interface 'wg0123456789abcd'"],
    ),
    ("name ..", override(**{"..": {"address": "10.9.0.1/24"}}), ["interface '..'"]),
    (
        "private key with a newline",
        override({"private_key": KEY + "\nPostUp = id"}),
        ["interface 'wg0'", "'private_key'"],
    ),
    (
        "private key too short",
        override({"private_key": "QUFBQQ=="}),
        ["interface 'wg0'", "'private_key'", "decodes to 4 bytes"],
    ),
    (
        "private key not base64",
        override({"private_key": "not*base64*at*all"}),
        ["'private_key'", "not valid base64"],
    ),
    (
        "public key with a newline",
        override(peer={"public_key": KEY + "\n[Peer]"}),
        ["peer 'laptop'", "'public_key'"],
    ),
    (
        "public key too short",
        override(peer={"public_key": "QUFB"}),
        ["peer 'laptop'", "'public_key'", "decodes to 3 bytes"],
    ),
    (
        "public key not base64",
        override(peer={"public_key": "&" * 44}),
        ["peer 'laptop'", "'public_key'", "not valid base64"],
    ),
    (
        "preshared key not base64",
        override(peer={"preshared_key": "x"}),
        ["peer 'laptop'", "'preshared_key'"],
    ),
    (
        "peer name injects a line",
        override({"peers": {"evil\nPostUp = touch /pwned": {"public_key": KEY}}}),
        ["peer name", "control characters"],
    ),
    (
        "endpoint injects a line",
        override(peer={"endpoint": "h.example:1\nPostUp = touch /pwned"}),
        ["peer 'laptop'", "'endpoint'", "control characters"],
    ),
    (
        "DNS injects a line",
        override({"dns": ["1.1.1.1\nPostUp = touch /pwned"]}),
        ["interface 'wg0'", "'dns'", "control characters"],
    ),
    (
        "AllowedIPs injects a line",
        override(peer={"allowed_ips": ["10.0.0.2/32\nPostUp = id"]}),
        ["peer 'laptop'", "'allowed_ips'", "control characters"],
    ),
    (
        "address injects a line",
        override({"address": "10.0.0.1/24\nPostUp = id"}),
        ["'address'", "control characters"],
    ),
    (
        "hook injects a line",
        override({"post_up": "true\nPostUp = touch /pwned"}),
        ["'post_up'", "control characters"],
    ),
    ("port 0", override({"listen_port": 0}), ["'listen_port'", "1-65535"]),
    ("port 70000", override({"listen_port": 70000}), ["'listen_port'", "1-65535"]),
    ("MTU 100", override({"mtu": 100}), ["'mtu'", "576-65535"]),
    (
        "keepalive -1",
        override(peer={"persistent_keepalive": -1}),
        ["peer 'laptop'", "'persistent_keepalive'"],
    ),
    (
        "keepalive 70000",
        override(peer={"persistent_keepalive": 70000}),
        ["'persistent_keepalive'", "0-65535"],
    ),
    (
        "endpoint without a port",
        override(peer={"endpoint": "198.18.0.10"}),
        ["'endpoint'", "has no port"],
    ),
    (
        "unbracketed IPv6 endpoint",
        override(peer={"endpoint": "fd18::10:51820"}),
        ["'endpoint'", "without brackets"],
    ),
    (
        "AllowedIPs in two peers",
        override({"peers": {"twin": {"public_key": KEY, "allowed_ips": ["10.0.0.2/32"]}}}),
        ["10.0.0.2/32 is also in peer"],
    ),
    (
        "typo allowed_ip",
        override(peer={"allowed_ip": ["10.0.0.2/32"]}),
        ["peer 'laptop'", "did you mean 'allowed_ips'"],
    ),
    (
        "typo AllowedIPs",
        override(peer={"AllowedIPs": ["10.0.0.2/32"]}),
        ["peer 'laptop'", "did you mean 'allowed_ips'"],
    ),
    ("typo listenport", override({"listenport": 51820}), ["did you mean 'listen_port'"]),
    ("save_config", override({"save_config": True}), ["'save_config'", "overwrite"]),
    ("table with a command", override({"table": "main; touch /pwned"}), ["'table'"]),
    ("fwmark not a number", override({"fwmark": "0xZZ"}), ["'fwmark'"]),
    ("masquerade with rule text", override({"masquerade": ["eth0 -j ACCEPT"]}), ["'masquerade'"]),
    (
        "peer holds the interface's own key",
        override(peer={"public_key": "bhH5QuUtQess7sc76O95YwprHLK9r/xMH0DmohV2txM="}),
        ["own public key"],
    ),
    ("enabled is not a boolean", override({"enabled": "maybe"}), ["'enabled'"]),
    ("peer is not a mapping", override({"peers": {"laptop": "yes"}}), ["peer 'laptop'"]),
]


def test_the_battery_is_large_enough():
    assert len(BAD) >= 30


@pytest.mark.parametrize(("why", "pillar", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_pillar_fails_and_changes_nothing(tunnel, why, pillar, words):
    host = tunnel["server"]
    before = live(host)
    # the container's file systems (tmpfs, overlayfs over tmpfs) keep nanoseconds, and
    # find -newer compares them: a file the run writes is newer than the mark
    host.run(["touch", "/run/hardening.mark"])
    ret = tunnel.lab.master.state_apply("server", check=False, pillar=pillar)["server"]
    text = json.dumps(ret)
    assert isinstance(ret, list), f"{why}: the run was not refused: {text[:1500]}"
    for word in words:
        assert word in "\n".join(ret), f"{why}: '{word}' missing from {text[:1500]}"
    assert live(host) == before, f"{why}: something changed"
    created = host.out(["sh", "-c", NEW_FILES]).split()
    assert created == [], f"{why}: the refused run created {created}"
    for secret in secrets(tunnel):
        assert secret not in text


# ------------------------------------------------------------------------- secrecy
OUTPUTTERS = ("highstate", "json", "yaml", "nested", "raw", "txt")


def test_no_key_appears_anywhere(tunnel, server):
    dep, master = tunnel, tunnel.lab.master
    wg = {"address": "10.99.0.1/24", "listen_port": 51899}  # key generated on the minion
    pillar = copy.deepcopy(dep.base)
    pillar["server"]["mine_functions"] = {"wireguard.public_keys": []}
    pillar["server"]["wireguard"]["interfaces"]["wg9"] = wg
    laptop = pillar["server"]["wireguard"]["interfaces"]["wg0"]["peers"]["laptop"]
    seen, keys = [], list(secrets(dep))
    sampler = server.systemd_run(
        [
            "sh",
            "-c",
            "while :; do for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f "
            "2>/dev/null; echo; done; done > /run/argv.log",
        ],
        "argv-sampler",
    )
    try:
        for out in OUTPUTTERS:
            # a new preshared key each time, so every outputter shows a peer change;
            # keys live in pillar files, as users keep them (never on a command line)
            laptop["preshared_key"] = server.out(["wg", "genpsk"]).strip()
            keys.append(laptop["preshared_key"])
            master.write_pillar(pillar)
            argv = ["salt", f"--out={out}", "server", "state.apply", "wireguard"]
            proc = master.run(argv, check=False, timeout=300)
            seen.append(proc.stdout + proc.stderr)
            assert "wireguard-peers-live-wireguard-peer-wg0-laptop" in proc.stdout, proc.stdout
        laptop["preshared_key"] = server.out(["wg", "genpsk"]).strip()
        keys.append(laptop["preshared_key"])
        master.write_pillar(pillar)
        local = server.run(
            ["salt-call", "-l", "all", "state.apply", "wireguard"], check=False, timeout=300
        )
        seen.append(local.stdout + local.stderr)
        assert "Rendered data from file" in local.stderr, "-l all did log rendered SLS"
    finally:
        server.run(["systemctl", "stop", sampler], check=False)
    seen.append(server.out(["cat", "/run/argv.log"]))
    assert "salt-minion" in seen[-1], "the argv sampler saw the minion at work"
    generated = server.out(["cat", "/etc/wireguard/wg9.key"]).strip()
    keys.append(generated)
    master.salt("server", "mine.update")
    seen.append(json.dumps(master.salt_run("mine.get", "server", "wireguard.public_keys")))
    public = server.run(["wg", "pubkey"], input=generated + "\n").stdout.strip()
    assert public in seen[-1], "the mine publishes the generated key's public half"
    seen.append(json.dumps(master.salt("server", "wireguard.show")))
    patterns = [arg for key in keys for arg in ("-e", key)]
    for host, where in (
        (master, "/var/cache/salt/master/jobs"),
        (server, "/var/log/salt"),
        (server, "/var/cache/salt/minion"),
    ):
        found = host.run(["grep", "-rlaF", *patterns, where], check=False)
        assert found.returncode == 1, f"{host.name}: a key is written in {found.stdout}"
    jobs = master.salt_run("jobs.list_jobs")
    for jid in list(jobs)[-3:]:
        seen.append(json.dumps(master.salt_run("jobs.lookup_jid", jid)))
    everything = "\n".join(seen)
    for key in keys:
        assert key not in everything, "a private or preshared key leaked"
    modes = server.out(
        [
            "stat",
            "-c",
            "%n %a %U",
            "/etc/wireguard",
            "/etc/wireguard/wg0.conf",
            "/etc/wireguard/wg0.key",
            "/etc/wireguard/wg9.conf",
            "/etc/wireguard/wg9.key",
        ]
    ).splitlines()
    assert modes == [
        "/etc/wireguard 700 root",
        "/etc/wireguard/wg0.conf 600 root",
        "/etc/wireguard/wg0.key 600 root",
        "/etc/wireguard/wg9.conf 600 root",
        "/etc/wireguard/wg9.key 600 root",
    ]
    server.run(["systemctl", "disable", "--now", "wg-quick@wg9"], check=False)
    server.run(["rm", "-f", "/etc/wireguard/wg9.conf", "/etc/wireguard/wg9.key"])


# -------------------------------------------------------------------------- faults
def changed_ids(ret: dict) -> list[str]:
    return sorted(k.split("_|-")[1] for k, v in ret.items() if v["changes"])


def converged(dep) -> None:
    laptop = dep["laptop"]
    res = laptop.ping_until("10.0.0.1", within=30)
    assert res.received, "laptop cannot reach the server\n" + diagnostics(dep)
    again = dep.lab.master.state_apply("server")["server"]
    assert changed_ids(again) == [], f"not converged: {changed_ids(again)}"


@pytest.mark.parametrize("fault", ["pkill -9 -x wireguard-go", "ip link del wg0"])
def test_killed_or_deleted_interface_is_restored(tunnel, server, fault):
    server.run(["sh", "-c", fault])
    for _ in range(100):  # the kernel removes a dead process's tun device a moment later
        if " wg0:" not in server.out(["ip", "-o", "link"]):
            break
        time.sleep(0.1)
    assert " wg0:" not in server.out(["ip", "-o", "link"])
    ret = tunnel.lab.master.state_apply("server")["server"]
    assert "wireguard-config-file-wireguard-config-wg0" in changed_ids(ret)
    assert server.out(["wg", "show", "wg0", "peers"]).strip()
    converged(tunnel)


def test_hand_edited_conf_is_restored_and_the_difference_reported(tunnel, server):
    original = server.out(["sha256sum", "/etc/wireguard/wg0.conf"])
    server.run(
        [
            "sh",
            "-c",
            "sed -i 's/^ListenPort = .*/ListenPort = 4444/' "
            "/etc/wireguard/wg0.conf && echo '# edited by hand' >> "
            "/etc/wireguard/wg0.conf",
        ]
    )
    ret = tunnel.lab.master.state_apply("server")["server"]
    state = ret["wireguard_|-wireguard-config-file-wireguard-config-wg0_|-wg0_|-config"]
    diff = state["changes"]["diff"]
    assert "-ListenPort = 4444" in diff and "+ListenPort = 51820" in diff
    assert "-# edited by hand" in diff
    assert server.out(["sha256sum", "/etc/wireguard/wg0.conf"]) == original
    converged(tunnel)


def test_peer_added_by_hand_is_removed_and_reported(tunnel, server):
    stranger = server.out(["sh", "-c", "wg genkey | wg pubkey"]).strip()
    server.run(["wg", "set", "wg0", "peer", stranger, "allowed-ips", "10.0.0.77/32"])
    ret = tunnel.lab.master.state_apply("server")["server"]
    purge = ret["wireguard_|-wireguard-peers-live-wireguard-peers_purged-wg0_|-wg0_|-peers_purged"]
    assert purge["changes"] == {"removed": {"old": [stranger], "new": []}}
    assert stranger not in server.out(["wg", "show", "wg0", "peers"])
    converged(tunnel)


def test_a_config_that_fails_to_start_is_rolled_back(tunnel, server):
    before = server.out(["sha256sum", "/etc/wireguard/wg0.conf"])
    ret = tunnel.lab.master.state_apply(
        "server", check=False, pillar=override({"post_up": "sh -c 'echo hook refused >&2; exit 1'"})
    )["server"]
    state = ret["wireguard_|-wireguard-config-file-wireguard-config-wg0_|-wg0_|-config"]
    assert state["result"] is False
    assert "previous file was put back and is running again" in state["comment"]
    assert "hook refused" in state["comment"], state["comment"]
    assert server.out(["sha256sum", "/etc/wireguard/wg0.conf"]) == before
    assert server.unit_state("wg-quick@wg0") == ("active", "enabled")
    converged(tunnel)


@pytest.mark.parametrize("delay", [0.4, 1.0, 1.8])
def test_salt_call_killed_mid_apply_converges_next_time(tunnel, server, delay):
    new_port = {"listen_port": 51000 + int(delay * 10)}
    pillar = json.dumps(override(new_port))
    doomed = server.systemd_run(
        ["salt-call", "state.apply", "wireguard", f"pillar={pillar}"], "doomed-apply"
    )
    time.sleep(delay)
    server.run(["systemctl", "kill", "-s", "KILL", doomed], check=False)
    server.run(["systemctl", "reset-failed", doomed], check=False)
    for _ in range(50):
        if server.run(["systemctl", "is-active", doomed], check=False).returncode:
            break
        time.sleep(0.1)
    tunnel.lab.master.state_apply("server")  # no failed state
    leftovers = server.out(["sh", "-c", "ls -A /etc/wireguard | grep '^\\.' ; true"]).split()
    assert leftovers == [], f"half-written files left: {leftovers}"
    server.run(["wg-quick", "strip", "wg0"])  # the file parses
    converged(tunnel)


def wait_for_state_job(host, timeout=30):
    """Until a state job is registered in the minion's job cache (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    probe = ["sh", "-c", "grep -lqs state.apply /var/cache/salt/minion/proc/*"]
    while host.run(probe, check=False).returncode and time.monotonic() < deadline:
        time.sleep(0.1)


def test_two_applies_at_once_end_consistent(tunnel, server):
    pillar = json.dumps(override({"listen_port": 51777}))
    results = [f"/run/{name}-{uuid.uuid4().hex[:8]}.json" for name in ("apply-one", "apply-two")]
    command = "salt-call --out=json state.apply wireguard 'pillar={pillar}' > {path} 2>&1"
    units = []
    for path in results:
        if units:
            # Two that start in the same instant each see the other and both refuse
            # (Salt's own check, not the formula's): the second starts once the first runs.
            wait_for_state_job(server)
        units.append(
            server.systemd_run(
                ["sh", "-c", command.format(pillar=pillar, path=path)],
                "concurrent-apply",
                "RemainAfterExit=yes",
            )
        )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        states = [server.out(["systemctl", "show", "-P", "SubState", u]) for u in units]
        if all(s.strip() in ("exited", "failed", "dead") for s in states):
            break
        time.sleep(0.5)
    outputs = [server.out(["cat", path]) for path in results]
    for unit in units:
        server.run(["systemctl", "stop", unit], check=False)
    assert any('"result": true' in o for o in outputs), outputs
    for out in outputs:
        assert '"result": false' not in out or "is running as PID" in out, out
    conf = server.out(["wg-quick", "strip", "wg0"])
    assert server.out(["wg", "show", "wg0", "listen-port"]).strip() == "51777"
    assert "ListenPort = 51777" in conf
    again = tunnel.lab.master.state_apply("server", pillar=json.loads(pillar))["server"]
    assert changed_ids(again) == [], changed_ids(again)
