"""Mine-driven networks: each minion builds its own interface from one declaration."""

import pytest
from salt.exceptions import SaltInvocationError

import wgf_conf
import wgf_keys
from tests.support import pipeline


@pytest.fixture
def keys():
    return {m: wgf_keys.pubkey(wgf_keys.genkey()) for m in ("s1", "s2", "s3", "s4", "hub1", "hub2")}


class Mine:
    """The mine's answer to ``wireguard.public_keys`` (what ``published_keys`` stands for)."""

    def __init__(self, keys):
        self.published = {m: {"wg1": k} for m, k in keys.items()}
        self.calls = []

    def __call__(self, minions):
        self.calls.append(list(minions))
        return {m: self.published[m] for m in minions if m in self.published}


@pytest.fixture
def mine(keys):
    return Mine(keys)


def network(topology="mesh", **nodes):
    net = {"interface": "wg1", "listen_port": 51821, "topology": topology, "nodes": nodes}
    if topology == "hub":
        net["hubs"] = ["hub1"]
    return {"networks": {"corp": net}}


def as_minion(mine, minion, pillar):
    return pipeline.interfaces(pillar, minion, mine)


MESH = {
    "s1": {
        "address": "10.2.0.1/24",
        "endpoint": "198.51.100.1",
        "allowed_ips": ["192.168.10.0/24"],
    },
    "s2": {"address": "10.2.0.2/24", "endpoint": "198.51.100.2:4000"},
    "s3": {"address": "10.2.0.3/24"},  # roaming
    "s4": {"address": "fd02::4/64", "endpoint": "fd00::4"},
}


def test_mesh_every_node_peers_with_every_other(keys, mine):
    wg1 = as_minion(mine, "s2", network(**MESH))["wg1"]
    assert wg1["address"] == ["10.2.0.2/24"] and wg1["listen_port"] == 51821
    assert set(wg1["peers"]) == {"s1", "s3", "s4"}
    s1, s3, s4 = wg1["peers"]["s1"], wg1["peers"]["s3"], wg1["peers"]["s4"]
    assert s1["public_key"] == keys["s1"]
    assert s1["allowed_ips"] == ["10.2.0.1/32", "192.168.10.0/24"]
    assert s1["endpoint"] == "198.51.100.1:51821"
    assert s4["endpoint"] == "[fd00::4]:51821" and s4["allowed_ips"] == ["fd02::4/128"]
    assert s3["endpoint"] is None and s3["persistent_keepalive"] is None
    assert wg1["forwarding"] is False
    assert mine.calls == [["s1", "s3", "s4"]]


def test_roaming_node_dials_with_keepalive_and_nodes_with_lans_forward(mine):
    wg1 = as_minion(mine, "s3", network(**MESH))["wg1"]
    assert wg1["peers"]["s1"]["persistent_keepalive"] == 25
    assert wg1["peers"]["s2"]["endpoint"] == "198.51.100.2:4000"
    assert as_minion(mine, "s1", network(**MESH))["wg1"]["forwarding"] is True


def test_a_minion_that_is_no_node_gets_nothing(mine):
    assert as_minion(mine, "elsewhere", network(**MESH)) == {}
    assert mine.calls == []


HUB = {
    "hub1": {
        "address": "10.3.0.1/24",
        "endpoint": "198.51.100.10",
        "allowed_ips": ["172.16.0.0/24"],
    },
    "s1": {"address": "10.3.0.11/24", "allowed_ips": ["192.168.1.0/24"]},
    "s2": {"address": "10.3.0.12/24", "allowed_ips": ["192.168.2.0/24"]},
}


def test_hub_spokes_peer_only_with_the_hub_which_covers_the_rest(keys, mine):
    spoke = as_minion(mine, "s1", network("hub", **HUB))["wg1"]
    assert list(spoke["peers"]) == ["hub1"]
    hub = spoke["peers"]["hub1"]
    assert hub["allowed_ips"] == ["10.3.0.0/24", "172.16.0.0/24", "192.168.2.0/24"]
    assert hub["endpoint"] == "198.51.100.10:51821" and hub["persistent_keepalive"] == 25
    center = as_minion(mine, "hub1", network("hub", **HUB))["wg1"]
    assert set(center["peers"]) == {"s1", "s2"} and center["forwarding"] is True
    assert center["peers"]["s2"]["allowed_ips"] == ["10.3.0.12/32", "192.168.2.0/24"]
    assert center["peers"]["s2"]["endpoint"] is None


def test_missing_mine_key_warns_naming_the_node_and_keeps_the_rest(mine):
    del mine.published["s4"]
    wg1 = as_minion(mine, "s1", network(**MESH))["wg1"]
    assert set(wg1["peers"]) == {"s2", "s3"}
    assert len(wg1["warnings"]) == 1 and "minion 's4'" in wg1["warnings"][0]


@pytest.mark.parametrize(
    "poison",
    [
        "QUFB",
        "x" * 44,
        "{key}\n[Peer]\nPublicKey = {key}",
        "{key}\nPostUp = touch /tmp/pwned",
        ["{key}"],
        42,
    ],
)
def test_poisoned_mine_value_is_refused_naming_the_minion(mine, keys, poison):
    mine.published["s2"] = {
        "wg1": poison.format(key=keys["s2"]) if isinstance(poison, str) else poison
    }
    wg1 = as_minion(mine, "s1", network(**MESH))["wg1"]
    assert set(wg1["peers"]) == {"s3", "s4"}
    assert "refused" in wg1["warnings"][0] and "minion 's2'" in wg1["warnings"][0]
    rendered = wgf_conf.render(wg1)
    assert "PostUp" not in rendered and rendered.count("[Peer]") == 2


