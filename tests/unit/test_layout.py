"""The formula's layout on a minion (``_utils/wgf_layout.py``): the map's values checked,
the systemd drop-in and OpenRC link for a config dir that is not /etc/wireguard, and
what clean may remove."""

import copy
import os
import pathlib

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from salt.exceptions import SaltInvocationError

import wgf_layout

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((REPO / "wireguard/parameters/defaults.yaml").read_text())["values"]


def with_lookup(**changes):
    values = copy.deepcopy(DEFAULTS)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key].update(value)
        else:
            values[key] = value
    return values


def refusal(values):
    with pytest.raises(SaltInvocationError) as info:
        wgf_layout.check_map(values)
    return str(info.value)


def test_the_defaults_and_every_os_layer_pass():
    assert wgf_layout.check_map(with_lookup()) == DEFAULTS
    for layer in sorted((REPO / "wireguard/parameters").rglob("*.yaml")):
        values = yaml.safe_load(layer.read_text())["values"]
        merged = with_lookup(**values)
        assert wgf_layout.check_map(merged) is merged, layer


@pytest.mark.parametrize(
    "path",
    [
        "/etc/wireguard",
        "/etc/wireguard-rot",
        "/srv/wg/conf",
        "/tmp/pytest-of-root/pytest-3/case1/etc-wireguard",
        "/var/lib/wireguard",
        "/opt/wg",
    ],
)
def test_a_directory_of_its_own_is_a_config_dir(path):
    assert wgf_layout.check_config_dir(path) == path
    assert wgf_layout.check_map(with_lookup(config_dir=path))["config_dir"] == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/", "system directory"),
        ("/etc", "system directory"),
        ("/usr", "system directory"),
        ("/var", "system directory"),
        ("/root", "system directory"),
        ("/home", "system directory"),
        ("/boot", "system directory"),
        ("/proc", "system directory"),
        ("/sys", "system directory"),
        ("/dev", "system directory"),
        ("/run", "system directory"),
        ("/tmp", "system directory"),
        ("/var/lib", "system directory"),
        ("/etc/systemd/system", "system directory"),
        ("/proc/sys/net", "system directory"),
        ("/dev/shm/wg", "system directory"),
        ("/etc/wireguard/x/..", "not a normalised path"),
        ("/etc/./wireguard", "normalised"),
        ("/etc//wireguard", "normalised"),
        ("/etc/wireguard/", "normalised"),
        ("etc/wireguard", "not an absolute path"),
        ("", "not an absolute path"),
        ("/etc/wire guard", "only letters"),
        ("/etc/wg%i", "only letters"),
        ("/etc/wg\nExecStart=/bin/sh", "only letters"),
        ("/etc/$HOME", "only letters"),
    ],
)
def test_config_dir_refusals_name_the_key(path, why):
    message = refusal(with_lookup(config_dir=path))
    assert message.startswith("wireguard:lookup:config_dir: "), message
    assert why in message
    with pytest.raises(SaltInvocationError, match="wireguard:lookup:config_dir"):
        wgf_layout.check_config_dir(path)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"config_dir": ["x"]}, "config_dir"),
        ({"config_dir": None}, "config_dir"),
        ({"config_dir": 7}, "config_dir"),
        ({"service": "x"}, "service"),
        ({"service": {"name": ["wg-quick@{interface}"]}}, "service:name"),
        ({"service": {"name": "wg-quick@wg0"}}, "service:name"),
        ({"service": {"name": "wg quick@{interface}"}}, "service:name"),
        (
            {"service": {"link": "/etc/init.d/wg-quick.{interface}", "link_target": None}},
            "service:link_target",
        ),
        (
            {"service": {"link": "/etc/init.d/wg-quick", "link_target": "/etc/init.d/wg-quick"}},
            "service:link",
        ),
        ({"service": {"link": 5, "link_target": "/etc/init.d/wg-quick"}}, "service:link"),
        (
            {"service": {"link": "/etc/init.d/wg-quick.{interface}", "link_target": "wg-quick"}},
            "service:link_target",
        ),
        ({"pkgs": "wireguard-tools"}, "pkgs"),
        ({"pkgs": {"tools": None}}, "pkgs:tools"),
        ({"pkgs": {"tools": "wireguard-tools; rm -rf /"}}, "pkgs:tools"),
        ({"pkgs": {"resolvconf": ["openresolv"]}}, "pkgs:resolvconf"),
        ({"pkgs": {"go": 1}}, "pkgs:go"),
        ({"pkgs": {"extra": "wireguard-tools-openrc"}}, "pkgs:extra"),
        ({"pkgs": {"extra": [None]}}, "pkgs:extra:0"),
        ({"pkgs": {"firewall": ["nftables"]}}, "pkgs:firewall"),
        ({"pkgs": {"firewall": {"nftables": "nftables"}}}, "pkgs:firewall:nftables"),
        ({"pkgs": {"firewall": {"pf": ["pf"]}}}, "pkgs:firewall:pf"),
        ({"install_go": "yes"}, "install_go"),
        ({"install_go": None}, "install_go"),
        ({"install_recommends": "no"}, "install_recommends"),
        ({"firewall": "ufw"}, "firewall"),
        ({"firewall": ["nftables"]}, "firewall"),
        ({"sysctl_file": "/etc"}, "sysctl_file"),
        ({"sysctl_file": "/etc/sysctl.conf"}, "sysctl_file"),
        ({"sysctl_file": "/etc/sysctl.d/99-wireguard"}, "sysctl_file"),
        ({"sysctl_file": "/etc/sysctl.d/x/../99-wireguard.conf"}, "sysctl_file"),
        ({"sysctl_file": {"path": "/etc/sysctl.d/99-wireguard.conf"}}, "sysctl_file"),
        ({"sysctl_file": "sysctl.d/99-wireguard.conf"}, "sysctl_file"),
    ],
)
def test_every_lookup_value_is_type_checked(changes, key):
    message = refusal(with_lookup(**changes))
    assert f"wireguard:lookup:{key}: " in message, message


