"""Render the formula for each supported OS and pillar, without touching the host.

Rendering runs the real Salt (the pinned one in .venv) with the real `wireguard`
execution module, through the worker of tests/support/render.py (the `renderer`
fixture of tests/unit/conftest.py). Nothing is applied: `state.show_sls` only compiles.
"""

import base64
import json

import pytest
import yaml

from tests.lab.topologies import load_examples
from tests.support.render import (
    OSES,
    PRESHARED_KEY,
    PRIVATE_KEY,
    REPO,
    SAMPLE,
    arg,
    fun,
    key,
    states,
)

# --------------------------------------------------------------------- per OS


@pytest.mark.parametrize("os_name", sorted(OSES))
@pytest.mark.parametrize("firewall", ["nftables", "iptables"])
def test_os_map(renderer, os_name, firewall):
    """Packages, service unit, OpenRC links and paths are right for each OS."""
    expect = OSES[os_name]
    answer = renderer.render(
        os_name, {**SAMPLE, "lookup": {"firewall": firewall}}, sls=("wireguard", "wireguard.clean")
    )
    got = states(answer)
    config_dir = answer["config_dir"]

    installed = got["wireguard-package-install-pkg-installed"]
    want = [expect["tools"], *expect["extra"], *expect["firewall"][firewall]]  # wg0 masquerades
    if expect["resolvconf"]:  # SAMPLE's wg0 sets dns
        want.append(expect["resolvconf"])
    assert sorted(arg(installed, "pkgs")) == sorted(want)
    assert arg(installed, "install_recommends") is expect["install_recommends"]

    unit = expect["unit"]
    running = got["wireguard-service-running-service-running-wg0"]
    assert fun(running) == "service.running"
    assert arg(running, "name") == unit.format("wg0")
    assert arg(running, "enable") is True
    assert arg(got["wireguard-config-file-wireguard-config-wg0"], "service") == unit.format("wg0")
    assert arg(got["wireguard-config-file-wireguard-config-wg0"], "config_dir") == config_dir
    assert arg(got["wireguard-service-running-service-dead-wg1"], "name") == unit.format("wg1")
    assert arg(got["wireguard-service-running-service-dead-wg2"], "name") == unit.format("wg2")

    if expect["link"]:
        link, target = expect["link"]
        symlink = got["wireguard-service-running-file-symlink-wg0"]
        assert fun(symlink) == "file.symlink"
        assert arg(symlink, "name") == link.format("wg0")
        assert arg(symlink, "target") == target
        assert {"file": "wireguard-service-running-file-symlink-wg0"} in arg(running, "require")
        removed = got["wireguard-service-running-file-absent-wg2"]
        assert arg(removed, "name") == link.format("wg2")
    else:
        assert not [i for i in got if "symlink" in i]

    clean = states(answer, "wireguard.clean")
    removed = arg(clean["wireguard-package-clean-pkg-removed"], "pkgs")
    assert sorted(removed) == sorted([expect["tools"], *expect["extra"]])
    assert arg(clean["wireguard-service-clean-service-dead-wg0"], "name") == unit.format("wg0")
    assert fun(clean["wireguard-config-clean-file-absent"]) == "wireguard.config_dir_absent"
    assert arg(clean["wireguard-config-clean-file-absent"], "name") == config_dir


@pytest.mark.parametrize("os_name", sorted(OSES))
def test_go_fallback_and_no_resolvconf_without_dns(renderer, os_name):
    expect = OSES[os_name]
    pillar = {"lookup": {"install_go": True}, "interfaces": {"wg0": {"address": "10.9.0.1/24"}}}
    got = states(renderer.render(os_name, pillar, sls=("wireguard.package",)), "wireguard.package")
    pkgs = arg(got["wireguard-package-install-pkg-installed"], "pkgs")
    want = [expect["tools"], *expect["extra"]] + ([expect["go"]] if expect["go"] else [])
    assert sorted(pkgs) == sorted(want)


