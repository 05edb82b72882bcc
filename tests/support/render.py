"""The formula rendered by the real Salt without touching the host, shared by
tests/unit/test_formula_render.py and test_layout_render.py: one worker process (this
file run as a script) renders every case in turn through `salt.client.Caller`, each with
its own minion config in a temp dir (grains overridden, file_roots = the formula,
pillar_roots = the case's pillar, config_dir in a temp dir). Nothing is applied:
`state.show_sls` only compiles. Also the OSes the formula supports with what their map
must give, the sample pillar, and helpers that read a compiled state."""

import base64
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MARK = "@@formula-render@@ "

#: What the map must give on the Debian family (Debian and Ubuntu differ in resolvconf).
DEBIAN = {
    "tools": "wireguard-tools",
    "go": "wireguard-go",
    "firewall": {"nftables": ["nftables"], "iptables": ["iptables"]},
    "install_recommends": False,
    "extra": [],
    "unit": "wg-quick@{}",
    "link": None,
}
#: What the map must give on the RedHat family (Rocky and Fedora alike).
REDHAT = {
    "tools": "wireguard-tools",
    "resolvconf": "systemd-resolved",
    "go": None,
    "firewall": {"nftables": ["nftables"], "iptables": ["iptables-nft"]},
    "install_recommends": None,
    "extra": [],
    "unit": "wg-quick@{}",
    "link": None,
}
# grains of each OS the formula supports, and what its map must give
OSES = {
    "debian-12": {
        "grains": {
            "os": "Debian",
            "os_family": "Debian",
            "osfinger": "Debian-12",
            "osmajorrelease": 12,
            "oscodename": "bookworm",
            "init": "systemd",
        },
        "resolvconf": "openresolv",
        **DEBIAN,
    },
    "ubuntu-24.04": {
        "grains": {
            "os": "Ubuntu",
            "os_family": "Debian",
            "osfinger": "Ubuntu-24.04",
            "osmajorrelease": 24,
            "oscodename": "noble",
            "init": "systemd",
        },
        "resolvconf": "systemd-resolved",
        **DEBIAN,
    },
    "rocky-9": {
        "grains": {
            "os": "Rocky",
            "os_family": "RedHat",
            "osfinger": "Rocky Linux-9",
            "osmajorrelease": 9,
            "init": "systemd",
        },
        **REDHAT,
    },
    "fedora-41": {
        "grains": {
            "os": "Fedora",
            "os_family": "RedHat",
            "osfinger": "Fedora-41",
            "osmajorrelease": 41,
            "init": "systemd",
        },
        **REDHAT,
    },
    "arch": {
        "grains": {"os": "Arch", "os_family": "Arch", "osfinger": "Arch", "init": "systemd"},
        "tools": "wireguard-tools",
        "resolvconf": "openresolv",
        "go": "wireguard-go",
        "firewall": {"nftables": ["nftables"], "iptables": ["iptables"]},
        "install_recommends": None,
        "extra": [],
        "unit": "wg-quick@{}",
        "link": None,
    },
    "opensuse-15": {
        "grains": {
            "os": "SUSE",
            "os_family": "Suse",
            "osfullname": "Leap",
            "osfinger": "Leap-15",
            "osmajorrelease": 15,
            "init": "systemd",
        },
        "tools": "wireguard-tools",
        "resolvconf": None,
        "go": None,
        "firewall": {"nftables": ["nftables"], "iptables": ["iptables"]},
        "install_recommends": None,
        "extra": [],
        "unit": "wg-quick@{}",
        "link": None,
    },
    "alpine-3.20": {
        "grains": {
            "os": "Alpine",
            "os_family": "Alpine",
            "osfinger": "Alpine-3",
            "osmajorrelease": 3,
            "init": "openrc",
        },
        "tools": "wireguard-tools",
        "resolvconf": "openresolv",
        "go": "wireguard-go",
        "firewall": {"nftables": ["nftables"], "iptables": ["iptables", "ip6tables"]},
        "install_recommends": None,
        "extra": ["wireguard-tools-openrc"],
        "unit": "wg-quick.{}",
        "link": ("/etc/init.d/wg-quick.{}", "/etc/init.d/wg-quick"),
    },
}


def key(seed):
    """A deterministic, valid 32-byte base64 key (not a real secret)."""
    return base64.b64encode(bytes([seed]) * 32).decode()


# the secrets of SAMPLE: they must never appear in anything rendered
PRIVATE_KEY = base64.b64encode(bytes(range(1, 33))).decode()
PRESHARED_KEY = base64.b64encode(bytes(range(101, 133))).decode()

SAMPLE = {
    "interfaces": {
        "wg0": {
            "address": ["10.1.1.11/32", "fd00:1::11/128"],
            "listen_port": 51820,
            "private_key": PRIVATE_KEY,
            "dns": ["1.1.1.1"],
            "routes": ["172.16.1.0/24"],
            "forwarding": True,
            "masquerade": ["eth0"],
            "peers": {
                "hub": {
                    "public_key": key(1),
                    "allowed_ips": ["10.1.1.0/24"],
                    "endpoint": "vpn.example.com:51820",
                    "persistent_keepalive": 25,
                    "preshared_key": PRESHARED_KEY,
                },
                "laptop": {"public_key": key(2), "allowed_ips": ["10.1.1.12/32"]},
                "old": {"public_key": key(3), "allowed_ips": ["10.1.1.13/32"], "absent": True},
            },
        },
        "wg1": {
            "address": "10.2.0.1/24",
            "listen_port": 51821,
            "enabled": False,
            "peers": {"b": {"public_key": key(4), "allowed_ips": ["10.2.0.2/32"]}},
        },
        "wg2": {"address": "10.3.0.1/24", "absent": True},
        "wg3": {
            "address": "10.4.0.1/24",
            "purge_peers": False,
            "table": "off",
            "routes": ["192.168.50.0/24"],
            "peers": {"c": {"public_key": key(5), "allowed_ips": ["10.4.0.2/32"]}},
        },
    }
}


