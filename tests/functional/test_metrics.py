"""``wireguard.metrics`` (issue 22, part 2) against a real wireguard-go pair in network
namespaces: peers named by pillar, the one staleness rule on the real handshake,
``promtool check metrics`` on the exposition, and the textfile written atomically,
0644, and updated on the next call."""

import os
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families
from salt.exceptions import SaltInvocationError

import wgf_metrics
from tests.support.minion import REPO

pytestmark = pytest.mark.functional


def samples(text):
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, sample.labels.get("peer"))] = sample
    return found


@pytest.fixture
def named(loaders, pair, config_dir, remote2, set_pillar):
    """Pillar names r2 (live, handshaked) and `laptop` (not live); a stranger pillar
    does not declare is live; the interface's key file is three days old."""
    wg = loaders.modules.wireguard
    laptop = wg.pubkey(wg.genkey())
    stranger = wg.pubkey(wg.genkey())
    wg.set_peer(pair.ifname, stranger, allowed_ips=["10.77.0.50/32"])
    key_file = config_dir / f"{pair.ifname}.key"
    key_file.write_text(pair.local_key + "\n")
    key_file.chmod(0o600)
    three_days_ago = os.stat(key_file).st_mtime - 3 * 86400
    os.utime(key_file, (three_days_ago, three_days_ago))
    peers = {
        "r2": {
            "public_key": remote2,
            "allowed_ips": ["10.77.0.2/32"],
            "endpoint": "198.18.10.2:51822",
        },
        "laptop": {"public_key": laptop, "allowed_ips": ["10.77.0.3/32"]},
    }
    set_pillar(
        {
            "wireguard": {
                "lookup": {"config_dir": str(config_dir)},
                "interfaces": {
                    pair.ifname: {"address": "10.77.0.1/24", "listen_port": 51820, "peers": peers}
                },
            }
        }
    )
    return {"r2": remote2, "laptop": laptop, "stranger": stranger, "peers": peers}


def test_a_real_pair_is_shown_by_pillar_names_and_promtool_accepts_it(loaders, pair, named):
    text = loaders.modules.wireguard.metrics()
    got = samples(text)
    stranger = named["stranger"][:8]
    assert got[("wireguard_peer_up", "r2")].value == 1
    assert got[("wireguard_peer_up", "r2")].labels == {
        "interface": pair.ifname,
        "peer": "r2",
        "network": "",
        "kind": "peer",
    }
    assert got[("wireguard_peer_expected", "r2")].value == 1
    assert got[("wireguard_peer_receive_bytes_total", "r2")].value > 0
    assert got[("wireguard_peer_transmit_bytes_total", "r2")].value > 0
    assert 0 <= got[("wireguard_peer_latest_handshake_age_seconds", "r2")].value < 60
    # declared, not live: expected and down, no counters
    assert got[("wireguard_peer_expected", "laptop")].value == 1
    assert got[("wireguard_peer_up", "laptop")].value == 0
    assert ("wireguard_peer_receive_bytes_total", "laptop") not in got
    # live, not declared: named by its key's first 8 characters, not expected
    assert got[("wireguard_peer_expected", stranger)].value == 0
    assert got[("wireguard_peer_up", stranger)].value == 0
    age = got[("wireguard_interface_key_age_seconds", None)].value
    assert 3 * 86400 <= age < 3 * 86400 + 120
    for secret in (pair.local_key, named["r2"], named["laptop"], named["stranger"]):
        assert secret not in text
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_real_peer_is_down_once_its_handshake_is_past_the_staleness_time(loaders, pair, named):
    """The live state is the real one; only the clock given to the series moves."""
    live = loaders.modules.wireguard.show()
    declared = loaders.modules.wireguard.pillar_interfaces()
    handshake = live[pair.ifname]["peers"][named["r2"]]["latest_handshake"]

    def up(now):
        text = wgf_metrics.exposition(wgf_metrics.series(live, declared, {}, {}, None, now))
        return samples(text)[("wireguard_peer_up", "r2")].value

    assert up(handshake + 180) == 1
    assert up(handshake + 181) == 0


def test_the_textfile_is_written_atomically_0644_and_updated_on_the_next_call(
    loaders, pair, named, tmp_path, set_pillar, config_dir
):
    directory = tmp_path / "textfile"
    directory.mkdir()
    textfile = directory / "wireguard.prom"
    umask = os.umask(0o077)  # salt-minion's own umask must not make it unreadable
    try:
        returned = loaders.modules.wireguard.metrics(textfile=str(textfile))
    finally:
        os.umask(umask)
    first = textfile.read_text()
    assert first == returned
    assert os.stat(textfile).st_mode & 0o777 == 0o644
    assert os.listdir(directory) == ["wireguard.prom"]  # no temporary file left
    # a reader of the old file keeps it whole: a rename, no rewrite in place
    with open(textfile) as held:
        inode = os.stat(textfile).st_ino
        peers = {**named["peers"], "phone": {"public_key": named["stranger"]}}
        peers["phone"]["allowed_ips"] = ["10.77.0.50/32"]
        set_pillar(
            {
                "wireguard": {
                    "lookup": {"config_dir": str(config_dir)},
                    "interfaces": {
                        pair.ifname: {
                            "address": "10.77.0.1/24",
                            "listen_port": 51820,
                            "peers": peers,
                        }
                    },
                }
            }
        )
        loaders.modules.wireguard.metrics(textfile=str(textfile))
        assert held.read() == first
    second = samples(textfile.read_text())
    assert os.stat(textfile).st_ino != inode
    assert second[("wireguard_peer_expected", "phone")].value == 1  # the stranger, named
    assert ("wireguard_peer_expected", named["stranger"][:8]) not in second
    assert os.listdir(directory) == ["wireguard.prom"]


def test_a_textfile_that_is_a_directory_is_refused_and_nothing_written(loaders, named, tmp_path):
    with pytest.raises(SaltInvocationError, match=r"textfile: .* is a directory"):
        loaders.modules.wireguard.metrics(textfile=str(tmp_path))
    with pytest.raises(SaltInvocationError, match="textfile: expected an absolute path"):
        loaders.modules.wireguard.metrics(textfile="wireguard.prom")
    assert not list(REPO.glob("wireguard.prom*"))


def test_a_scheduled_run_writes_the_textfile_only_while_the_schedule_has_its_job(
    loaders, named, tmp_path
):
    """A scheduler's run (``scheduled=True``) that outlived ``wireguard.clean`` (its job
    gone from the saved schedule) or a moved textfile does not write the file back."""
    wg, schedule = loaders.modules.wireguard, loaders.modules.schedule
    textfile, moved = tmp_path / "wireguard.prom", tmp_path / "moved.prom"
    wg.metrics(textfile=str(textfile), scheduled=True)
    assert not textfile.exists(), "no job saved: nothing written"
    schedule.add(
        wgf_metrics.JOB,
        function="wireguard.metrics",
        job_kwargs={"textfile": str(textfile), "scheduled": True},
        seconds=30,
        offline=True,
    )
    try:
        text = wg.metrics(textfile=str(textfile), scheduled=True)
        assert textfile.read_text() == text
        wg.metrics(textfile=str(moved), scheduled=True)
        assert not moved.exists(), "the job names another file"
        wg.metrics(textfile=str(moved))  # by hand: written
        assert moved.exists()
    finally:
        schedule.delete(wgf_metrics.JOB, offline=True)
    assert wgf_metrics.JOB not in schedule.list(show_all=True, return_yaml=False, offline=True)