@pytest.mark.parametrize(
    ("table", "allowed_ips", "firewall"),
    [
        ("auto", ["0.0.0.0/0"], True),
        ("auto", ["::/0", "10.0.0.0/8"], True),
        ("off", ["0.0.0.0/0", "::/0"], False),
        ("auto", ["10.0.0.0/8"], False),
    ],
)
def test_firewall_package_for_a_default_route(renderer, table, allowed_ips, firewall):
    """wg-quick sets nft/iptables rules for a default route with table auto."""
    pillar = {
        "lookup": {"firewall": "iptables"},
        "interfaces": {
            "wg0": {
                "address": "10.9.0.2/32",
                "table": table,
                "peers": {"gw": {"public_key": key(7), "allowed_ips": allowed_ips}},
            }
        },
    }
    got = states(
        renderer.render("debian-12", pillar, sls=("wireguard.package",)), "wireguard.package"
    )
    pkgs = arg(got["wireguard-package-install-pkg-installed"], "pkgs")
    assert ("iptables" in pkgs) is firewall


def test_lookup_overrides_the_map(renderer):
    pillar = {
        "lookup": {
            "pkgs": {"tools": "my-wg", "resolvconf": "my-resolvconf"},
            "service": {"name": "my-wg@{interface}"},
        },
        "interfaces": {"wg0": {"address": "10.9.0.1/24", "dns": ["10.9.0.53"]}},
    }
    got = states(renderer.render("debian-12", pillar))
    assert arg(got["wireguard-package-install-pkg-installed"], "pkgs") == ["my-wg", "my-resolvconf"]
    assert arg(got["wireguard-service-running-service-running-wg0"], "name") == "my-wg@wg0"


@pytest.mark.parametrize("count", [199, 200])  # and one absent: 200, 201 peers
def test_more_than_200_peers_are_one_state_and_the_purge_reads_them_itself(renderer, count):
    """Issue 24: 10,000 peer states cost seconds a run; past 200 peers (clients aside)
    the interface gets one ``wireguard.peers`` state, and its purge keeps what pillar
    declares without a list of every key in the SLS."""

    def peer_key(i):
        return base64.b64encode(i.to_bytes(4, "big") * 8).decode()

    peers = {
        f"p{i}": {"public_key": peer_key(i), "allowed_ips": [f"10.9.{i // 250}.{i % 250 + 2}/32"]}
        for i in range(count)
    }
    peers["old"] = {"public_key": peer_key(9999), "absent": True}
    pillar = {"interfaces": {"wg0": {"address": "10.9.0.1/16", "peers": peers}}}
    got = states(renderer.render("debian-12", pillar))
    one = [i for i in got if fun(got[i]) == "wireguard.peers"]
    each = [i for i in got if fun(got[i]) in ("wireguard.peer", "wireguard.peer_absent")]
    purge = got["wireguard-peers-live-wireguard-peers_purged-wg0"]
    if count == 199:
        assert one == [] and len(each) == count + 1
        assert len(arg(purge, "keep")) == count and not arg(purge, "keep_declared")
    else:
        assert one == ["wireguard-peers-live-wireguard-peers-wg0"] and each == []
        assert arg(got[one[0]], "name") == "wg0"
        assert {"service": "wireguard-service-running-service-running-wg0"} in arg(
            got[one[0]], "require"
        )
        assert arg(purge, "keep") == [] and arg(purge, "keep_declared") is True


# ------------------------------------------------------------ per interface


