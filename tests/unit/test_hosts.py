"""Peers by name (issue 22 part 3): the ``hosts`` option checked with the pillar, the
names it gives, the block of /etc/hosts spliced into the file's text without touching
any other line, and the states ``wireguard.hosts``/``hosts_absent`` over a fake host."""

import os

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

import wgf_hosts
import wgf_keys
from tests.support import pipeline
from tests.support.fake_host import FakeHost
from tests.support.fake_minion import IF, FakeMinion, hand_in
from tests.unit.conftest import load

KEYS = [wgf_keys.pubkey(wgf_keys.genkey()) for _ in range(4)]
OTHERS = "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost   # keep  \n\n# a comment\n"


def server(**extra):
    return {
        "interfaces": {
            "wg0": {
                "address": ["10.0.0.1/24", "fd00::1/64"],
                "listen_port": 51820,
                "hosts": {"domain": "wg.example"},
                "peers": {
                    "Laptop": {"public_key": KEYS[0], "allowed_ips": ["10.0.0.2/32"]},
                    # its first host address, not the network behind it
                    "site-b": {
                        "public_key": KEYS[1],
                        "allowed_ips": ["192.168.2.0/24", "fd00::3/128", "10.0.0.3/32"],
                    },
                    # no host address: no tunnel address to name
                    "lan": {"public_key": KEYS[2], "allowed_ips": ["192.168.9.0/24"]},
                    "gone": {"public_key": KEYS[3], "allowed_ips": ["10.0.0.9/32"], "absent": True},
                },
                "clients": {"phone": {"address": "10.0.0.200"}},
                **extra,
            }
        }
    }


def hosts_of(pillar, minion="server", interface="wg0"):
    return pipeline.interfaces(pillar, minion)[interface]["hosts"]


# ------------------------------------------------------------------ the names


def test_the_minion_peers_and_clients_are_named_lower_cased_at_their_tunnel_address():
    got = hosts_of(server())
    assert got == {
        "domain": "wg.example",
        "names": [
            ["10.0.0.1", "server"],
            ["10.0.0.2", "laptop"],
            ["10.0.0.3", "site-b"],
            ["10.0.0.200", "phone"],
        ],
    }
    assert wgf_hosts.block(got["domain"], got["names"]) == [
        "10.0.0.1 server.wg.example",
        "10.0.0.2 laptop.wg.example",
        "10.0.0.3 site-b.wg.example",
        "10.0.0.200 phone.wg.example",
    ]


def test_without_the_option_or_with_the_interface_absent_there_is_no_block():
    pillar = server()
    del pillar["interfaces"]["wg0"]["hosts"]
    assert hosts_of(pillar) is None
    assert hosts_of(server(absent=True)) is None


MESH = {
    "networks": {
        "corp": {
            "interface": "wg1",
            "topology": "hub",
            "hubs": ["hq"],
            "hosts": {"domain": "Corp.Example"},
            "nodes": {
                "hq": {"address": "10.1.0.1/24", "endpoint": "198.18.0.1"},
                "branch1": {"address": "10.1.0.11/24", "allowed_ips": ["192.168.21.0/24"]},
                "branch2": {"address": "10.1.0.12/24"},
            },
        }
    }
}


@pytest.mark.parametrize("minion", ["hq", "branch1"])
def test_every_node_of_a_network_is_named_on_every_node_even_behind_a_hub(minion):
    got = hosts_of(MESH, minion, "wg1")
    assert got["domain"] == "corp.example"
    assert dict((name, address) for address, name in got["names"]) == {
        "hq": "10.1.0.1",
        "branch1": "10.1.0.11",
        "branch2": "10.1.0.12",
    }
    assert got["names"][0][1] == minion  # the minion first


@pytest.mark.parametrize(
    "domain",
    [
        "-wg.example",
        "wg-.example",
        "wg..example",
        "wg.example.",
        "wg_x.example",
        "a" * 64,
        ".".join(["a" * 63] * 4),
        "",
        5,
        ["wg.example"],
        None,
    ],
)
def test_a_domain_that_is_not_a_dns_name_is_refused_naming_the_interface_key_and_value(domain):
    with pytest.raises(SaltInvocationError) as exc:
        pipeline.run(server(hosts={"domain": domain}), "server")
    said = str(exc.value)
    assert "interface 'wg0', key 'hosts'" in said
    if isinstance(domain, str) and domain:
        assert repr(domain[:100]) in said or domain[:100] in said