def test_package_lists_take_names_and_pinned_versions():
    values = with_lookup(pkgs={"extra": ["wireguard-tools-openrc", {"nftables": "1.0.6-2"}]})
    assert wgf_layout.check_map(values) is values
    assert "wireguard:lookup:pkgs:extra:0" in refusal(with_lookup(pkgs={"extra": [{"x": []}]}))


def test_every_problem_is_named_at_once():
    message = refusal(with_lookup(config_dir="/etc", sysctl_file="/", install_go=1))
    for key in ("config_dir", "sysctl_file", "install_go"):
        assert f"wireguard:lookup:{key}:" in message


def test_refusals_show_no_huge_value():
    """An integer past Python's 4,300-digit limit has no str: the refusal names its type."""
    message = refusal(
        with_lookup(config_dir=10**5000, install_go=10**5000, service={"name": "x" * 10_000})
    )
    assert "a value of type int" in message and len(message) < 1000


def test_a_lookup_that_is_no_mapping():
    for value in ("x", ["config_dir"], 5, None, 10**5000):
        assert refusal(value).startswith("wireguard:lookup: must be a mapping")


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["/", "/etc", "/etc/wireguard", "..", "/a/../b", "{interface}"])
)
NAMES = st.sampled_from(["tools", "go", "name", "link", "link_target", "nftables", "x"])
VALUES = (
    SCALARS
    | st.lists(SCALARS, max_size=3)
    | st.dictionaries(NAMES, SCALARS | st.lists(SCALARS, max_size=3), max_size=3)
)
KEYS = st.sampled_from(
    ["pkgs", "install_go", "install_recommends", "config_dir", "service", "sysctl_file", "firewall"]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=3))
def test_any_lookup_is_accepted_or_refused_by_name(changes):
    values = with_lookup(**changes)
    try:
        checked = wgf_layout.check_map(values)
    except SaltInvocationError as exc:
        assert str(exc).startswith("wireguard:lookup"), exc
        return
    directory = checked["config_dir"]
    assert directory.startswith("/") and os.path.normpath(directory) == directory
    assert directory not in wgf_layout.SYSTEM_DIRS