def test_states_per_interface(renderer):
    got = states(renderer.render("debian-12", SAMPLE))

    # config: directory 0700, key then conf for each interface that is not absent
    directory = got["wireguard-config-key-file-directory"]
    assert fun(directory) == "file.directory"
    assert arg(directory, "mode") == "0700"
    for name in ("wg0", "wg1", "wg3"):
        key_state = got[f"wireguard-config-key-wireguard-private_key-{name}"]
        conf = got[f"wireguard-config-file-wireguard-config-{name}"]
        assert fun(key_state) == "wireguard.private_key"
        assert fun(conf) == "wireguard.config"
        assert {"wireguard": f"wireguard-config-key-wireguard-private_key-{name}"} in arg(
            conf, "require"
        )
    # only an enabled interface's conf restarts its service
    assert arg(got["wireguard-config-file-wireguard-config-wg1"], "service") is None

    # service: running for enabled, dead + disabled for enabled: false and absent
    assert fun(got["wireguard-service-running-service-running-wg0"]) == "service.running"
    assert fun(got["wireguard-service-running-service-running-wg3"]) == "service.running"
    for name in ("wg1", "wg2"):
        dead = got[f"wireguard-service-running-service-dead-{name}"]
        assert fun(dead) == "service.dead"
        assert arg(dead, "enable") is False

    # absent: no key or conf state; conf and key removed after the service stops
    assert "wireguard-config-file-wireguard-config-wg2" not in got
    for suffix in ("conf", "key"):
        gone = got[f"wireguard-config-file-file-absent-wg2-{suffix}"]
        assert fun(gone) == "file.absent"
        assert arg(gone, "name").endswith(f"/wg2.{suffix}")
        assert {"file": f"wireguard-config-file-file-absent-wg2-{suffix}"} in arg(
            got["wireguard-service-running-service-dead-wg2"], "require_in"
        )

    # peers: live on running interfaces only
    hub = got["wireguard-peers-live-wireguard-peer-wg0-hub"]
    assert fun(hub) == "wireguard.peer"
    assert arg(hub, "name") == key(1)
    assert arg(hub, "interface") == "wg0"
    assert arg(hub, "allowed_ips") == ["10.1.1.0/24"]
    assert arg(hub, "endpoint") == "vpn.example.com:51820"
    assert arg(hub, "persistent_keepalive") == 25
    assert arg(hub, "preshared_key_pillar") == "wireguard:interfaces:wg0:peers:hub:preshared_key"
    assert arg(hub, "preshared_key") is None
    laptop = got["wireguard-peers-live-wireguard-peer-wg0-laptop"]
    assert arg(laptop, "preshared_key_pillar") is None
    assert arg(laptop, "endpoint") is None
    old = got["wireguard-peers-live-wireguard-peer_absent-wg0-old"]
    assert fun(old) == "wireguard.peer_absent"
    assert arg(old, "name") == key(3)
    purge = got["wireguard-peers-live-wireguard-peers_purged-wg0"]
    assert sorted(arg(purge, "keep")) == sorted([key(1), key(2)])
    assert "wireguard-peers-live-wireguard-peers_purged-wg3" not in got  # purge_peers: false
    assert "wireguard-peers-live-wireguard-peer-wg3-c" in got
    assert not [i for i in got if i.startswith("wireguard-peers-live-") and "-wg1-" in i]

    # network: running interfaces reconciled live (routes, addresses, ...) after their
    # peers; forwarding v4 and v6 (wg0 has v6)
    ids = list(got)  # in the order Salt runs them (state_auto_order)
    for name in ("wg0", "wg3"):
        live = f"wireguard-network-routes-wireguard-interface-{name}"
        assert fun(got[live]) == "wireguard.interface" and arg(got[live], "config_dir")
        assert ids.index(live) > max(
            ids.index(i)
            for i in ids
            if i.startswith(f"wireguard-peers-live-wireguard-peer-{name}-")
        ), "after its peers"
    assert "wireguard-network-routes-wireguard-interface-wg1" not in got
    sysctls = {arg(s, "name"): s for s in got.values() if fun(s) == "sysctl.present"}
    assert sorted(sysctls) == ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]
    for state in sysctls.values():
        assert str(arg(state, "value")) == "1"
        assert arg(state, "config").endswith("/99-wireguard.conf")


def test_interfaces_are_independent(renderer):
    """Every requisite of a per-interface state names that interface or a shared state."""
    got = states(renderer.render("debian-12", SAMPLE))
    shared = {"wireguard-config-key-file-directory"}
    for state_id, state in got.items():
        for name in ("wg0", "wg1", "wg2", "wg3"):
            if not state_id.endswith(f"-{name}") and f"-{name}-" not in state_id:
                continue
            for req_kind in ("require", "require_in", "watch", "onchanges"):
                for req in arg(state, req_kind) or []:
                    (target,) = req.values()
                    if "sls" in req:
                        assert target.endswith("package.install"), (state_id, req)
                        continue
                    assert target in shared or name in target, (state_id, req)


def test_run_order(renderer):
    """package, firewall, config, service, peers, network, hosts, metrics, confirm's check: Salt runs
    states in this order (confirm's arm runs first through its require_in, checked in
    test_confirm_arms_before_the_first_change_and_checks_last)."""
    got = states(renderer.render("debian-12", SAMPLE))
    concerns = [
        "package",
        "firewall",
        "config",
        "service",
        "peers",
        "network",
        "hosts",
        "metrics",
        "confirm",
    ]
    ordered = sorted(got.items(), key=lambda item: item[1]["__sls__"] and arg(item[1], "order"))
    ranks = [concerns.index(s["__sls__"].split(".")[1]) for _, s in ordered]
    assert ranks == sorted(ranks)