def test_a_bad_domain_of_a_network_is_refused_naming_the_network():
    pillar = {"networks": {"corp": {**MESH["networks"]["corp"], "hosts": {"domain": "x_y.lan"}}}}
    with pytest.raises(SaltInvocationError) as exc:
        pipeline.run(pillar, "hq")
    assert "network 'corp', key 'hosts'" in str(exc.value) and "'x_y.lan'" in str(exc.value)


@pytest.mark.parametrize(
    "value", [{"domian": "wg.example"}, {}, "wg.example", {"domain": "a.b", "ttl": 5}]
)
def test_hosts_is_a_mapping_with_only_domain(value):
    with pytest.raises(SaltInvocationError, match="interface 'wg0', key 'hosts'"):
        pipeline.run(server(hosts=value), "server")


def test_the_longest_dns_name_is_taken():
    domain = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(domain) == 253
    assert hosts_of(server(hosts={"domain": domain}))["domain"] == domain


@pytest.mark.parametrize(
    ("pillar", "minion", "named"),
    [
        (
            server(peers={"my_laptop": {"public_key": KEYS[0], "allowed_ips": ["10.0.0.2/32"]}}),
            "server",
            "peer 'my_laptop'",
        ),
        (server(clients={"phone.home": {}}), "server", "client 'phone.home'"),
        (server(), "server.example.com", "the minion id 'server.example.com'"),
        (
            server(
                peers={"Phone": {"public_key": KEYS[0], "allowed_ips": ["10.0.0.2/32"]}},
                clients={"phone": {}},
            ),
            "server",
            "'phone' and peer 'Phone'",
        ),
    ],
)
def test_a_name_that_is_not_a_dns_label_is_refused_naming_it(pillar, minion, named):
    with pytest.raises(SaltInvocationError) as exc:
        pipeline.run(pillar, minion)
    assert "interface 'wg0', key 'hosts'" in str(exc.value) and named in str(exc.value)


def test_names_are_checked_only_where_the_option_is_on():
    pillar = server(clients={"phone.home": {}})
    del pillar["interfaces"]["wg0"]["hosts"]
    assert hosts_of(pillar, "server.example.com") is None


# ------------------------------------------------------------------ the file


BLOCK = ["10.0.0.1 server.wg.example", "10.0.0.2 laptop.wg.example"]


def test_a_new_block_is_added_at_the_end_and_every_other_line_stays():
    text = wgf_hosts.splice(OTHERS, "wg0", BLOCK)
    assert text == OTHERS + (
        "# BEGIN wireguard-formula wg0\n"
        "10.0.0.1 server.wg.example\n"
        "10.0.0.2 laptop.wg.example\n"
        "# END wireguard-formula wg0\n"
    )
    assert wgf_hosts.current(text, "wg0") == BLOCK
    assert wgf_hosts.current(OTHERS, "wg0") is None
    assert wgf_hosts.remove(text, "wg0") == OTHERS


def test_a_block_is_replaced_in_its_place_byte_for_byte_around_it():
    before = "127.0.0.1 localhost\r\n# caf\udce9 latin-1\n"
    after = "\n10.9.9.9 mine\t# not ours\r\n198.18.0.1 mesh1.example.net"  # no last newline
    text = wgf_hosts.splice(before, "wg0", BLOCK) + after
    renamed = wgf_hosts.splice(text, "wg0", ["10.0.0.2 notebook.wg.example"])
    assert (
        renamed
        == before
        + (
            "# BEGIN wireguard-formula wg0\n10.0.0.2 notebook.wg.example\n# END wireguard-formula wg0\n"
        )
        + after
    )
    assert wgf_hosts.remove(renamed, "wg0") == before + after


def test_the_block_rendered_whole_is_what_splice_adds():
    names = [["10.0.0.1", "server"], ["fd00::2", "laptop"]]
    text = wgf_hosts.render("wg0", "wg.example", names)
    assert text == (
        "# BEGIN wireguard-formula wg0\n10.0.0.1 server.wg.example\n"
        "fd00::2 laptop.wg.example\n# END wireguard-formula wg0\n"
    )
    assert wgf_hosts.splice(OTHERS, "wg0", wgf_hosts.block("wg.example", names)) == OTHERS + text


