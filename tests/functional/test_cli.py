"""The execution module through the user's door: the real ``salt-call`` command line,
run inside a network namespace that holds real wireguard-go interfaces.

Every public function is called with a private key from pillar, a private key
generated on the minion and a preshared key in place; none of their bytes may show in
any output. Keys are passed positionally, as users paste them, including keys that
Salt's command line would otherwise read as ``NAME=`` keyword arguments.
"""

import json
import subprocess
import uuid

import pytest

import wgf_keys
from tests.support.minion import salt_call_in_netns

# names of their own: wireguard-go's control socket is /var/run/wireguard/<name>.sock on
# the machine's file system, shared by every namespace and every concurrent test run
RUN = uuid.uuid4().hex[:6]
PILLAR_IF, GENERATED_IF = f"wgc{RUN}p", f"wgc{RUN}g"


def identifier_key():
    """A key Salt's CLI would take for ``NAME=``: no ``+`` or ``/``, no leading digit."""
    while True:
        key = wgf_keys.genkey()
        if "+" not in key and "/" not in key and key[0].isalpha():
            return key


@pytest.fixture(scope="module")
def minion(tmp_path_factory):
    with salt_call_in_netns("cli", tmp_path_factory.mktemp("cli")) as salt_call:
        yield salt_call


@pytest.fixture(scope="module")
def keys(minion):
    """Two live interfaces: one keyed from pillar, one with a key made on the minion,
    a peer with a preshared key; their config files written by the formula's state."""
    secrets = {"pillar": wgf_keys.genkey(), "psk": wgf_keys.genpsk()}
    peer = identifier_key()
    minion.pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": str(minion.config_dir)},
                "interfaces": {
                    PILLAR_IF: {
                        "address": "10.66.0.1/24",
                        "listen_port": 51801,
                        "private_key": secrets["pillar"],
                        "peers": {
                            "laptop": {
                                "public_key": peer,
                                "allowed_ips": ["10.66.0.2/32"],
                                "endpoint": "localhost:51802",
                                "preshared_key": secrets["psk"],
                            }
                        },
                    },
                    GENERATED_IF: {
                        "address": "10.67.0.1/24",
                        "listen_port": 51803,
                        "endpoint": "198.18.67.1",
                        "clients": {"phone": {"preshared_key": True}},
                    },
                },
            }
        }
    )
    for name in (PILLAR_IF, GENERATED_IF):
        minion.call(
            "state.single", "wireguard.private_key", name, f"config_dir={minion.config_dir}"
        )
        minion.call("state.single", "wireguard.clients", name, f"config_dir={minion.config_dir}")
        minion.call("state.single", "wireguard.config", name, f"config_dir={minion.config_dir}")
    secrets["generated"] = (minion.config_dir / f"{GENERATED_IF}.key").read_text().strip()
    for kind in ("key", "psk"):
        secrets[f"client {kind}"] = (
            (minion.config_dir / "clients" / GENERATED_IF / f"phone.{kind}").read_text().strip()
        )
    minion.ns.wireguard(PILLAR_IF, secrets["pillar"], "10.66.0.1/24", 51801)
    minion.ns.wireguard(GENERATED_IF, secrets["generated"], "10.67.0.1/24", 51803)
    minion.ns.run(
        [
            "wg",
            "set",
            PILLAR_IF,
            "peer",
            peer,
            "allowed-ips",
            "10.66.0.2/32",
            "preshared-key",
            "/dev/stdin",
        ],
        input=secrets["psk"] + "\n",
    )
    return secrets, peer