def test_empty_pillar(renderer):
    got = states(renderer.render("debian-12", {}))
    # the marker: the formula makes the config dir (not there yet), so clean may remove it
    assert sorted(i for i, s in got.items() if fun(s) != "test.nop") == [
        "wireguard-config-key-file-directory",
        "wireguard-config-key-file-managed-marker",
        "wireguard-firewall-rules-wireguard-firewall",
        "wireguard-metrics-schedule-absent",
        "wireguard-package-install-pkg-installed",
    ]
    assert arg(got["wireguard-package-install-pkg-installed"], "pkgs") == ["wireguard-tools"]


def test_clean_takes_down_every_interface(renderer):
    answer = renderer.render("debian-12", SAMPLE, sls=("wireguard.clean",))
    got = states(answer, "wireguard.clean")
    dead = sorted(arg(s, "name") for s in got.values() if fun(s) == "service.dead")
    assert dead == ["wg-quick@wg0", "wg-quick@wg1", "wg-quick@wg2", "wg-quick@wg3"]
    assert fun(got["wireguard-network-clean-file-absent"]) == "file.absent"
    assert {"sls": "wireguard.service.clean"} in arg(
        got["wireguard-config-clean-file-absent"], "require"
    )
    assert {"sls": "wireguard.config.clean"} in arg(
        got["wireguard-package-clean-pkg-removed"], "require"
    )


def test_clean_finds_interfaces_by_their_conf(renderer):
    """A conf left in the config dir (an interface no longer in pillar) is taken down."""
    # the worker renders with config_dir in the case dir: put a conf there first
    case = renderer.count + 1
    config_dir = renderer.tmp / f"case{case}" / "etc-wireguard"
    config_dir.mkdir(parents=True)
    (config_dir / "wg7.conf").write_text("[Interface]\n")
    (config_dir / "wg7.key").write_text("x\n")
    (config_dir / "bad name.conf").write_text("[Interface]\n")
    got = states(renderer.render("debian-12", {}, sls=("wireguard.clean",)), "wireguard.clean")
    dead = sorted(arg(s, "name") for s in got.values() if fun(s) == "service.dead")
    assert dead == ["wg-quick@wg7"]


def test_every_interface_gets_its_hosts_state_and_clean_removes_every_block(renderer):
    """Peers by name (issue 22): one `wireguard.hosts` per interface of pillar (with the
    option or without, so that its removal removes the block), one `hosts_absent` for
    an interface whose conf is left in the config dir, and clean removes each block."""
    case = renderer.count + 1
    config_dir = renderer.tmp / f"case{case}" / "etc-wireguard"
    config_dir.mkdir(parents=True)
    (config_dir / "wg8.conf").write_text("[Interface]\n")
    pillar = json.loads(json.dumps(SAMPLE))
    pillar["interfaces"]["wg0"]["hosts"] = {"domain": "wg.example"}
    got = states(renderer.render("debian-12", pillar))
    managed = {i: s for i, s in got.items() if fun(s) == "wireguard.hosts"}
    assert sorted(managed) == [f"wireguard-hosts-file-managed-wg{n}" for n in range(4)]
    assert arg(managed["wireguard-hosts-file-managed-wg0"], "name") == "wg0"
    assert arg(managed["wireguard-hosts-file-managed-wg0"], "config_dir")
    assert fun(got["wireguard-hosts-file-absent-wg8"]) == "wireguard.hosts_absent"
    got = states(renderer.render("debian-12", pillar, sls=("wireguard.clean",)), "wireguard.clean")
    gone = sorted(arg(s, "name") for s in got.values() if fun(s) == "wireguard.hosts_absent")
    assert gone == ["wg0", "wg1", "wg2", "wg3"]
    assert "wireguard-hosts-clean-file-absent-wg0" in got