def test_static_peer_can_name_a_minion(keys, mine):
    pillar = {
        "interfaces": {
            "wg1": {
                "address": "10.9.0.1/24",
                "peers": {"server": {"minion": "s2", "allowed_ips": ["10.9.0.2/32"]}},
            }
        }
    }
    assert as_minion(mine, "laptop", pillar)["wg1"]["peers"]["server"]["public_key"] == keys["s2"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"topology": "star"}, "'star' is not mesh or hub"),
        ({"hubs": ["nobody"], "topology": "hub"}, "'nobody' is not a node"),
        ({"interface": None}, "'interface' is missing"),
        ({"listen_port": 0}, "'listen_port'"),
        ({"topolgy": "mesh"}, "did you mean 'topology'"),
    ],
)
def test_bad_network_is_refused(mine, change, words):
    pillar = network(**MESH)
    pillar["networks"]["corp"].update(change)
    with pytest.raises(SaltInvocationError, match=words):
        as_minion(mine, "s1", pillar)


def test_interface_declared_twice_is_refused(mine):
    pillar = network(**MESH)
    pillar["interfaces"] = {"wg1": {"address": "10.0.0.1/24"}}
    with pytest.raises(SaltInvocationError, match="both interfaces and networks"):
        as_minion(mine, "s1", pillar)


def corp(**change):
    pillar = network(**MESH)
    pillar["networks"]["corp"].update(change)
    return pillar


@pytest.mark.parametrize(
    ("pillar", "words"),
    [
        (corp(nodes=5), "network 'corp', key 'nodes': a mapping of minion id to node"),
        (corp(nodes=["s1"]), "network 'corp', key 'nodes': a mapping of minion id to node"),
        (corp(topology="hub", hubs={"hub": 1}), "network 'corp', key 'hubs': a list of minion ids"),
        (corp(topology="hub", hubs=[["s1"]]), "network 'corp', key 'hubs': a list of minion ids"),
        (corp(topology="hub", hubs=5), "network 'corp', key 'hubs': a list of minion ids"),
        (corp(interface=["wg1"]), "network 'corp', key 'interface'"),
        (corp(interface={"wg1": None}), "network 'corp', key 'interface'"),
        (corp(interface="wg1\n"), "network 'corp', key 'interface'"),
        (corp(interface="wg+"), "network 'corp', key 'interface': 'wg+': '+' is refused"),
        (corp(topology=["mesh"]), "network 'corp', key 'topology'"),
        (corp(listen_port="\uff15\uff11"), "network 'corp', key 'listen_port'"),
        ({"networks": {"corp": ["s1"]}}, "network 'corp': a network is a mapping of keys"),
        ({"networks": ["corp"]}, "wireguard:networks must be a mapping"),
    ],
)
def test_network_fields_of_the_wrong_type_are_refused_naming_network_and_key(mine, pillar, words):
    with pytest.raises(SaltInvocationError) as error:
        as_minion(mine, "s1", pillar)
    assert words in str(error.value)


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ({"endpoint": True}, "node 's2', key 'endpoint': a host or host:port, got bool"),
        ({"endpoint": ["198.51.100.2"]}, "node 's2', key 'endpoint': a host or host:port"),
        ({"endpoint": "198.51.100.2\nPostUp = id"}, "node 's2', key 'endpoint'"),
        ({"endpoint": "fe80::1%eth0"}, "node 's2', key 'endpoint'"),
        ({"address": "fe80::1%x,10.2.0.2/24"}, "node 's2', key 'address'"),
        ({"address": None}, "node 's2': key 'address' is missing"),
        ({"allowed_ips": ["fe80::1%x/128"]}, "node 's2', key 'allowed_ips'"),
        ({"adress": "10.2.0.2/24"}, "node 's2': unknown key 'adress'; did you mean 'address'?"),
    ],
)
def test_a_bad_node_is_refused_naming_it(mine, node, words):
    pillar = network(**MESH)
    pillar["networks"]["corp"]["nodes"]["s2"] = {"address": "10.2.0.2/24", **node}
    with pytest.raises(SaltInvocationError) as error:
        as_minion(mine, "s1", pillar)
    assert f"network 'corp', {words}" in str(error.value)
    assert "True:51821" not in str(error.value)


@pytest.mark.parametrize("keepalive", ["soon", -1, 70000, "\u0662\u0665", [25]])
def test_a_nodes_own_bad_keepalive_is_reported_against_that_node(mine, keepalive):
    pillar = network(**MESH)
    pillar["networks"]["corp"]["nodes"]["s3"]["persistent_keepalive"] = keepalive
    for minion in ("s1", "s3"):  # the node itself, and one that only peers with it
        with pytest.raises(SaltInvocationError) as error:
            as_minion(mine, minion, pillar)
        message = str(error.value)
        assert "network 'corp', node 's3', key 'persistent_keepalive'" in message
        assert "node 's1'" not in message and "node 's2'" not in message