def test_every_public_function_keeps_every_key_out_of_its_output(minion, keys):
    secrets, peer = keys
    other = identifier_key()
    calls = {
        "genkey": [],
        "genpsk": [],
        "pubkey": [wgf_keys.genkey()],
        "key_digest": [wgf_keys.genpsk()],
        "show": [],
        "interfaces": [],
        "apply_peers": [
            PILLAR_IF,
            f'peers=[{{"public_key": "{other}", "allowed_ips": ["10.66.0.9/32"]}}]',
        ],
        "set_peer": [PILLAR_IF, other, "allowed_ips=[10.66.0.8/32]"],
        "remove_peer": [PILLAR_IF, other],
        "resolve_endpoint": ["localhost:51820"],
        "is_interface_name": [PILLAR_IF],
        "service_name": [PILLAR_IF],
        "pillar_interfaces": [],
        "pillar_settings": [],
        "render_config": [PILLAR_IF],
        "route_command": ["172.16.1.0/24"],
        "public_keys": [],
        "config_peers": [PILLAR_IF],
        "check": ["sample=0"],
        "link_states": [],
        "reresolve": [PILLAR_IF, "test=True"],
        "clients": [],
        "client_config": [GENERATED_IF, "phone", "qr=svg", f"path={minion.root / 'export'}"],
        # nothing armed on this machine: each answers, changing nothing
        "confirm_status": [PILLAR_IF],
        "confirm_accept": [PILLAR_IF],
        "confirm_undo": [PILLAR_IF],
        "confirm_report": [],
        # no expiry timer ran on this machine: nothing to send
        "client_expiry_report": [],
        "metrics": [f"textfile={minion.root / 'wireguard.prom'}"],
        # reachability (issue 22): the facts, and no probe (none to run writes nothing)
        "verify_facts": [],
        "verify_probe": ["probes=[]"],
        # what salt-run wireguard.prepare decides from (issue 24)
        "orchestration_facts": [],
    }
    listed = json.loads(minion.call("sys.list_functions", "wireguard").stdout)["local"]
    assert sorted(f"wireguard.{name}" for name in calls) == sorted(listed), (
        "every public function is called here"
    )
    seen = []
    for name, args in calls.items():
        proc = minion.call(f"wireguard.{name}", *args)
        seen.append(proc.stdout + proc.stderr)
    seen.append(minion.call("wireguard.show", PILLAR_IF, "psk_digests=True").stdout)
    seen.append((minion.root / "minion.log").read_text())
    everything = "\n".join(seen)
    assert peer in everything and wgf_keys.pubkey(secrets["generated"]) in everything
    for what, key in secrets.items():
        assert key not in everything, f"the {what} key leaked"


def test_orchestration_facts_name_the_public_keys_and_no_private_one(minion, keys):
    """``salt-call wireguard.orchestration_facts``: the interfaces' public keys, no
    private one, nothing else (the runner reads the interfaces from the master's
    pillar); no synced copy of the modules here (they load from the checkout)."""
    secrets, _ = keys
    proc = minion.call("wireguard.orchestration_facts")
    facts = json.loads(proc.stdout)["local"]
    assert sorted(facts) == ["modules", "public_keys"], proc.stdout
    assert facts["public_keys"][PILLAR_IF] == wgf_keys.pubkey(secrets["pillar"])
    assert facts["public_keys"][GENERATED_IF] == wgf_keys.pubkey(secrets["generated"])
    assert facts["modules"] is None
    assert secrets["pillar"] not in proc.stdout + proc.stderr


def test_metrics_prints_the_peers_by_their_pillar_names_for_promtool(minion, keys):
    """``salt-call wireguard.metrics``: the exposition as text, peers by pillar's names
    (the client too), the file it writes the same; promtool accepts it."""
    textfile = minion.root / "cli-metrics.prom"
    proc = minion.call("wireguard.metrics", f"textfile={textfile}")
    text = json.loads(proc.stdout)["local"]
    assert text.startswith("# HELP wireguard_")
    assert (
        f'wireguard_peer_expected{{interface="{PILLAR_IF}",kind="peer",network="",peer="laptop"}} 1.0'
        in text
    )
    assert f'interface="{GENERATED_IF}",kind="client",network="",peer="phone"' in text
    assert textfile.read_text().strip() == text.strip()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=textfile.read_text(), capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    secrets, peer = keys
    for key in (*secrets.values(), peer):
        assert key not in text


def test_render_config_refuses_to_unmask(minion, keys):
    proc = minion.call("wireguard.render_config", PILLAR_IF, "mask=False", check=False)
    assert proc.returncode != 0 and keys[0]["pillar"] not in proc.stdout + proc.stderr


@pytest.mark.parametrize("function", ["pubkey", "key_digest"])
def test_a_key_shaped_like_name_equals_is_taken_positionally(minion, function):
    key = identifier_key()
    proc = minion.call(f"wireguard.{function}", key)
    want = wgf_keys.pubkey(key) if function == "pubkey" else wgf_keys.digest(key)
    assert json.loads(proc.stdout)["local"] == want