def test_an_absent_interface_and_clean_remove_the_client_expiry(renderer):
    """Issue 23: an interface that goes (wg2 is `absent`) loses its client expiry timer,
    units and records in the apply; clean removes those of every interface it knows."""
    got = states(renderer.render("debian-12", SAMPLE))
    gone = {i: s for i, s in got.items() if fun(s) == "wireguard.client_expiry_absent"}
    assert sorted(gone) == ["wireguard-peers-live-wireguard-client_expiry_absent-wg2"]
    assert arg(gone["wireguard-peers-live-wireguard-client_expiry_absent-wg2"], "name") == "wg2"
    got = states(renderer.render("debian-12", SAMPLE, sls=("wireguard.clean",)), "wireguard.clean")
    gone = sorted(
        arg(s, "name") for s in got.values() if fun(s) == "wireguard.client_expiry_absent"
    )
    assert gone == ["wg0", "wg1", "wg2", "wg3"]


def test_config_key_alone_makes_only_keys(renderer):
    """wireguard.config.key (orchestrate's first step) writes no conf and starts nothing."""
    got = states(
        renderer.render("debian-12", SAMPLE, sls=("wireguard.config.key",)), "wireguard.config.key"
    )
    assert sorted(fun(s) for s in got.values()) == [
        "file.directory",
        "file.managed",
        "pkg.installed",
        "wireguard.private_key",
        "wireguard.private_key",
        "wireguard.private_key",
    ]
    assert arg(got["wireguard-config-key-file-managed-marker"], "name").endswith(
        "/.wireguard-formula"
    )


def test_orchestrate(renderer):
    """each minion prepared (the missing preshared keys on the master, then sync, keys
    and mine only where missing), then the apply after it, on the target pillar gives."""
    answer = renderer.render(
        "debian-12",
        {},
        sls=("wireguard.orchestrate",),
        interfaces=False,
        extra_pillar={"wireguard_orchestrate": {"tgt": "G@role:vpn", "tgt_type": "compound"}},
    )
    got = states(answer, "wireguard.orchestrate")
    steps = sorted(got.values(), key=lambda s: arg(s, "order"))
    assert [fun(s) for s in steps] == ["salt.runner", "salt.state"]
    assert arg(steps[0], "name") == "wireguard.prepare"
    assert arg(steps[0], "sls") == "wireguard.config.key"
    assert arg(steps[1], "sls") == "wireguard"
    for step in steps:
        assert arg(step, "tgt") == "G@role:vpn"
        assert arg(step, "tgt_type") == "compound"
    ids = {id(s): i for i, s in got.items()}
    assert [r["salt"] for r in arg(steps[1], "require")] == [ids[id(steps[0])]]
    default = states(
        renderer.render("debian-12", {}, sls=("wireguard.orchestrate",), interfaces=False),
        "wireguard.orchestrate",
    )
    assert {arg(s, "tgt") for s in default.values()} == {"*"}
    assert all(arg(s, "timeout") is None for s in default.values())
    slow = states(
        renderer.render(
            "debian-12",
            {},
            sls=("wireguard.orchestrate",),
            interfaces=False,
            extra_pillar={"wireguard_orchestrate": {"timeout": 600}},
        ),
        "wireguard.orchestrate",
    )
    steps = sorted(slow.values(), key=lambda s: arg(s, "order"))
    assert [arg(s, "timeout") for s in steps] == [600, 600]


def test_network_node_without_mine_keys_warns(renderer):
    """A mesh node whose peers' keys are not in the mine yet: its interface comes up,
    the missing peers are named in a warning, none is skipped silently."""
    pillar = {
        "networks": {
            "corp": {
                "interface": "wg1",
                "listen_port": 51821,
                "topology": "mesh",
                "nodes": {
                    "node1": {"address": "10.2.0.1/24", "endpoint": "198.18.0.1"},
                    "node2": {"address": "10.2.0.2/24"},
                    "node3": {"address": "10.2.0.3/24", "allowed_ips": ["192.168.3.0/24"]},
                },
            }
        }
    }
    answer = renderer.render("debian-12", pillar, minion_id="node1")
    got = states(answer)
    assert "wireguard-service-running-service-running-wg1" in got
    assert "wireguard-config-key-wireguard-private_key-wg1" in got
    warning = got["wireguard-peers-live-test-configurable_test_state-wg1-warnings"]
    assert fun(warning) == "test.configurable_test_state"
    assert arg(warning, "result") is True and arg(warning, "changes") is False
    text = " ".join(arg(warning, "warnings"))
    assert "node2" in text and "node3" in text
    assert not [i for i in got if i.startswith("wireguard-peers-live-wireguard-peer-")]
    # not a node: the network is ignored
    other = states(renderer.render("debian-12", pillar, minion_id="bystander"))
    assert not [i for i in other if i.endswith("-wg1")]


