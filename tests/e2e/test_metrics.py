"""Metrics with names (issue 22, part 2) through a real master and real salt-minions: a
two-node mine-driven mesh with `lookup:metrics`; each minion's own scheduler writes the
textfile (names from pillar, 0644, renamed into place, updated every interval),
promtool accepts it and the master's `salt-run wireguard.alert_rules`, Debian's
node_exporter scrapes it with its textfile collector (the series keep the pillar's names,
and the verify failures of the minion's latest probe are one of them), and
`wireguard.clean` removes the job, the file and the verify result."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.deployments import containers_on_internet, orchestrate
from tests.lab.topologies import load_examples

INET = "198.18.22"
NODES = {"met1": 1, "met2": 2}
TEXTFILE = "/var/lib/prometheus/node-exporter/wireguard.prom"
INTERVAL = 5
VERIFY_RESULT = "/var/lib/wireguard-formula/verify/last.json"
#: Debian's prometheus-node-exporter (`./lab setup` installs it on the host; the binary
#: needs only libc, so it runs in a lab container as it would on the minion)
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
SCRAPE = (
    "import sys, urllib.request\n"
    "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
)


def metrics_pillar():
    """examples/mine-mesh with these two nodes, and `lookup:metrics`."""
    pillar = copy.deepcopy(load_examples()["mine-mesh"]["node1"])
    corp = pillar["wireguard"]["networks"]["corp"]
    corp["nodes"] = {
        n: {"address": f"10.22.0.{i}/24", "endpoint": f"{INET}.{i}"} for n, i in NODES.items()
    }
    pillar["wireguard"]["lookup"] = {"metrics": {"textfile": TEXTFILE, "interval": INTERVAL}}
    return pillar


@pytest.fixture(scope="module")
def fleet(lab):
    with lab.section():
        _, hosts = containers_on_internet(lab, "met-inet", NODES, INET)
        for host in hosts.values():  # node_exporter's directory, as its package makes it
            host.run(["mkdir", "-p", os.path.dirname(TEXTFILE)])
        pillars = {m: metrics_pillar() for m in NODES}
        # one assertion each (issue 22): `salt-run wireguard.verify` probes it
        pillars["met2"]["wireguard"]["expect"] = [{"from": "met2", "to": "met1"}]
        pillars["met1"]["wireguard"]["expect"] = [{"from": "met1", "to": "10.22.0.99"}]
        lab.master.write_pillar(pillars)
        orchestrate(lab.master)
        for a, b in (("met1", 2), ("met2", 1)):
            assert hosts[a].ping_until(f"10.22.0.{b}", within=30).received
        yield lab, hosts


def samples(text):
    return {
        (s.name, s.labels.get("peer")): s
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def written(host, other, within=30):
    """The textfile once the scheduler wrote it with the peer ``other`` up."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if host.file_exists(TEXTFILE):
            text = host.read(TEXTFILE)
            found = samples(text)
            if (
                found.get(("wireguard_peer_up", other))
                and found[("wireguard_peer_up", other)].value
            ):
                return text
        time.sleep(1)
    pytest.fail(f"{TEXTFILE}: {other} not up within {within} s")


def test_the_minions_scheduler_writes_the_peers_by_name(fleet):
    lab, hosts = fleet
    text = written(hosts["met1"], "met2")
    up = samples(text)[("wireguard_peer_up", "met2")]
    assert up.labels == {"interface": "wg1", "peer": "met2", "network": "corp", "kind": "node"}
    assert samples(text)[("wireguard_peer_expected", "met2")].value == 1
    assert samples(text)[("wireguard_peer_receive_bytes_total", "met2")].value > 0
    assert hosts["met1"].out(["stat", "-c", "%a", TEXTFILE]).strip() == "644"
    private = hosts["met1"].read("/etc/wireguard/wg1.key").strip()
    public = hosts["met2"].out(["sh", "-c", "wg pubkey < /etc/wireguard/wg1.key"]).strip()
    assert private not in text and public not in text
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    jobs = lab.master.salt("met1", "schedule.list", return_yaml=False)["met1"]
    assert jobs["wireguard-metrics"]["function"] == "wireguard.metrics"
    assert jobs["wireguard-metrics"]["seconds"] == INTERVAL


def test_a_second_apply_leaves_the_job_alone(fleet):
    lab, _ = fleet
    ret = lab.master.state_apply("met1")["met1"]
    (job,) = [v for k, v in ret.items() if "wireguard-metrics-schedule-present" in k]
    assert job["result"] is True and job["changes"] == {}, job