def test_peers_set_and_removed_with_such_keys_at_the_command_line(minion, keys):
    key = identifier_key()
    minion.call("wireguard.set_peer", PILLAR_IF, key, "allowed_ips=[10.66.0.7/32]")
    live = json.loads(minion.call("wireguard.show", PILLAR_IF).stdout)["local"]
    assert live[PILLAR_IF]["peers"][key]["allowed_ips"] == ["10.66.0.7/32"]
    minion.call("wireguard.remove_peer", PILLAR_IF, key)
    live = json.loads(minion.call("wireguard.show", PILLAR_IF).stdout)["local"]
    assert key not in live[PILLAR_IF]["peers"]


def test_a_table_the_minion_does_not_define_is_refused_before_anything_is_written(
    minion, keys, tmp_path
):
    config_dir = tmp_path / "wg"
    before = (minion.root / "pillar" / "data.sls").read_text()
    minion.pillar(
        {
            "wireguard": {
                "interfaces": {"wgtab0": {"address": "10.68.0.1/24", "table": "nosuchtable"}}
            }
        }
    )
    try:
        proc = minion.call("wireguard.pillar_interfaces", check=False)
        assert proc.returncode != 0
        assert (
            "interface 'wgtab0', key 'table': table 'nosuchtable' is not defined on this minion"
        ) in proc.stdout + proc.stderr
        proc = minion.call(
            "state.single", "wireguard.config", "wgtab0", f"config_dir={config_dir}", check=False
        )
        assert proc.returncode != 0 and "nosuchtable" in proc.stdout
        assert not config_dir.exists()
        minion.pillar(
            {"wireguard": {"interfaces": {"wgtab0": {"address": "10.68.0.1/24", "table": "main"}}}}
        )
        assert (
            json.loads(minion.call("wireguard.pillar_interfaces").stdout)["local"]["wgtab0"][
                "table"
            ]
            == "main"
        )
    finally:
        (minion.root / "pillar" / "data.sls").write_text(before)