# ----------------------------------------------------------- bad pillar


BAD_PILLARS = [
    (
        {"interfaces": {"wg0": {"address": "10.0.0.1/24", "listen_port": 70000}}},
        ["wg0", "listen_port"],
    ),
    (
        {
            "interfaces": {
                "wg0": {
                    "address": "10.0.0.1/24",
                    "peers": {"hub": {"public_key": "not-a-key", "allowed_ips": ["10.0.0.0/24"]}},
                }
            }
        },
        ["wg0", "hub", "public_key"],
    ),
    (
        {
            "interfaces": {
                "wg0": {
                    "address": "10.0.0.1/24",
                    "peers": {"hub": {"public_key": key(9), "allowed_ip": ["10.0.0.0/24"]}},
                }
            }
        },
        ["wg0", "hub", "allowed_ip", "allowed_ips"],
    ),
    (
        {
            "interfaces": {
                "wg0": {
                    "address": "10.0.0.1/24",
                    "peers": {
                        "hub": {
                            "public_key": key(9),
                            "endpoint": "x.example\nPostUp = id",
                            "allowed_ips": ["10.0.0.0/24"],
                        }
                    },
                }
            }
        },
        ["wg0", "hub", "endpoint"],
    ),
    ({"interfaces": {"../x": {"address": "10.0.0.1/24"}}}, ["../x"]),
]


@pytest.mark.parametrize(
    ("pillar", "named"), BAD_PILLARS, ids=["port", "key", "typo", "injection", "name"]
)
def test_bad_pillar_fails_rendering(renderer, pillar, named):
    """The whole SLS fails to render (no state at all), naming interface, peer and key."""
    answer = renderer.render("debian-12", pillar, sls=("wireguard", "wireguard.peers"))
    for sls in ("wireguard", "wireguard.peers"):
        result = answer[sls]
        assert isinstance(result, list), f"{sls} rendered despite a bad pillar: {result}"
        text = "\n".join(map(str, result))
        for word in named:
            assert word in text, f"{word!r} not in {text}"


# ------------------------------------------------------------------ secrets


def test_no_secret_in_rendered_sls_or_log(renderer):
    """Keys never pass through Jinja: not in states, rendered SLS text, or the log."""
    sls_files = sorted(str(p.relative_to(REPO)) for p in (REPO / "wireguard").rglob("*.sls"))
    answer = renderer.render(
        "debian-12",
        SAMPLE,
        sls=("wireguard", "wireguard.clean"),
        templates=sls_files,
        capture_log=True,
    )
    states(answer)
    # salt-call --local renders the pillar files themselves too (a master does that
    # on a real deployment) and logs them: those lines are not the formula's.
    pillar_dir = answer["case_dir"] + "/pillar/"
    log = [line for line in answer.pop("log") if pillar_dir not in line]
    assert any("Rendered data from file" in line and "/wireguard/" in line for line in log)
    blob = json.dumps(answer) + json.dumps(log)
    for secret in (PRIVATE_KEY, PRESHARED_KEY):
        assert secret not in blob
        # also its raw bytes' other common spellings
        assert base64.b64decode(secret).hex() not in blob


# ------------------------------------------------- rendered SLS is clean YAML


def test_rendered_sls_is_yamllint_clean(renderer):
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    sls_files = sorted(str(p.relative_to(REPO)) for p in (REPO / "wireguard").rglob("*.sls"))
    answer = renderer.render("alpine-3.20", SAMPLE, templates=sls_files)
    conf = YamlLintConfig(
        "extends: default\n"
        "rules:\n  document-start: disable\n  line-length: {max: 120}\n"
        "  indentation: {spaces: 2, indent-sequences: whatever}\n"
        "  comments: {min-spaces-from-content: 1}\n"
    )
    problems = []
    for sls_file in sls_files:
        text = answer[sls_file]
        assert isinstance(text, str), (sls_file, text)
        problems += [f"{sls_file}:{p.line}: {p.desc} ({p.rule})" for p in linter.run(text, conf)]
    assert not problems, "\n".join(problems)


# ------------------------------------------------ pillar.example and examples/


