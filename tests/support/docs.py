"""What the documentation tests read: the pages, the reference maker and every pillar
path the formula accepts (from the code's key sets, never copied)."""

import importlib.util
from pathlib import Path

import yaml

import wgf_confirm
import wgf_firewall
import wgf_limits
import wgf_metrics
import wgf_networks
import wgf_schema
import wgf_verify

REPO = Path(__file__).resolve().parents[2]
#: The pages a user reads: the README, docs/ and the examples' READMEs.
PAGES = sorted(
    [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "examples").rglob("*.md")]
)

_spec = importlib.util.spec_from_file_location(
    "make_reference", REPO / "docs" / "make_reference.py"
)
make_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_reference)


def _under(prefix, keys):
    return {f"{prefix}:{key}" for key in keys}


def lookup_keys():
    """`lookup` keys: every parameter of defaults.yaml, one level into a mapping
    (`pkgs:tools`; `pkgs:firewall` is one key whose value maps backends to packages)."""
    values = yaml.safe_load((REPO / "wireguard/parameters/defaults.yaml").read_text())["values"]
    keys = set(values)
    for key, value in values.items():
        if isinstance(value, dict):
            keys |= {f"{key}:{sub}" for sub in value}
    return keys


def accepted_paths():
    """Every pillar path the formula accepts; `*` stands for a name (or a list item)."""
    iface = "wireguard:interfaces:*"
    return (
        _under("wireguard", wgf_schema.TOP_KEYS)
        | _under("wireguard:lookup", lookup_keys())
        | _under("wireguard:lookup:confirm", wgf_confirm.KEYS)
        | _under("wireguard:lookup:metrics", wgf_metrics.KEYS)
        | _under(f"{iface}:confirm", wgf_confirm.KEYS)
        | _under(iface, wgf_schema.INTERFACE_KEYS)
        | _under(f"{iface}:peers:*", wgf_schema.PEER_KEYS)
        | _under(f"{iface}:client_defaults", wgf_schema.CLIENT_DEFAULT_KEYS)
        | _under(f"{iface}:clients:*", wgf_schema.CLIENT_KEYS)
        | _under(f"{iface}:client_groups:*", wgf_schema.GROUP_KEYS)
        | _under(f"{iface}:clients:*:limits", wgf_limits.KEYS)
        | _under(f"{iface}:access", wgf_firewall.ACCESS_KEYS)
        | _under(f"{iface}:access:rules:*", wgf_firewall.RULE_KEYS)
        | _under("wireguard:networks:*", wgf_networks.NETWORK_KEYS)
        | _under("wireguard:networks:*:nodes:*", wgf_networks.NODE_KEYS)
        | _under("wireguard:expect:*", wgf_verify.KEYS)
    )