def test_the_textfile_is_replaced_every_interval(fleet):
    _, hosts = fleet
    host = hosts["met2"]
    written(host, "met1")
    first = host.out(["stat", "-c", "%i %Y", TEXTFILE]).split()
    deadline = time.monotonic() + 4 * INTERVAL
    later = first
    while later == first and time.monotonic() < deadline:
        time.sleep(1)
        later = host.out(["stat", "-c", "%i %Y", TEXTFILE]).split()
    assert later[0] != first[0], "not renamed into place: the same inode"
    assert int(later[1]) > int(first[1])
    leftovers = host.out(["ls", "-A", os.path.dirname(TEXTFILE)]).split()
    assert leftovers == ["wireguard.prom"]


def test_the_alert_rules_from_pillar_pass_promtool(fleet, tmp_path):
    lab, _ = fleet
    text = lab.master.salt_run("wireguard.alert_rules", tgt="met*")
    assert isinstance(text, str), text
    assert "wireguard_peer_expected == 1 and wireguard_peer_up == 0" in text
    assert f'wireguard\\\\.prom"}} > {3 * INTERVAL}' in text
    path = tmp_path / "wireguard.yml"
    path.write_text(text)
    check = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _scrape(host, within=30):
    """node_exporter's /metrics on the host, once it listens."""
    deadline = time.monotonic() + within
    while True:
        got = host.run(["python3", "-c", SCRAPE, "http://127.0.0.1:9100/metrics"], check=False)
        if got.returncode == 0 or time.monotonic() > deadline:
            assert got.returncode == 0, got.stderr
            return got.stdout
        time.sleep(0.5)


def test_node_exporter_scrapes_the_textfile_with_the_pillars_names(fleet):
    """A real scrape: node_exporter's textfile collector reads the formula's textfile and
    serves its series, named as pillar names the peers, next to its own; the verify run
    of the master shows as the failures of the minion's latest probe."""
    lab, hosts = fleet
    host = hosts["met1"]
    code = lab.master.run(
        ["salt-run", "--out=json", "wireguard.verify", "tgt=met*"], check=False, timeout=120
    )
    assert code.returncode == 1, code.stdout  # met1's assertion fails, met2's holds
    assert json.loads(host.read(VERIFY_RESULT))["failed"] == 1
    shutil.copy2(NODE_EXPORTER, host.merged / "usr/local/bin/node_exporter")
    unit = host.systemd_run(
        [
            "/usr/local/bin/node_exporter",
            "--collector.disable-defaults",
            "--collector.textfile",
            f"--collector.textfile.directory={os.path.dirname(TEXTFILE)}",
            "--web.listen-address=127.0.0.1:9100",
        ],
        "lab-node-exporter",
    )
    try:
        deadline = time.monotonic() + 4 * INTERVAL
        while True:  # until the scheduler's next textfile carries the verify result
            found = samples(_scrape(host))
            if found.get(("wireguard_verify_failures", None)) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        host.systemctl("stop", unit, check=False)
    up = found[("wireguard_peer_up", "met2")]
    assert up.labels == {"interface": "wg1", "peer": "met2", "network": "corp", "kind": "node"}
    assert up.value == 1
    assert found[("wireguard_peer_receive_bytes_total", "met2")].value > 0
    assert found[("node_textfile_scrape_error", None)].value == 0
    (mtime,) = [s for (name, _), s in found.items() if name == "node_textfile_mtime_seconds"]
    assert mtime.labels == {"file": TEXTFILE}
    assert found[("wireguard_verify_failures", None)].value == 1


def test_clean_removes_the_job_and_the_file(fleet):
    lab, hosts = fleet
    written(hosts["met2"], "met1")
    lab.master.run(["salt-run", "wireguard.verify", "tgt=met*"], check=False, timeout=120)
    assert hosts["met2"].file_exists(VERIFY_RESULT), "met2 probed its assertion"
    lab.master.state_apply("met2", sls="wireguard.clean")
    assert not hosts["met2"].file_exists(TEXTFILE)
    assert not hosts["met2"].file_exists(os.path.dirname(VERIFY_RESULT))
    jobs = lab.master.salt("met2", "schedule.list", return_yaml=False)["met2"]
    assert "wireguard-metrics" not in (jobs or {})
    time.sleep(2 * INTERVAL)  # no job left to write it again
    assert not hosts["met2"].file_exists(TEXTFILE)