def example_minions():
    """Every minion of every examples/ topology, and pillar.example as a node of its
    network (test_pillar_examples.py checks that Salt renders them and they validate)."""
    cases = [
        pytest.param(topology, minion_id, pillar, id=f"{topology}-{minion_id}")
        for topology, minions in load_examples().items()
        for minion_id, pillar in minions.items()
    ]
    example = yaml.safe_load((REPO / "pillar.example").read_text())
    # its lookup names the real paths: the renderer's temp ones take their place
    lookup = example["wireguard"]["lookup"]
    del lookup["config_dir"], lookup["sysctl_file"]
    node = next(iter(next(iter(example["wireguard"]["networks"].values()))["nodes"]))
    cases.append(pytest.param("pillar.example", node, example, id=f"pillar.example-{node}"))
    return cases


@pytest.mark.parametrize(("topology", "minion_id", "pillar"), example_minions())
def test_example_renders(renderer, topology, minion_id, pillar):
    """Each minion of each topology renders, with the states its interfaces need."""
    wireguard = (pillar or {}).get("wireguard", {})
    answer = renderer.render("debian-12", wireguard, minion_id=minion_id)
    got = states(answer)
    interfaces = answer["interfaces"]
    assert isinstance(interfaces, dict), interfaces
    for name, iface in interfaces.items():
        if iface["absent"]:
            assert f"wireguard-config-file-file-absent-{name}-conf" in got
            continue
        assert f"wireguard-config-key-wireguard-private_key-{name}" in got
        assert f"wireguard-config-file-wireguard-config-{name}" in got
        if not iface["enabled"]:
            assert f"wireguard-service-running-service-dead-{name}" in got
            continue
        assert f"wireguard-service-running-service-running-{name}" in got
        assert f"wireguard-network-routes-wireguard-interface-{name}" in got
        for peer_name, peer in iface["peers"].items():
            if not peer["public_key"] or peer.get("client"):
                continue
            kind = "peer_absent" if peer["absent"] else "peer"
            state = got[f"wireguard-peers-live-wireguard-{kind}-{name}-{peer_name}"]
            assert arg(state, "name") == peer["public_key"]
            assert arg(state, "interface") == name
        assert (f"wireguard-peers-live-wireguard-peers_purged-{name}" in got) == iface[
            "purge_peers"
        ]
    assert "wireguard-package-install-pkg-installed" in got


# ------------------------------------------------------------ confirm (issue 21)


def test_confirm_arms_before_the_first_change_and_checks_last(renderer):
    """Per interface with confirm on: its arm after the packages and before the
    firewall and the config directory (everything else follows those), its check last
    with no requisite; none for an interface with confirm off or absent."""
    pillar = {
        "lookup": {"confirm": {"timeout": 20}},
        "interfaces": {
            "wg0": {"address": "10.9.0.1/24"},
            "wg1": {"address": "10.9.1.1/24", "confirm": False},
            "wg2": {"absent": True},
        },
    }
    got = states(renderer.render("debian-12", pillar, sls=("wireguard",)))
    arm = got["wireguard-confirm-arm-wg0"]
    assert fun(arm) == "wireguard.confirm_armed" and arg(arm, "name") == "wg0"
    assert {"sls": "wireguard.package.install"} in arg(arm, "require")
    # the shared firewall and this interface's key, which its other states follow
    assert arg(arm, "require_in") == [
        {"wireguard": "wireguard-firewall-rules-wireguard-firewall"},
        {"wireguard": "wireguard-config-key-wireguard-private_key-wg0"},
    ]
    assert {"wireguard": "wireguard-config-key-wireguard-private_key-wg0"} in arg(
        got["wireguard-config-file-wireguard-config-wg0"], "require"
    )
    check = got["wireguard-confirm-check-wg0"]
    assert fun(check) == "wireguard.confirm_checked" and arg(check, "name") == "wg0"
    assert arg(check, "order") == "last" and arg(check, "require") is None
    assert [i for i in got if i.startswith("wireguard-confirm-")] == [
        "wireguard-confirm-arm-wg0",
        "wireguard-confirm-check-wg0",
    ]


def test_each_confirm_sls_applied_alone_renders_states(renderer):
    """Salt reports an empty run as failed: with no interface (or no confirm) each of
    them still renders a state."""
    sls = ("wireguard.confirm.check", "wireguard.confirm.clean")
    answer = renderer.render("debian-12", {}, sls=sls)
    for name in sls:
        assert states(answer, name), name