def test_config_dir_comes_from_the_argument_or_the_lookup():
    assert wgf_layout.config_dir({}) == "/etc/wireguard"
    assert wgf_layout.config_dir({"config_dir": "/etc/wg-rot"}) == "/etc/wg-rot"
    assert wgf_layout.config_dir({"config_dir": "/etc/wg-rot"}, "/srv/wg") == "/srv/wg"
    for bad in ("/etc", ["x"], "/etc/wg/.."):
        with pytest.raises(SaltInvocationError, match="wireguard:lookup:config_dir"):
            wgf_layout.config_dir({"config_dir": bad})
        with pytest.raises(SaltInvocationError, match="config_dir"):
            wgf_layout.config_dir({}, bad)


def test_the_lookup_is_read_unmasked():
    calls = []

    def pillar_get(key, default=None, unmask=False):
        calls.append((key, unmask))
        return {"config_dir": "/etc/wg-rot"} if unmask else {"config_dir": "**********"}

    assert wgf_layout.config_dir(wgf_layout.read_lookup(pillar_get)) == "/etc/wg-rot"
    assert calls == [("wireguard:lookup", True)]
    assert wgf_layout.read_lookup(lambda *a, **k: "x") == {}


# ------------------------------------------------------------------ service


def test_the_drop_in_names_the_file_for_start_stop_and_reload():
    dropin = wgf_layout.dropin("wg8", "/etc/wireguard-rot")
    assert dropin["path"] == (
        "/etc/systemd/system/wg-quick@wg8.service.d/50-wireguard-formula-config-dir.conf"
    )
    lines = dropin["text"].splitlines()
    assert lines[lines.index("[Service]") + 1 :] == [
        "ExecStart=",
        "ExecStart=wg-quick up /etc/wireguard-rot/wg8.conf",
        "ExecStop=",
        "ExecStop=wg-quick down /etc/wireguard-rot/wg8.conf",
        "ExecReload=",
        "ExecReload=bash -c 'exec wg syncconf wg8 <(exec wg-quick strip "
        "/etc/wireguard-rot/wg8.conf)'",
    ]
    assert "%" not in "\n".join(lines[lines.index("[Service]") :])


def test_no_drop_in_for_the_default_dir_a_unit_of_ones_own_or_openrc():
    assert wgf_layout.dropin("wg0", "/etc/wireguard")["text"] is None
    assert wgf_layout.dropin("wg0", "/etc/wg-rot", "my-wg@{interface}")["text"] is None
    assert wgf_layout.dropin("wg0", "/etc/wg-rot", init="openrc") is None
    with pytest.raises(SaltInvocationError):
        wgf_layout.dropin("wg0/../x", "/etc/wg-rot")
    with pytest.raises(SaltInvocationError):
        wgf_layout.dropin("wg0", "/etc")


def test_openrc_links_the_conf_where_alpines_init_script_reads_it():
    assert wgf_layout.openrc_link("wg0", "/etc/wg-rot", "/etc/init.d/wg-quick") == {
        "path": "/etc/wireguard/wg0.conf",
        "target": "/etc/wg-rot/wg0.conf",
    }
    assert wgf_layout.openrc_link("wg0", "/etc/wireguard", "/etc/init.d/wg-quick")["target"] is None
    assert wgf_layout.openrc_link("wg0", "/etc/wg-rot", "/etc/init.d/my-wg") is None
    assert wgf_layout.openrc_link("wg0", "/etc/wg-rot", None) is None


# -------------------------------------------------------------------- clean


def make(directory, names):
    for name in names:
        path = directory / name
        if name.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")


def test_clean_removes_the_formulas_files_and_keeps_the_rest(tmp_path):
    directory = tmp_path / "wg"
    make(
        directory,
        [
            "wg0.conf",
            "wg0.key",
            "wg0.key.next",
            "wg0.clients.json",
            ".wg0.conf.k3j_x1",
            "clients/wg0/phone.key",
            "clients/wg0/phone.psk",
            "notes.txt",
            "backup/",
            wgf_layout.MARKER,
        ],
    )
    removed, kept = wgf_layout.clean(str(directory))
    assert sorted(os.listdir(directory)) == sorted(["notes.txt", "backup", wgf_layout.MARKER])
    assert kept == [str(directory / "backup"), str(directory / "notes.txt")]
    assert str(directory / "clients") in removed
    # the foreign files gone, the next clean takes the directory (the formula made it)
    (directory / "notes.txt").unlink()
    (directory / "backup").rmdir()
    assert wgf_layout.clean(str(directory)) == ([str(directory)], [])
    assert not directory.exists()


