"""Reachability assertions (issue 22) on examples/mesh, through the real `salt-run
wireguard.verify` command line: assertions that hold and one that fails, static and live,
and an AllowedIPs missing on the way back, named at its first failing hop (the jumpbox's
access, masquerade, forwarding and a firewall outside the formula: test_firewall.py)."""

from __future__ import annotations

import copy
import json

from tests.e2e.deployments import MESH_IP

TCP_PORT = 8022
NOWHERE = "10.10.0.99"  # inside wg0's /24, but no peer's AllowedIPs hold it
# each minion's pillar wireguard:expect; the runner gathers them from all three
EXPECT = {
    "mesh1": [
        {"from": "mesh1", "to": "mesh2"},
        {"from": "mesh1", "to": "mesh3", "proto": "tcp", "port": TCP_PORT},
        {"from": "mesh1", "to": NOWHERE},  # fails: no peer takes it
    ],
    "mesh2": [{"from": "mesh2", "to": MESH_IP["mesh3"]}],
    "mesh3": [{"from": "mesh3", "to": "mesh1"}],
}


def _verify(mesh, *args: str) -> tuple[int, dict, str]:
    """`salt-run wireguard.verify ARGS` as a user runs it, as JSON and as the table: the
    exit code (the same for both), the JSON's answer, the table."""
    master = mesh.lab.master
    master.sync_all()
    argv = ["salt-run", "--no-color", "-t", "60", "wireguard.verify", *args]
    data = master.run([argv[0], "--out=json", *argv[1:]], check=False, timeout=120)
    text = master.run(argv, check=False, timeout=120)
    assert data.returncode == text.returncode, (data.stdout, text.stdout)
    return data.returncode, json.loads(data.stdout), text.stdout


def _rows(data) -> dict:
    return {(r["from"], r["to"], r["proto"], r["port"]): r for r in data["assertions"]}


def _with_expect(mesh) -> None:
    pillar = copy.deepcopy(mesh.base)
    for minion, expect in EXPECT.items():
        pillar[minion]["wireguard"]["expect"] = copy.deepcopy(expect)
    mesh.apply(pillar)


def test_verify_on_the_mesh_holds_and_fails_static_and_live(restore):
    mesh = restore
    _with_expect(mesh)
    listener = mesh["mesh3"].systemd_run(
        ["python3", "-m", "http.server", str(TCP_PORT), "--bind", MESH_IP["mesh3"]], "lab-tcp"
    )
    try:
        _holds_and_fails(mesh)
    finally:
        mesh["mesh3"].systemctl("stop", listener, check=False)


def _holds_and_fails(mesh):
    code, data, table = _verify(mesh, "live=false")
    rows = _rows(data)
    assert code == 1 and (data["passed"], data["failed"]) == (4, 1), data
    assert {r["live"] for r in data["assertions"]} == {None}, "live=false probes nothing"
    held = rows[("mesh1", "mesh2", "icmp", None)]
    assert (held["static"], held["pass"], held["path"]) == ("allow", True, ["mesh1", "mesh2"])
    assert rows[("mesh2", MESH_IP["mesh3"], "icmp", None)]["path"] == ["mesh2", "mesh3"]
    failed = rows[("mesh1", NOWHERE, "icmp", None)]
    assert (failed["static"], failed["pass"]) == ("block", False), failed
    assert failed["reason"] == f"mesh1: AllowedIPs of no peer on wg0 include {NOWHERE}"
    assert table.startswith("WireGuard verify: 4 passed, 1 failed"), table

    code, data, table = _verify(mesh)  # live=true, the default
    rows = _rows(data)
    assert code == 1 and (data["passed"], data["failed"]) == (4, 1), data
    for key, row in rows.items():
        want = "block" if key[1] == NOWHERE else "allow"
        assert (row["static"], row["live"]) == (want, want), row
    assert rows[("mesh1", "mesh3", "tcp", TCP_PORT)]["pass"] is True
    assert f"mesh1 -> {NOWHERE} icmp" in table, table
    last = json.loads(mesh["mesh1"].read("/var/lib/wireguard-formula/verify/last.json"))
    assert (last["passed"], last["failed"]) == (2, 1), last


def test_a_missing_allowed_ip_on_the_return_path_is_named_at_its_hop(restore):
    """mesh2's peer mesh1 loses mesh1's address from its AllowedIPs (live, as a hand-made
    `wg set` would): mesh1's packets reach mesh2, which drops them and could not answer;
    static and live say block, and the reason names mesh2 and what it lacks."""
    mesh = restore
    _with_expect(mesh)
    key = mesh["mesh1"].out(["wg", "show", "wg0", "public-key"]).strip()
    wrong = ["wg", "set", "wg0", "peer", key, "allowed-ips", "10.10.0.98/32"]
    mesh["mesh2"].run(wrong)
    try:
        code, data, table = _verify(mesh)
        rows = _rows(data)
        assert code == 1, table
        row = rows[("mesh1", "mesh2", "icmp", None)]
        assert (row["static"], row["live"], row["pass"]) == ("block", "block", False), row
        assert row["path"] == ["mesh1", "mesh2"], row
        assert row["reason"] == "mesh2: AllowedIPs of mesh1 lack 10.10.0.0/24 (no return path)"
        back = rows[("mesh3", "mesh1", "icmp", None)]  # mesh3's own pair is untouched
        assert (back["static"], back["live"], back["pass"]) == ("allow", "allow", True), back
        assert "(no return path)" in table, table
    finally:
        mesh["mesh2"].run(["wg", "set", "wg0", "peer", key, "allowed-ips", "10.10.0.1/32"])