def test_a_file_without_a_last_newline_gets_one_before_the_block():
    assert wgf_hosts.splice("127.0.0.1 localhost", "wg0", []) == (
        "127.0.0.1 localhost\n# BEGIN wireguard-formula wg0\n# END wireguard-formula wg0\n"
    )
    assert wgf_hosts.splice("", "wg0", None) == "" and wgf_hosts.splice(None, "wg0", None) == ""


def test_each_interface_has_its_own_block():
    text = wgf_hosts.splice(wgf_hosts.splice(OTHERS, "wg0", BLOCK), "wg1", ["10.1.0.1 a.b"])
    text = wgf_hosts.splice(text, "wg0", ["10.0.0.5 x.wg.example"])
    assert wgf_hosts.current(text, "wg1") == ["10.1.0.1 a.b"]
    assert wgf_hosts.current(text, "wg0") == ["10.0.0.5 x.wg.example"]
    assert wgf_hosts.remove(wgf_hosts.remove(text, "wg1"), "wg0") == OTHERS
    # a block of wg10 is no block of wg1
    assert wgf_hosts.current(wgf_hosts.splice("", "wg10", BLOCK), "wg1") is None


def test_a_second_copy_of_the_block_goes_and_an_unclosed_block_is_refused():
    one = wgf_hosts.splice("", "wg0", BLOCK)
    assert wgf_hosts.splice(one + "x y\n" + one, "wg0", ["1.2.3.4 a.b"]) == (
        wgf_hosts.splice("", "wg0", ["1.2.3.4 a.b"]) + "x y\n"
    )
    with pytest.raises(CommandExecutionError, match=r"/etc/hosts, line 2: .*has no"):
        wgf_hosts.splice(
            "a b\n# BEGIN wireguard-formula wg0\n1.2.3.4 a.b\n", "wg0", [], "/etc/hosts"
        )


# ------------------------------------------------------------------ the states


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def minion(tmp_path):
    fake = FakeMinion(tmp_path)
    fake.pillar["interfaces"][IF].update(
        hosts={"domain": "wg.example"},
        peers={"laptop": {"public_key": KEYS[0], "allowed_ips": ["10.7.0.2/32"]}},
    )
    return fake


@pytest.fixture
def states(minion, host, monkeypatch):
    module = load("_states/wireguard_hosts.py", "wireguard_hosts_under_test")
    module.__salt__ = minion.functions()
    module.__opts__ = {"test": False}
    hand_in(monkeypatch, host)
    return module


def test_the_state_predicts_writes_renames_removes_and_then_changes_nothing(
    states, minion, host, tmp_path
):
    path = tmp_path / "hosts"
    path.write_text(OTHERS)
    os.chmod(path, 0o640)
    states.__opts__["test"] = True
    ret = states.hosts(IF, path=str(path))
    assert ret["result"] is None and host.done == [] and path.read_text() == OTHERS
    assert ret["changes"] == {
        "old": None,
        "new": ["10.7.0.1 minion.wg.example", "10.7.0.2 laptop.wg.example"],
    }
    states.__opts__["test"] = False
    ret = states.hosts(IF, path=str(path))
    assert ret["result"] is True and host.done == [("write_text", str(path))]
    assert path.read_text().startswith(OTHERS)
    assert "10.7.0.2 laptop.wg.example\n" in path.read_text()
    ret = states.hosts(IF, path=str(path))
    assert ret["result"] is True and ret["changes"] == {} and len(host.done) == 1

    peers = minion.pillar["interfaces"][IF]["peers"]
    peers["notebook"] = peers.pop("laptop")
    ret = states.hosts(IF, path=str(path))
    assert ret["changes"]["old"][1] == "10.7.0.2 laptop.wg.example"
    assert ret["changes"]["new"][1] == "10.7.0.2 notebook.wg.example"
    assert "laptop" not in path.read_text()

    del minion.pillar["interfaces"][IF]["hosts"]  # the option goes: so does the block
    ret = states.hosts(IF, path=str(path))
    assert ret["changes"]["new"] is None and path.read_text() == OTHERS
    assert states.hosts(IF, path=str(path))["changes"] == {}