# ------------------------------------------------------------ crashes that are refusals
# issue 19: each of these was a traceback (or "Passed invalid arguments: unhashable type")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["wireguard.link_states", 'since={"interfaces": "x"}'],
            "since: expected an earlier return of wireguard.link_states",
        ),
        (["wireguard.render_config", "[wg0]"], "interface: got a list"),
        (["wireguard.clients", "{}"], "interface: got a dict"),
        (["wireguard.client_config", "[x]", "phone"], "interface: got a list"),
        (["wireguard.client_config", "wg" + "0" * 300, "phone"], "interface: got 302 characters"),
        (["wireguard.apply_peers", "wg0", "peers=5"], "peers: expected a list, got int"),
        (["wireguard.public_keys", "config_dir=5"], "config_dir: expected a directory path"),
        (
            ["wireguard.orchestration_facts", "hash_type=crc"],
            "hash_type: expected the name of a hash",
        ),
        (["wireguard.check", "config_dir=[x]"], "config_dir: expected a directory path"),
        (["wireguard.check", "sample=1" + "0" * 400], "sample is a number of seconds from 0"),
        (
            ["wireguard.check", "stale_after=1" + "0" * 4000],
            "stale_after: a number of more than 4096 bits is refused",
        ),
        (["wireguard.verify_probe", "probes=5"], "probes: a list of probes, got int"),
        (
            [
                "wireguard.verify_probe",
                '[{"to": "10.66.0.9", "proto": "icmp", "source": "10.99.0.1"}]',
            ],
            "probes, probe 1: source '10.99.0.1' is no tunnel address of this minion",
        ),
        (
            ["state.single", "wireguard.private_key", "wgx0", "config_dir=[x]"],
            "config_dir: expected a directory path (a string), got list",
        ),
        (
            ["state.single", "wireguard.hosts", "wgx0", "path=[/etc/hosts]"],
            "path: expected a directory path (a string), got list",
        ),
        (
            ["state.single", "wireguard.hosts_absent", "wgx0", "path={a: b}"],
            "path: expected a directory path (a string), got dict",
        ),
    ],
)
def test_a_wrong_argument_is_refused_by_name_not_a_traceback(minion, keys, args, message):
    proc = minion.call(*args, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and message in out, out[-3000:]
    assert "Traceback" not in out and "unhashable" not in out
    for what, key in keys[0].items():
        assert key not in out, f"the {what} key leaked"


def test_a_node_with_a_colon_cannot_have_preshared_keys(minion, tmp_path):
    """Its key's pillar path splits at ':': the states crashed with a KeyError."""
    before = (minion.root / "pillar" / "data.sls").read_text()
    psk = wgf_keys.genpsk()
    minion.pillar(
        {
            "wireguard": {
                "networks": {
                    "corp": {
                        "interface": "wgcolon0",
                        "preshared_keys": True,
                        "nodes": {
                            "cli": {"address": "10.69.0.1/24"},
                            "a:b": {"address": "10.69.0.2/24"},
                        },
                    }
                },
                "network_psks": {"corp": {"a:b": psk}},
            }
        }
    )
    try:
        for state in ("wireguard.private_key", "wireguard.config"):
            proc = minion.call(
                "state.single", state, "wgcolon0", f"config_dir={tmp_path / 'wg'}", check=False
            )
            out = proc.stdout + proc.stderr
            assert proc.returncode != 0, out
            assert (
                "network 'corp', node 'a:b', key 'preshared_keys': a network or node name "
                "with ':' cannot have preshared keys"
            ) in out, out[-3000:]
            assert "Traceback" not in out and "KeyError" not in out and psk not in out
        assert not (tmp_path / "wg").exists()
    finally:
        (minion.root / "pillar" / "data.sls").write_text(before)


def test_a_key_typed_as_a_peer_name_is_not_echoed(minion, keys):
    psk = keys[0]["psk"]
    proc = minion.call("wireguard.reresolve", f"peer={psk}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "no peer '<hidden>' in the config of" in out, out
    assert psk[:8] not in out and psk[8:] not in out


def _never_shown(proc, *secrets):
    out = proc.stdout + proc.stderr
    for key in secrets:  # Salt's own refusal quoted 43 of the 44 characters
        assert key[:12] not in out and key[-13:-1] not in out, out


@pytest.mark.parametrize("function", ["pubkey", "key_digest"])
def test_two_keys_typed_as_name_equals_are_refused_by_position_never_echoed(minion, function):
    first, second = identifier_key(), identifier_key()
    proc = minion.call(f"wireguard.{function}", first, second, check=False)
    assert proc.returncode != 0
    assert "argument(s) 2 of the command line hold a key" in proc.stdout + proc.stderr
    _never_shown(proc, first, second)


def test_a_psk_typed_as_name_equals_is_set_peers_sixth_argument(minion, keys):
    public, psk = identifier_key(), identifier_key()
    proc = minion.call(
        "wireguard.set_peer", PILLAR_IF, public, "[10.66.0.6/32]", "198.18.66.6:51806", "25", psk
    )
    _never_shown(proc, psk)
    live = json.loads(minion.call("wireguard.show", PILLAR_IF, "psk_digests=True").stdout)
    peer = live["local"][PILLAR_IF]["peers"][public]
    assert peer["allowed_ips"] == ["10.66.0.6/32"] and peer["persistent_keepalive"] == 25
    assert peer["preshared_key_sha256"] == wgf_keys.digest(psk)
    extra = identifier_key()
    proc = minion.call(
        "wireguard.set_peer",
        PILLAR_IF,
        public,
        "[10.66.0.6/32]",
        "198.18.66.6:51806",
        "25",
        psk,
        extra,
        check=False,
    )
    assert proc.returncode != 0 and "argument(s) 7 of" in proc.stdout + proc.stderr
    _never_shown(proc, psk, extra)
    proc = minion.call("wireguard.remove_peer", PILLAR_IF, public, extra, check=False)
    assert proc.returncode != 0 and "argument(s) 3 of" in proc.stdout + proc.stderr
    _never_shown(proc, extra)
    minion.call("wireguard.remove_peer", PILLAR_IF, public)


@pytest.mark.parametrize(
    "args", [["apply_peers", PILLAR_IF], ["reresolve", PILLAR_IF, "x", "/nonexistent", "True"]]
)
def test_a_stray_key_never_reaches_salts_own_refusal(minion, keys, args):
    key = identifier_key()
    proc = minion.call(f"wireguard.{args[0]}", *args[1:], key, check=False)
    assert proc.returncode != 0 and "keyword arguments are not valid" not in proc.stdout
    _never_shown(proc, key)


def test_key_material_in_comments_of_an_adopted_config_is_never_shown(minion, keys):
    """A hand-written config keeps an old key commented out, a preshared key as the
    peer's comment and another key in a note: none shows in the state's diff (also in
    test mode), in check's drift message or as the peer's name."""
    name, own = f"wgc{RUN}h", wgf_keys.genkey()
    old, psk, note = wgf_keys.genkey(), wgf_keys.genpsk(), wgf_keys.genkey()
    peer = wgf_keys.pubkey(wgf_keys.genkey())
    (minion.config_dir / f"{name}.conf").write_text(
        f"[Interface]\n#PrivateKey = {old}\nPrivateKey = {own}\nAddress = 10.69.0.1/24\n"
        f"# rotated away from {note} in May\n\n[Peer]\n# {psk}\nPublicKey = {peer}\n"
        f"#  presharedkey={psk}\nAllowedIPs = 10.69.0.2/32\n"
    )
    before = (minion.root / "pillar" / "data.sls").read_text()
    minion.pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": str(minion.config_dir)},
                "interfaces": {
                    name: {
                        "address": "10.69.0.3/24",
                        "private_key": own,
                        "peers": {"hub": {"public_key": peer, "allowed_ips": ["10.69.0.2/32"]}},
                    }
                },
            }
        }
    )
    try:
        seen = [minion.call("wireguard.check", name, "sample=0", check=False)]
        found = json.loads(seen[0].stdout)["local"]["interfaces"][name]["problems"]
        drift = [p["message"] for p in found if p["check"] == "pillar"]
        assert drift and "-#PrivateKey = <hidden>" in drift[0]
        assert "-# rotated away from <hidden> in May" in drift[0]
        peers = minion.call("wireguard.config_peers", name)
        assert psk[:12] not in peers.stdout and peer in peers.stdout
        seen.append(peers)
        for mode in ("test=True", "test=False"):
            proc = minion.call(
                "state.single", "wireguard.config", name, f"config_dir={minion.config_dir}", mode
            )
            assert f"PublicKey = {peer}" in proc.stdout and "+Address = 10.69.0.3/24" in proc.stdout
            assert "#PrivateKey = <hidden>" in proc.stdout
            seen.append(proc)
        everything = "\n".join(p.stdout + p.stderr for p in seen)
        for what, key in {"old": old, "own": own, "psk": psk, "note": note}.items():
            assert key[:12] not in everything, f"the {what} key was shown"
    finally:
        (minion.root / "pillar" / "data.sls").write_text(before)


