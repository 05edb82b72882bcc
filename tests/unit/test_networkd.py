"""The systemd-networkd backend (issue 25, ``_utils/wgf_networkd.py``): the backend of an
interface (lookup's, an interface's own), what networkd refuses, and the ``.netdev`` and
``.network`` files, byte-equal to the goldens in ``tests/unit/goldens/networkd/``
(regenerate with ``WGF_GOLDEN_WRITE=1`` and read the diff before committing)."""

import os
import pathlib

import pytest
from salt.exceptions import SaltInvocationError

import wgf_layout
import wgf_networkd
from tests.support import pipeline

GOLDENS = pathlib.Path(__file__).parent / "goldens" / "networkd"
HUB = "pOCSkrZRwni5dyxWn1+puxPZBrRqtoyd+dwrRAn4ogk="
SPOKE = "zo060cy2M+x7cMF4FKXHbs0CloUFDTRHRboFhw5YfVk="
ROAD = "Xf7dO2vUf2+ijuFdlp1bsOpTd01Ii9r53xxuASSz7yI="
PRIVATE = "BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ="
PSK = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="
NETWORKD = {"init": "systemd", "systemd_version": 252, "firewall": "nftables"}

#: The pillars of the goldens: a spoke with a PSK, a road warrior's full tunnel with
#: DNS and MTU, and a table of its own with fwmark and IPv6.
PILLARS = {
    "spoke": {
        "address": "10.1.1.11/24",
        "listen_port": 51820,
        "routes": ["172.16.9.0/24"],
        "peers": {
            "hub": {
                "public_key": HUB,
                "allowed_ips": ["10.1.1.0/24", "172.16.1.0/24"],
                "endpoint": "hub.example.com:51820",
                "persistent_keepalive": 25,
                "preshared_key": PSK,
            },
        },
    },
    "full": {
        "address": ["10.2.0.5/32", "fd00:2::5/128"],
        "dns": ["10.2.0.1", "corp.example"],
        "mtu": 1380,
        "peers": {
            "gateway": {
                "public_key": SPOKE,
                "allowed_ips": ["0.0.0.0/0", "::/0"],
                "endpoint": "[2001:db8::1]:51820",
            },
        },
    },
    "table": {
        "address": ["10.3.0.1/24", "fd00:3::1/64"],
        "listen_port": 51000,
        "table": 1234,
        "fwmark": "0x42",
        "peers": {
            "a": {"public_key": SPOKE, "allowed_ips": ["10.3.0.2/32", "fd00:3::2/128"]},
            "road warrior 1": {
                "public_key": ROAD,
                "allowed_ips": ["10.3.0.3/32", "192.168.50.0/24"],
                "preshared_key": PSK,
            },
            "old": {"public_key": HUB, "allowed_ips": ["10.3.0.9/32"], "absent": True},
        },
    },
}


def iface(name, pillar=None, **facts):
    raw = {"backend": "networkd", **(pillar if pillar is not None else PILLARS[name])}
    interfaces = pipeline.interfaces({"interfaces": {"wg0": raw}}, **{**NETWORKD, **facts})
    return interfaces["wg0"]


@pytest.mark.parametrize("name", sorted(PILLARS))
def test_the_files_are_byte_equal_to_their_goldens(name):
    found = wgf_networkd.files(iface(name), wgf_layout.Layout())
    assert sorted(found) == [
        "/etc/systemd/network/50-wireguard-wg0.netdev",
        "/etc/systemd/network/50-wireguard-wg0.network",
    ]
    for path, text in found.items():
        golden = GOLDENS / f"{name}{os.path.splitext(path)[1]}"
        if os.environ.get("WGF_GOLDEN_WRITE"):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), golden


@pytest.mark.parametrize("name", sorted(PILLARS))
def test_no_key_is_in_a_unit_file_only_paths_to_the_0640_copies(name):
    layout = wgf_layout.Layout()
    normalised = iface(name)
    text = "".join(wgf_networkd.files(normalised, layout).values())
    assert PSK not in text and PRIVATE not in text
    assert "PrivateKey=" not in text and "PresharedKey=" not in text
    assert f"PrivateKeyFile={layout.networkd_key('wg0')}\n" in text
    keys = wgf_networkd.key_files(normalised, layout, PRIVATE, {"hub": PSK, "road warrior 1": PSK})
    assert keys[layout.networkd_key("wg0")] == PRIVATE + "\n"
    for path in keys:
        assert path.startswith("/etc/systemd/network/wireguard-keys/wg0/")
        assert path == layout.networkd_key("wg0") or f"PresharedKeyFile={path}\n" in text


