"""The formula's layout as Salt renders it (the real loader, `state.show_sls`, see
tests/support/render.py): a bad `wireguard:lookup` fails every SLS, clean included,
before anything changes; a config dir that is not /etc/wireguard gets the unit drop-in
(systemd) or the link (OpenRC); clean removes only what the formula made."""

import pytest

from tests.support.render import SAMPLE, arg, fun, states

DROPIN = "/etc/systemd/system/wg-quick@{}.service.d/50-wireguard-formula-config-dir.conf"


def refused(answer, sls):
    """Salt's render errors for ``sls`` (the render must have failed)."""
    assert "error" not in answer, answer["error"]
    result = answer[sls]
    assert isinstance(result, list), f"{sls} rendered: {sorted(result)[:5]}"
    return "\n".join(map(str, result))


@pytest.mark.parametrize(
    ("lookup", "key_name"),
    [
        ({"config_dir": "/etc"}, "config_dir"),
        ({"config_dir": "/"}, "config_dir"),
        ({"config_dir": "/usr"}, "config_dir"),
        ({"config_dir": "/etc/wireguard/x/.."}, "config_dir"),
        ({"config_dir": ["x"]}, "config_dir"),
        ({"service": "x"}, "service"),
        ({"sysctl_file": "/etc"}, "sysctl_file"),
        ({"sysctl_file": "/etc/sysctl.conf"}, "sysctl_file"),
        ({"install_go": "yes"}, "install_go"),
    ],
)
def test_a_bad_lookup_fails_apply_and_clean_by_name(renderer, lookup, key_name):
    """`state.apply wireguard test=True` and `wireguard.clean` refuse: no state (no
    `file.directory /etc` 0700, no `file.absent /etc`) is even compiled."""
    answer = renderer.render(
        "debian-12",
        {**SAMPLE, "lookup": lookup},
        sls=("wireguard", "wireguard.clean", "wireguard.config.clean"),
    )
    for sls in ("wireguard", "wireguard.clean", "wireguard.config.clean"):
        message = refused(answer, sls)
        assert f"wireguard:lookup:{key_name}" in message, message
        assert "Traceback" not in message


def test_clean_refuses_with_a_bad_lookup_but_not_with_bad_interfaces(renderer):
    """Clean must work with an otherwise broken pillar: only the lookup is its business."""
    broken = {"interfaces": {"wg0": {"address": "not an address", "peers": 5}}}
    got = states(
        renderer.render("debian-12", broken, sls=("wireguard.clean",), interfaces=False),
        "wireguard.clean",
    )
    assert fun(got["wireguard-config-clean-file-absent"]) == "wireguard.config_dir_absent"
    assert "wireguard-service-clean-service-dead-wg0" in got


def prepare_case(renderer, names):
    """Files in the config dir of the next render (the worker's case dir)."""
    directory = renderer.tmp / f"case{renderer.count + 1}" / "etc-wireguard"
    for name in names:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    return directory


def run_clean(renderer, names):
    directory = prepare_case(renderer, names)
    single = ["state.single", ["wireguard.config_dir_absent"], {"name": str(directory)}]
    answer = renderer.render(
        "debian-12",
        {},
        sls=("wireguard.clean",),
        calls=[[single[0], single[1], {**single[2], "test": True}], single],
    )
    return directory, answer


def only_state(answer, call):
    result = answer[call]
    assert isinstance(result, dict), result
    (state,) = result.values()
    return state


def test_clean_leaves_a_foreign_file_and_the_directory(renderer):
    directory, answer = run_clean(
        renderer,
        [
            "wg0.conf",
            "wg0.key",
            "wg0.key.next",
            "wg0.clients.json",
            "clients/wg0/phone.key",
            "id_rsa",
            ".wireguard-formula",
        ],
    )
    got = states(answer, "wireguard.clean")
    assert arg(got["wireguard-config-clean-file-absent"], "name") == str(directory)
    predicted = only_state(answer, "call0")
    assert predicted["result"] is None
    assert str(directory) not in predicted["changes"]["removed"]
    assert "id_rsa" in predicted["comment"]
    done = only_state(answer, "call1")
    assert done["result"] is True, done
    assert sorted(p.name for p in directory.iterdir()) == [".wireguard-formula", "id_rsa"]
    assert (directory / "id_rsa").read_text() == "x\n"


def test_clean_removes_the_directory_the_formula_made_once_empty(renderer):
    directory, answer = run_clean(renderer, ["wg0.conf", "wg0.key", ".wireguard-formula"])
    done = only_state(answer, "call1")
    assert done["result"] is True, done
    assert str(directory) in done["changes"]["removed"]
    assert not directory.exists()