def test_clean_keeps_a_directory_the_formula_did_not_make(tmp_path):
    directory = tmp_path / "wg"
    make(directory, ["wg0.conf", "wg0.key"])
    assert wgf_layout.clean_plan(str(directory)) == (
        [str(directory / "wg0.conf"), str(directory / "wg0.key")],
        False,
        [],
    )
    wgf_layout.clean(str(directory))
    assert directory.is_dir() and not os.listdir(directory)


def test_clean_leaves_a_clients_directory_with_foreign_files(tmp_path):
    directory = tmp_path / "wg"
    make(
        directory,
        [
            "clients/wg0/phone.key",
            "clients/wg0/photo.jpg",
            "clients/x y/a.key",
            "wg0.conf/",
            wgf_layout.MARKER,
        ],
    )
    paths, remove_directory, kept = wgf_layout.clean_plan(str(directory))
    assert paths == [] and remove_directory is False
    assert kept == [str(directory / "clients"), str(directory / "wg0.conf")]


def test_clean_of_what_is_not_there(tmp_path):
    assert wgf_layout.clean_plan(str(tmp_path / "none")) == ([], False, [])
    (tmp_path / "link").symlink_to("/etc")
    assert wgf_layout.clean_plan(str(tmp_path / "link")) == ([], False, [])


# ------------------------------------------------------------------ the Layout object


def test_layout_builds_every_path_under_its_config_dir():
    layout = wgf_layout.Layout("/srv/wg-site")
    assert layout.conf("wg7") == "/srv/wg-site/wg7.conf"
    assert layout.key("wg7") == "/srv/wg-site/wg7.key"
    assert layout.key_next("wg7") == "/srv/wg-site/wg7.key.next"
    assert layout.clients_record("wg7") == "/srv/wg-site/wg7.clients.json"
    assert layout.clients_dir("wg7") == "/srv/wg-site/clients/wg7"
    assert layout.client_key("wg7", "phone", "psk") == "/srv/wg-site/clients/wg7/phone.psk"
    assert layout.marker == "/srv/wg-site/" + wgf_layout.MARKER
    assert layout.files("wg7") == {
        "conf": layout.conf("wg7"),
        "key": layout.key("wg7"),
        "clients_record": layout.clients_record("wg7"),
        "clients_dir": layout.clients_dir("wg7"),
    }


@pytest.mark.parametrize(
    "service, unit",
    [(wgf_layout.DEFAULT_SERVICE, "wg-quick@site9"), ("wg-quick.{interface}", "wg-quick.site9")],
)
def test_layout_names_the_unit_of_its_init_system(service, unit):
    assert wgf_layout.Layout(service=service).unit("site9") == unit
    assert wgf_layout.Layout().config_dir == wgf_layout.DEFAULT_CONFIG_DIR


def test_every_formula_file_the_layout_names_is_one_clean_removes(tmp_path):
    layout = wgf_layout.Layout(str(tmp_path))
    for path in (layout.conf("wg3"), layout.key("wg3"), layout.key_next("wg3")):
        pathlib.Path(path).write_text("x")
    pathlib.Path(layout.clients_record("wg3")).write_text("{}")
    os.makedirs(layout.clients_dir("wg3"))
    pathlib.Path(layout.client_key("wg3", "laptop", "key")).write_text("x")
    assert set(wgf_layout.formula_entries(str(tmp_path))) == {
        layout.conf("wg3"),
        layout.key("wg3"),
        layout.key_next("wg3"),
        layout.clients_record("wg3"),
        layout.clients_dir("wg3"),
    }


def test_layout_names_openrc_s_link_and_none_on_systemd():
    openrc = wgf_layout.Layout(
        service="wg-quick.{interface}", service_link="/etc/init.d/wg-quick.{interface}"
    )
    assert openrc.link("wg5") == "/etc/init.d/wg-quick.wg5"
    assert wgf_layout.Layout().link("wg5") is None