def test_a_peer_name_that_is_no_file_name_gets_a_digest():
    assert wgf_networkd.psk_name("hub") == "hub.psk"
    assert wgf_networkd.psk_name("road warrior 1").startswith("peer-")
    assert wgf_networkd.psk_name("../x") != wgf_networkd.psk_name("../y")
    assert "/" not in wgf_networkd.psk_name("a/b") and wgf_networkd.psk_name("..") != "...psk"


def test_routes_match_what_wg_quick_derives():
    # auto: a route per AllowedIP not inside a connected network, the formula's routes
    assert wgf_networkd.routes(iface("spoke")) == [
        ("172.16.1.0/24", "main"),
        ("172.16.9.0/24", "main"),
    ]
    # auto with /0: wg-quick's default route in the fwmark's table (51820)
    assert wgf_networkd.routes(iface("full")) == [("0.0.0.0/0", "51820"), ("::/0", "51820")]
    # a table of its own: every AllowedIP there, by RouteTable=, no [Route]
    assert wgf_networkd.routes(iface("table")) == []
    off = {**PILLARS["spoke"], "table": "off", "routes": []}
    assert wgf_networkd.routes(iface("spoke", off)) == []
    assert "RouteTable" not in wgf_networkd.render_netdev(iface("spoke", off), wgf_layout.Layout())


def test_the_layout_names_the_files():
    layout = wgf_layout.Layout("/etc/wg-x")
    assert layout.netdev("wg3") == "/etc/systemd/network/50-wireguard-wg3.netdev"
    assert layout.network("wg3") == "/etc/systemd/network/50-wireguard-wg3.network"
    assert layout.networkd_keys("wg3") == "/etc/systemd/network/wireguard-keys/wg3"
    assert layout.backend_unit("wg3", "networkd") == "systemd-networkd"
    assert layout.backend_unit("wg3", "wg-quick") == "wg-quick@wg3"


# ------------------------------------------------------------------ the backend


def test_lookup_sets_the_backend_and_an_interface_overrides_it():
    pillar = {
        "interfaces": {
            "wg0": {"address": "10.0.0.1/24"},
            "wg1": {"address": "10.0.1.1/24", "backend": "wg-quick"},
            "wg2": {"address": "10.0.2.1/24", "backend": "networkd"},
        }
    }
    found = pipeline.interfaces(pillar, **NETWORKD)
    assert {n: i["backend"] for n, i in found.items()} == {
        "wg0": "wg-quick",
        "wg1": "wg-quick",
        "wg2": "networkd",
    }
    found = pipeline.interfaces(pillar, backend="networkd", **NETWORKD)
    assert {n: i["backend"] for n, i in found.items()} == {
        "wg0": "networkd",
        "wg1": "wg-quick",
        "wg2": "networkd",
    }


def test_a_network_sets_the_backend_of_the_interface_it_builds():
    net = {
        "interface": "wg1",
        "backend": "networkd",
        "nodes": {"minion1": {"address": "10.2.0.1/24"}},
    }
    pillar = {"networks": {"corp": net}, "interfaces": {"wg0": {"address": "10.0.0.1/24"}}}
    found = pipeline.interfaces(pillar, **NETWORKD)
    assert {n: i["backend"] for n, i in found.items()} == {"wg0": "wg-quick", "wg1": "networkd"}
    net["backend"] = "netplan"
    with pytest.raises(SaltInvocationError, match=r"interface 'wg1', key 'backend'"):
        pipeline.interfaces(pillar, **NETWORKD)


def test_a_bad_backend_is_refused_naming_interface_and_key():
    with pytest.raises(SaltInvocationError, match=r"interface 'wg0', key 'backend'.*wg-quick"):
        pipeline.interfaces({"interfaces": {"wg0": {"backend": "netplan"}}})
    with pytest.raises(SaltInvocationError, match=r"wireguard:lookup:backend: 'nm'"):
        wgf_layout.check_map({**_defaults(), "backend": "nm"})
    assert wgf_layout.check_map({**_defaults(), "backend": "networkd"})["backend"] == "networkd"


def _defaults():
    import yaml

    path = pathlib.Path(__file__).parents[2] / "wireguard" / "parameters" / "defaults.yaml"
    values = yaml.safe_load(path.read_text())["values"]
    assert values["backend"] == "wg-quick"
    return values