def test_confirm_renders_its_states_on_openrc(renderer):
    pillar = {"interfaces": {"wg0": {"address": "10.9.0.1/24", "confirm": True}}}
    answer = renderer.render("alpine-3.20", pillar, sls=("wireguard",))
    assert "wireguard-confirm-arm-wg0" in json.dumps(answer)
    assert "wireguard-confirm-check-wg0" in json.dumps(answer)


def test_networkd_runs_systemd_networkd_and_never_stops_it(renderer):
    """The networkd backend (issue 25, docs/networkd.md): its interface's service is
    systemd-networkd, started and enabled; a disabled or absent interface never stops
    it (the rest of the minion's network is networkd's); absent and clean remove the
    interface's networkd files by wireguard.networkd_absent."""
    peer = {"public_key": key(1), "allowed_ips": ["10.8.0.2/32"]}
    pillar = {
        "lookup": {"backend": "networkd"},
        "interfaces": {
            "wg0": {"address": "10.8.0.1/24", "peers": {"a": peer}},
            "wg1": {"address": "10.8.1.1/24", "enabled": False},
            "wg2": {"absent": True},
            "wg3": {"address": "10.8.3.1/24", "backend": "wg-quick"},
        },
    }
    grains = {"systemd": {"version": "252", "features": ""}}
    got = states(renderer.render("debian-12", pillar, grains=grains))
    running = got["wireguard-service-running-service-running-wg0"]
    assert fun(running) == "service.running" and arg(running, "name") == "systemd-networkd"
    assert arg(got["wireguard-config-file-wireguard-config-wg0"], "service") == "systemd-networkd"
    assert arg(got["wireguard-service-running-service-running-wg3"], "name") == "wg-quick@wg3"
    dead = sorted(arg(s, "name") for s in got.values() if fun(s) == "service.dead")
    assert dead == ["wg-quick@wg2"]  # the absent one's old wg-quick unit, if any
    assert not any("dropin" in state_id and "wg0" in state_id for state_id in got)
    assert fun(got["wireguard-config-file-wireguard-networkd_absent-wg2"]) == (
        "wireguard.networkd_absent"
    )
    got = states(
        renderer.render("debian-12", pillar, sls=("wireguard.clean",), grains=grains),
        "wireguard.clean",
    )
    absent = sorted(arg(s, "name") for s in got.values() if fun(s) == "wireguard.networkd_absent")
    assert absent == ["wg0", "wg1", "wg2", "wg3"]
    assert "systemd-networkd" not in [arg(s, "name") for s in got.values()]


# ------------------------------------------------------------- the top SLS files


def _concerns():
    """``{concern: [its SLS files, as includes of the top]}``: a concern's init.sls that
    only includes its files stands for them, one with states of its own for itself."""
    found = {}
    for init in sorted((REPO / "wireguard").glob("*/init.sls")):
        concern, text = init.parent.name, init.read_text()
        data = yaml.safe_load(text) if "{" not in text else None
        if isinstance(data, dict) and list(data) == ["include"]:
            found[concern] = [f".{concern}{leaf}" for leaf in data["include"]]
        else:
            found[concern] = [f".{concern}"]
    return found


def test_wireguard_sls_includes_every_concerns_files_once():
    """wireguard/init.sls names the concerns' files (not their init.sls: each SLS file
    costs a fetch and a render a run): every file a concern's init.sls includes, once."""
    top = yaml.safe_load((REPO / "wireguard" / "init.sls").read_text())["include"]
    concerns = _concerns()
    assert len(concerns) >= 9 and len(top) == len(set(top))
    assert sorted(top) == sorted(leaf for leaves in concerns.values() for leaf in leaves)
    # confirm arms before anything changes and checks after everything did
    assert top[0] == ".package.install" and top[1] == ".confirm.arm"
    assert top[-1] == ".confirm.check"


def test_wireguard_clean_sls_includes_every_concerns_clean():
    clean = yaml.safe_load((REPO / "wireguard" / "clean.sls").read_text())["include"]
    assert sorted(clean) == sorted(f".{concern}.clean" for concern in _concerns())
    assert clean[0] == ".confirm.clean" and clean[-1] == ".package.clean"
