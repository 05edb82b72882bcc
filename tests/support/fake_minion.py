"""The fake minion of the state modules' unit tier: the ``__salt__`` functions the
states call (``FakeMinion``), and ``hand_in`` of a fake host adapter
(``tests/support/fake_host.py``) to every state file."""

from salt.exceptions import CommandExecutionError

import wgf_files
import wgf_host
import wgf_layout
from tests.support import pipeline

IF = "wg7"


class FakeMinion:
    """The ``__salt__`` functions the states call, over a dict of live peers and a
    pillar; every change they are asked to make is recorded. No ``cmd.*`` or
    ``service.*``: the states run those through the host adapter."""

    def __init__(self, tmp_path, pillar=None):
        self.config_dir = str(tmp_path)
        self.pillar = pillar or {"interfaces": {IF: {"address": ["10.7.0.1/24"]}}}
        self.live = {"public_key": None, "listen_port": None, "fwmark": None, "peers": {}}
        self.up = True
        self.applied = []  # (interface, peers, remove)
        self.firewall = "none"
        self.facts = {}  # more of wgf_pipeline.Facts (init, backend, systemd_version)

    def functions(self):
        return {
            "wireguard.show": self.show,
            "wireguard.interfaces": lambda: [IF] if self.up else [],
            "wireguard.apply_peers": self.apply_peers,
            "wireguard.resolve_endpoint": self.resolve_endpoint,
            "wireguard.service_name": lambda i: f"wg-quick@{i}",
            "wireguard.pillar_interfaces": self.pillar_interfaces,
            "wireguard.pillar_settings": self.pillar_settings,
            "wireguard_layout.config_dir": lambda config_dir=None: wgf_layout.config_dir(
                self.pillar.get("lookup") or {}, config_dir or self.config_dir
            ),
            "pillar.get": lambda key, default=None, unmask=False: (
                self.pillar if key == "wireguard" else default
            ),
        }

    def show(self, interface, psk_digests=False):
        if not self.up:
            raise CommandExecutionError(f"Unable to access interface {interface}")
        return {interface: self.live}

    @staticmethod
    def resolve_endpoint(endpoint):
        if ".invalid:" in endpoint:  # RFC 2606: never resolves
            raise CommandExecutionError(f"Endpoint '{endpoint}' does not resolve")
        return [endpoint]

    def apply_peers(self, interface, peers=None, remove=None):
        self.applied.append((interface, peers or [], remove or []))
        return True

    def pillar_interfaces(self, pillar=None, config_dir=None):
        return self.pipeline()["interfaces"]

    def pillar_settings(self, pillar=None):
        return self.pipeline()["settings"]

    def pipeline(self):
        return pipeline.run(
            self.pillar,
            "minion",
            lambda m: {},
            firewall=self.firewall,
            **self.facts,
            client_records={
                ifname: wgf_files.read(wgf_layout.Layout(self.config_dir).clients_record(ifname))
                for ifname in (self.pillar.get("interfaces") or {})
            },
        )


def hand_in(monkeypatch, host):
    """Every state file gets the fake host in place of ``wgf_host.Host`` (after loading
    them: loading reads the utils again)."""
    monkeypatch.setattr(wgf_host, "Host", lambda salt: host)