@pytest.mark.parametrize(
    ("facts", "says"),
    [
        ({"init": "openrc"}, "networkd needs systemd, and this minion's init is 'openrc'"),
        ({"init": None}, "networkd needs systemd, and this minion's init is unknown"),
        ({"systemd_version": 249}, "networkd needs systemd 250 or newer .* has 249"),
        ({"systemd_version": None}, "networkd needs systemd 250 or newer .* unknown version"),
    ],
)
def test_networkd_without_a_systemd_it_can_use_is_refused(facts, says):
    with pytest.raises(SaltInvocationError, match=rf"interface 'wg0', key 'backend': {says}"):
        iface("spoke", **facts)
    iface("spoke", systemd_version=250)


@pytest.mark.parametrize("hook", ["pre_up", "post_up", "pre_down", "post_down"])
def test_hooks_are_refused_under_networkd_saying_what_to_use(hook):
    pillar = {**PILLARS["spoke"], hook: "echo hi"}
    with pytest.raises(SaltInvocationError) as caught:
        iface("spoke", pillar)
    message = str(caught.value)
    assert f"interface 'wg0', key '{hook}': networkd runs no hooks" in message
    assert "formula's firewall" in message and "backend: wg-quick" in message
    # the same pillar on wg-quick is fine
    pipeline.interfaces({"interfaces": {"wg0": pillar}}, **NETWORKD)


def test_nat_by_hooks_and_table_names_are_refused_under_networkd():
    nat = {**PILLARS["spoke"], "masquerade": "eth0"}
    with pytest.raises(SaltInvocationError, match=r"key 'masquerade': .*lookup:firewall"):
        iface("spoke", nat, firewall="none")
    iface("spoke", nat)  # the formula's firewall NATs: fine
    named = {**PILLARS["spoke"], "table": "vpn"}
    with pytest.raises(SaltInvocationError, match="key 'table': networkd does not read"):
        iface("spoke", named, known_tables={"vpn"})


def test_an_absent_interface_is_not_refused():
    iface("spoke", {**PILLARS["spoke"], "absent": True, "post_up": "x"}, init="openrc")


def test_the_systemd_grain_gives_the_version():
    assert wgf_networkd.systemd_version({"version": "252", "features": "+PAM"}) == 252
    assert wgf_networkd.systemd_version({"version": "257.9-1"}) == 257
    assert wgf_networkd.systemd_version(None) is None
    assert wgf_networkd.systemd_version({"version": "x"}) is None


# ------------------------------------------------------------------ reading back


@pytest.mark.parametrize("name", sorted(PILLARS))
def test_networkds_files_read_back_as_the_wg_quick_conf_reads(name, tmp_path, monkeypatch):
    import wgf_conf
    import wgf_files

    monkeypatch.setattr(wgf_layout, "NETWORK_DIR", str(tmp_path / "network"))
    monkeypatch.setattr(wgf_layout, "NETWORKD_KEYS_DIR", str(tmp_path / "keys"))
    layout = wgf_layout.Layout(str(tmp_path / "wg"))
    normalised = iface(name)
    psks = {"hub": PSK, "road warrior 1": PSK}
    files = {
        **wgf_networkd.files(normalised, layout),
        **wgf_networkd.key_files(normalised, layout, PRIVATE, psks),
    }
    for path, text in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        wgf_files.write_private(path, text)
    path, conf, text, error = wgf_networkd.read_config(layout, "wg0")
    assert path == layout.netdev("wg0") and error is None
    assert PRIVATE not in text and PSK not in text and PRIVATE not in repr(conf)
    want = wgf_conf.parse(wgf_conf.render(normalised, PRIVATE, psks))
    for key in ("address", "listen_port", "mtu", "dns", "public_key", "routes"):
        assert conf[key] == want[key], key
    # a full tunnel's mark is in the .netdev: what wg-quick sets when it starts
    assert conf["fwmark"] == (51820 if name == "full" else want["fwmark"])
    assert conf["peers"] == want["peers"] and conf["errors"] == []
    # a wg-quick conf there is what is read
    os.makedirs(layout.config_dir)
    wgf_files.write_private(layout.conf("wg0"), wgf_conf.render(normalised, PRIVATE))
    assert wgf_networkd.read_config(layout, "wg0")[0] == layout.conf("wg0")


def test_dns_on_networkd_needs_no_resolvconf():
    pillar = {"interfaces": {"wg0": {"address": "10.0.0.1/24", "dns": "10.0.0.53"}}}
    assert pipeline.run(pillar, **NETWORKD)["settings"]["needs"]["resolvconf"] is True
    found = pipeline.run(pillar, backend="networkd", **NETWORKD)["settings"]["needs"]
    assert found["resolvconf"] is False