def test_an_absent_interface_or_one_not_in_pillar_loses_its_block(states, minion, tmp_path):
    path = tmp_path / "hosts"
    path.write_text(OTHERS)
    assert states.hosts(IF, path=str(path))["changes"]["old"] is None
    minion.pillar["interfaces"][IF]["absent"] = True
    assert states.hosts(IF, path=str(path))["changes"]["new"] is None
    assert path.read_text() == OTHERS
    path.write_text(wgf_hosts.splice(OTHERS, "wg9", BLOCK))
    assert states.hosts("wg9", path=str(path))["changes"]["old"] == BLOCK
    assert path.read_text() == OTHERS


def test_hosts_absent_removes_only_its_block_and_honours_test(states, host, tmp_path):
    path = tmp_path / "hosts"
    text = wgf_hosts.splice(wgf_hosts.splice(OTHERS, IF, BLOCK), "wg1", BLOCK)
    path.write_text(text)
    states.__opts__["test"] = True
    ret = states.hosts_absent(IF, path=str(path))
    assert ret["result"] is None and ret["changes"] == {"old": BLOCK, "new": None}
    assert path.read_text() == text and host.done == []
    states.__opts__["test"] = False
    assert states.hosts_absent(IF, path=str(path))["result"] is True
    assert path.read_text() == wgf_hosts.splice(OTHERS, "wg1", BLOCK)
    assert states.hosts_absent(IF, path=str(path))["changes"] == {}
    assert states.hosts_absent("wg5", path=str(tmp_path / "none"))["changes"] == {}


def test_a_bad_pillar_or_a_broken_block_fails_the_state_and_writes_nothing(
    states, minion, host, tmp_path
):
    path = tmp_path / "hosts"
    path.write_text(OTHERS)
    minion.pillar["interfaces"][IF]["hosts"] = {"domain": "bad_domain"}
    ret = states.hosts(IF, path=str(path))
    assert ret["result"] is False and "key 'hosts'" in ret["comment"]
    assert "'bad_domain'" in ret["comment"]
    minion.pillar["interfaces"][IF]["hosts"] = {"domain": "wg.example"}
    path.write_text(OTHERS + f"# BEGIN wireguard-formula {IF}\n")
    ret = states.hosts(IF, path=str(path))
    assert ret["result"] is False and "has no" in ret["comment"]
    assert host.done == [] and path.read_text() == OTHERS + f"# BEGIN wireguard-formula {IF}\n"


def test_the_host_adapter_keeps_the_files_mode_owner_and_other_bytes(tmp_path):
    import wgf_host

    path = tmp_path / "hosts"
    raw = b"127.0.0.1 localhost\r\n# caf\xe9\n"
    path.write_bytes(raw)
    os.chmod(path, 0o604)
    os.chown(path, 0, 4)
    real = wgf_host.Host({})
    text = real.read_text(str(path))
    real.write_text(str(path), wgf_hosts.splice(text, "wg0", BLOCK))
    assert path.read_bytes().startswith(raw)
    stat = os.stat(path)
    assert (stat.st_mode & 0o7777, stat.st_uid, stat.st_gid) == (0o604, 0, 4)
    real.write_text(str(path), wgf_hosts.remove(real.read_text(str(path)), "wg0"))
    assert path.read_bytes() == raw
    assert [p.name for p in tmp_path.iterdir()] == ["hosts"]  # no temporary left
    assert real.read_text(str(tmp_path / "missing")) is None
    link = tmp_path / "link"
    link.symlink_to(path)
    real.write_text(str(link), "1.2.3.4 a.b\n")
    assert link.is_symlink() and path.read_text() == "1.2.3.4 a.b\n"


def test_a_peer_or_client_with_the_minions_name_keeps_it_and_the_minion_is_warned():
    got = pipeline.interfaces(server(), "phone")["wg0"]
    assert ["10.0.0.200", "phone"] in got["hosts"]["names"]
    assert "10.0.0.1" not in [address for address, _ in got["hosts"]["names"]]
    assert any("client 'phone' has the name of this minion" in w for w in got["warnings"])


def test_a_peer_whose_key_the_mine_has_not_published_yet_is_named_already():
    pillar = server()
    pillar["interfaces"]["wg0"]["peers"]["db1"] = {"minion": "db1", "allowed_ips": ["10.0.0.4/32"]}
    got = pipeline.interfaces(pillar, "server", mine=lambda minions: {})["wg0"]
    assert "db1" not in got["peers"]  # left out of this run, with a warning
    assert ["10.0.0.4", "db1"] in got["hosts"]["names"]