def test_verify_facts_names_the_live_peers_and_shows_no_key(minion, keys):
    """What salt-run wireguard.verify decides from, as the minion tells it."""
    secrets, peer = keys
    proc = minion.call("wireguard.verify_facts")
    facts = json.loads(proc.stdout)["local"]
    wg = facts["interfaces"][PILLAR_IF]
    assert wg["up"] is True and wg["address"] == ["10.66.0.1/24"]
    assert wg["peers"]["laptop"]["allowed_ips"] == ["10.66.0.2/32"]
    assert wg["peers"]["laptop"]["public_key"] == peer
    assert {"dst": "10.66.0.0/24", "dev": PILLAR_IF, "table": "main"} in facts["routes"]
    assert "10.66.0.1/24" in facts["addresses"]
    assert set(facts["forwarding"]) == {"ipv4", "ipv6"}
    for what, key in secrets.items():
        assert key not in proc.stdout + proc.stderr, f"the {what} key leaked"


def test_a_bad_assertion_in_pillar_is_refused_naming_it(minion, keys):
    pillar = json.loads(minion.call("pillar.items", "unmask=True", "--out=json").stdout)["local"]
    bad = {**pillar["wireguard"], "expect": [{"from": "laptop", "to": "10.66.0.1", "port": 22}]}
    minion.pillar({"wireguard": bad})
    try:
        for function in ("wireguard.verify_facts", "wireguard.pillar_interfaces"):
            proc = minion.call(function, check=False)
            out = proc.stdout + proc.stderr
            assert proc.returncode != 0, out
            assert (
                "wireguard:expect, assertion 1 (laptop->10.66.0.1), key 'port': a port needs "
                "proto tcp or udp, not icmp"
            ) in out
    finally:
        minion.pillar({"wireguard": pillar["wireguard"]})