def test_clean_keeps_a_directory_the_formula_did_not_make(renderer):
    directory, answer = run_clean(renderer, ["wg0.conf", "wg0.key"])
    done = only_state(answer, "call1")
    assert done["result"] is True, done
    assert directory.is_dir() and not list(directory.iterdir())


def test_the_formula_marks_a_config_dir_it_makes(renderer):
    got = states(
        renderer.render("debian-12", SAMPLE, sls=("wireguard.config.key",)), "wireguard.config.key"
    )
    marker = got["wireguard-config-key-file-managed-marker"]
    assert arg(marker, "replace") is False
    assert {"file": "wireguard-config-key-file-directory"} in arg(marker, "require")
    # a directory that is there already (made by a package, or by hand) gets none
    directory = prepare_case(renderer, ["wg0.key"])
    got = states(
        renderer.render("debian-12", SAMPLE, sls=("wireguard.config.key",)), "wireguard.config.key"
    )
    assert directory.is_dir()
    assert "wireguard-config-key-file-managed-marker" not in got


def test_a_config_dir_of_its_own_gets_a_unit_drop_in(renderer):
    """systemd: wg-quick@<if> runs <config_dir>/<if>.conf, reloaded into systemd before
    the conf's state (which may restart the unit) and before the service starts."""
    answer = renderer.render("debian-12", SAMPLE, sls=("wireguard",))
    got = states(answer)
    config_dir = answer["config_dir"]
    for name in ("wg0", "wg1", "wg3"):
        dropin = got[f"wireguard-service-running-file-dropin-{name}"]
        assert fun(dropin) == "file.managed"
        assert arg(dropin, "name") == DROPIN.format(name)
        text = arg(dropin, "contents")
        assert f"ExecStart=wg-quick up {config_dir}/{name}.conf" in text
        assert f"ExecStop=wg-quick down {config_dir}/{name}.conf" in text
        assert (
            f"ExecReload=bash -c 'exec wg syncconf {name} <(exec wg-quick strip "
            f"{config_dir}/{name}.conf)'"
        ) in text
        reload_ = got[f"wireguard-service-running-module-run-daemon-reload-{name}"]
        assert fun(reload_) == "module.run"
        assert {"file": f"wireguard-service-running-file-dropin-{name}"} in arg(
            reload_, "onchanges"
        )
        assert {"wireguard": f"wireguard-config-file-wireguard-config-{name}"} in arg(
            reload_, "require_in"
        )
    running = got["wireguard-service-running-service-running-wg0"]
    assert {"module": "wireguard-service-running-module-run-daemon-reload-wg0"} in arg(
        running, "require"
    )
    assert "wireguard-service-running-file-dropin-wg2" not in got  # absent: none made


def test_the_default_config_dir_needs_no_drop_in(renderer):
    pillar = {
        "lookup": {"config_dir": "/etc/wireguard"},
        "interfaces": {"wg0": {"address": "10.9.0.1/24"}},
    }
    got = states(renderer.render("debian-12", pillar, interfaces=False))
    assert not [i for i in got if "dropin" in i or "daemon-reload" in i]


def test_a_unit_of_ones_own_gets_no_drop_in(renderer):
    pillar = {
        "lookup": {"service": {"name": "my-wg@{interface}"}},
        "interfaces": {"wg0": {"address": "10.9.0.1/24"}},
    }
    got = states(renderer.render("debian-12", pillar))
    assert not [i for i in got if "dropin" in i]


def test_openrc_links_the_conf_where_its_init_script_reads_it(renderer):
    answer = renderer.render("alpine-3.20", SAMPLE, sls=("wireguard",))
    got = states(answer)
    link = got["wireguard-service-running-file-conf-link-wg0"]
    assert fun(link) == "file.symlink"
    assert arg(link, "name") == "/etc/wireguard/wg0.conf"
    assert arg(link, "target") == f"{answer['config_dir']}/wg0.conf"
    assert {"file": "wireguard-service-running-file-conf-link-wg0"} in arg(
        got["wireguard-service-running-service-running-wg0"], "require"
    )
    assert not [i for i in got if "dropin" in i]


def test_the_map_layers_are_read_once_a_state_run(renderer):
    """map.jinja and its parameters/ layers (libmapstack.jinja) are fetched and rendered
    once a run, however many SLS files need the map (issue 24): run_map keeps the map
    data in the run's __context__, which Salt's state run marks with its file client,
    and an SLS file imports map.jinja only when run_map has none. A Salt that stopped
    marking the context would fetch and render them once per SLS file again."""
    answer = renderer.render("debian-12", SAMPLE, interfaces=False, capture_log=True)
    assert states(answer)

    def imports(template):
        return sum(f"looking at rel_path 'wireguard/{template}'" in line for line in answer["log"])

    rendered = sum("Rendered data from file" in line for line in answer["log"])
    assert rendered > 10
    assert imports("map.jinja") == 1 and imports("libmapstack.jinja") == 1