# ------------------------------------------------------------------ the worker


def _worker():
    """Render cases read as JSON lines from stdin; answer each with one marked line."""
    import logging

    import salt.client
    import salt.config

    class Capture(logging.Handler):
        def __init__(self):
            super().__init__(level=1)
            self.lines = []

        def emit(self, record):
            try:
                self.lines.append(record.getMessage())
            except Exception:  # a bad log call must not kill the worker
                self.lines.append(str(record.msg))

    root = logging.getLogger()
    for line in sys.stdin:
        case = json.loads(line)
        capture = Capture()
        if case.get("capture_log"):
            root.setLevel(1)
            root.addHandler(capture)
        answer = {}
        try:
            opts = salt.config.minion_config(case["config"])
            caller = salt.client.Caller(mopts=opts)
            for sls in case["sls"]:
                answer[sls] = caller.cmd("state.show_sls", sls)
            if case.get("interfaces"):
                try:
                    # pillar passed in: Salt masks pillar.get outside a render
                    answer["interfaces"] = caller.cmd(
                        "wireguard.pillar_interfaces",
                        pillar=case["interfaces"],
                        config_dir=case["config_dir"],
                    )
                except Exception as exc:  # reported to the test
                    answer["interfaces"] = f"{type(exc).__name__}: {exc}"
            for i, (fun_name, args, kwargs) in enumerate(case.get("calls", [])):
                answer[f"call{i}"] = caller.cmd(fun_name, *args, **kwargs)
            for sls_file in case.get("templates", []):
                answer[sls_file] = caller.cmd(
                    "slsutil.renderer",
                    f"salt://{sls_file}",
                    default_renderer="jinja",
                    sls=sls_file[: -len(".sls")].replace("/", "."),
                )
        except Exception as exc:  # reported to the test
            answer["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            root.removeHandler(capture)
        if case.get("capture_log"):
            answer["log"] = capture.lines
        sys.stdout.write(MARK + json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


class Renderer:
    """Talks to one worker process; `render()` returns what the worker answered."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.count = 0
        self.lock = threading.Lock()
        # file_roots holds only the formula: the fileserver walks all of it per run,
        # and the repository root holds .venv
        self.file_root = tmp / "file_root"
        self.file_root.mkdir()
        (self.file_root / "wireguard").symlink_to(REPO / "wireguard")
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
        self.proc = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=tmp,
            env=env,
        )

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def render(
        self,
        os_name="debian-12",
        pillar=None,
        sls=("wireguard",),
        minion_id=None,
        interfaces=True,
        templates=(),
        capture_log=False,
        grains=None,
        extra_pillar=None,
        calls=(),
    ):
        with self.lock:
            self.count += 1
            case_dir = self.tmp / f"case{self.count}"
            (case_dir / "pillar").mkdir(parents=True)
            (case_dir / "conf").mkdir()
            config_dir = case_dir / "etc-wireguard"
            wireguard = dict(pillar or {})
            lookup = dict(wireguard.get("lookup") or {})
            lookup.setdefault("config_dir", str(config_dir))
            lookup.setdefault("sysctl_file", str(case_dir / "sysctl.d" / "99-wireguard.conf"))
            wireguard["lookup"] = lookup
            (case_dir / "pillar" / "top.sls").write_text("base:\n  '*':\n    - wireguard\n")
            (case_dir / "pillar" / "wireguard.sls").write_text(
                yaml.safe_dump({"wireguard": wireguard, **(extra_pillar or {})})
            )
            all_grains = dict(OSES[os_name]["grains"])
            all_grains.update(grains or {})
            config = {
                "id": minion_id or "formula-test",
                "file_client": "local",
                "root_dir": str(case_dir / "root"),
                "file_roots": {"base": [str(self.file_root)]},
                "pillar_roots": {"base": [str(case_dir / "pillar")]},
                "module_dirs": [str(REPO / "_modules")],
                "utils_dirs": [str(REPO / "_utils")],
                "states_dirs": [str(REPO / "_states")],
                "grains": all_grains,
                "log_level": "quiet",
                "log_level_logfile": "quiet",
                "state_verbose": True,
            }
            (case_dir / "conf" / "minion").write_text(yaml.safe_dump(config))
            request = {
                "config": str(case_dir / "conf" / "minion"),
                "sls": list(sls),
                "interfaces": wireguard if interfaces else None,
                "config_dir": str(config_dir),
                "templates": list(templates),
                "capture_log": capture_log,
                "calls": list(calls),
            }
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError("the render worker died")
                if line.startswith(MARK):
                    answer = json.loads(line[len(MARK) :])
                    answer["config_dir"] = str(config_dir)
                    answer["case_dir"] = str(case_dir)
                    return answer


def states(answer, sls="wireguard"):
    """The compiled states of one render; fail the test with Salt's errors if any."""
    assert "error" not in answer, answer["error"]
    result = answer[sls]
    assert isinstance(result, dict), f"rendering {sls} failed:\n" + "\n".join(map(str, result))
    return result


def fun(state):
    """'module.function' of one compiled state."""
    for mod, args in state.items():
        if not mod.startswith("__") and isinstance(args, list):
            return mod + "." + next(a for a in args if isinstance(a, str))
    raise AssertionError(f"no function in {state}")


def arg(state, name, default=None):
    for mod, args in state.items():
        if not mod.startswith("__") and isinstance(args, list):
            for a in args:
                if isinstance(a, dict) and name in a:
                    return a[name]
    return default


if __name__ == "__main__":
    _worker()
