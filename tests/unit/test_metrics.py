"""Metrics with names (issue 22, part 2): ``lookup:metrics`` checked where lookup is
(the map and the pillar pipeline), the series of ``wireguard.metrics`` named by pillar
and judged by the one staleness rule with time driven through the inputs, the
exposition that ``promtool check metrics`` and ``prometheus_client``'s parser accept,
the alert rules that ``promtool check rules`` accepts, and the SLS that keeps the
textfile fresh through the minion's scheduler."""

import os
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from salt.exceptions import SaltInvocationError

import wgf_layout
import wgf_metrics
import wgf_pipeline
from tests.support.render import arg, fun, key, states
from tests.unit.conftest import Runner

NOW = 1_700_000_000
HUB, LAPTOP, PHONE, STRANGER, NODE2 = (key(n) for n in (1, 2, 3, 4, 5))
GOOD = "/var/lib/prometheus/node-exporter/wireguard.prom"


def live_peer(handshake_age=None, rx=0, tx=0, keepalive=None):
    return {
        "latest_handshake": NOW - handshake_age if handshake_age is not None else None,
        "latest_handshake_age": handshake_age,
        "rx_bytes": rx,
        "tx_bytes": tx,
        "persistent_keepalive": keepalive,
        "endpoint": None,
    }


def peer(public_key, absent=False, client=False):
    found = {"public_key": public_key, "absent": absent}
    if client:
        found["client"] = True
    return found


def declared():
    """wg0: pillar's peers hub (live) and laptop (not live), client phone (live) and
    tablet (its key not made yet); wg9 from network `corp`, node minion2."""
    return {
        "wg0": {
            "absent": False,
            "max_key_age": 90,
            "peers": {
                "hub": peer(HUB),
                "laptop": peer(LAPTOP),
                "phone": peer(PHONE, client=True),
            },
            "clients": {
                "phone": {"absent": False, "public_key": PHONE},
                "tablet": {"absent": False, "public_key": None},
            },
        },
        "wg9": {
            "absent": False,
            "peers": {"minion2": peer(NODE2)},
            "clients": {},
        },
    }


def live():
    return {
        "wg0": {
            "peers": {
                HUB: live_peer(10, rx=1000, tx=2000),
                PHONE: live_peer(100, rx=5, tx=6),
                STRANGER: live_peer(None, tx=148),
            }
        },
        "wg9": {"peers": {NODE2: live_peer(30, rx=1, tx=2)}},
    }


def samples(text):
    """``{(sample name, frozenset(labels)): value}`` of an exposition, parsed back."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def labels(interface, name, network="", kind="peer"):
    return frozenset(
        {"interface": interface, "peer": name, "network": network, "kind": kind}.items()
    )


def exposition(now=NOW, verify=None, **changes):
    inputs = {
        "live": live(),
        "declared": declared(),
        "networks": {"wg9": "corp"},
        "key_mtimes": {"wg0": NOW - 3 * 86400},
        "verify": verify,
        "now": now,
    }
    inputs.update(changes)
    return wgf_metrics.exposition(wgf_metrics.series(**inputs))


# ------------------------------------------------------------------- series


def test_every_peer_is_named_as_pillar_names_it():
    got = samples(exposition())
    expected = {
        labels("wg0", "hub"): 1,
        labels("wg0", "laptop"): 1,
        labels("wg0", "phone", kind="client"): 1,
        labels("wg0", "tablet", kind="client"): 1,
        labels("wg0", STRANGER[:8]): 0,  # live, pillar does not declare it
        labels("wg9", "minion2", network="corp", kind="node"): 1,
    }
    assert {
        lab: value for (name, lab), value in got.items() if name == "wireguard_peer_expected"
    } == expected
    assert got[("wireguard_peer_up", labels("wg0", "hub"))] == 1
    assert got[("wireguard_peer_up", labels("wg9", "minion2", "corp", "node"))] == 1
    assert got[("wireguard_peer_receive_bytes_total", labels("wg0", "hub"))] == 1000
    assert got[("wireguard_peer_transmit_bytes_total", labels("wg0", "hub"))] == 2000
    assert got[("wireguard_peer_latest_handshake_age_seconds", labels("wg0", "hub"))] == 10


def test_a_declared_peer_that_is_not_live_is_expected_down_without_counters():
    got = samples(exposition())
    for lab in (labels("wg0", "laptop"), labels("wg0", "tablet", kind="client")):
        assert got[("wireguard_peer_expected", lab)] == 1
        assert got[("wireguard_peer_up", lab)] == 0
        shown = {n for n, seen in got if seen == lab}
        assert shown == {"wireguard_peer_expected", "wireguard_peer_up"}, shown


def test_a_peer_that_stops_handshaking_is_down_once_past_the_staleness_time():
    """The handshake stays where it was; the clock moves on (180 s: the rule of
    wireguard.check, the audit and the beacon)."""
    handshake = NOW - 10
    for now, up in ((handshake + 180, 1), (handshake + 181, 0), (handshake + 3600, 0)):
        got = samples(exposition(now=now))
        assert got[("wireguard_peer_up", labels("wg0", "hub"))] == up, now
        assert got[("wireguard_peer_latest_handshake_age_seconds", labels("wg0", "hub"))] == (
            now - handshake
        )


def test_key_age_max_key_age_and_verify_failures():
    got = samples(exposition(verify={"time": NOW - 60, "passed": 3, "failed": 2}))
    wg0 = frozenset({"interface": "wg0"}.items())
    assert got[("wireguard_interface_key_age_seconds", wg0)] == 3 * 86400
    assert got[("wireguard_interface_max_key_age_seconds", wg0)] == 90 * 86400
    assert ("wireguard_interface_key_age_seconds", frozenset({"interface": "wg9"}.items())) not in (
        got
    )  # no key file
    assert got[("wireguard_verify_failures", frozenset())] == 2
    assert got[("wireguard_verify_last_run_timestamp_seconds", frozenset())] == NOW - 60
    assert not [name for name, _ in samples(exposition()) if name.startswith("wireguard_verify")]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('{"time": 5, "passed": 1, "failed": 0}', {"time": 5, "passed": 1, "failed": 0}),
        ('{"time": "x", "passed": 1, "failed": 3}', {"time": None, "passed": 1, "failed": 3}),
        ('{"time": 5, "passed": 0, "failed": [{}, {}]}', {"time": 5, "passed": 0, "failed": 2}),
        ('{"failed": true}', None),
        ('{"failed": -1}', None),
        ("[1]", None),
        ('{"time": 5, "fail', None),
        (None, None),
    ],
)
def test_the_verify_result_file_is_read_as_untrusted(text, found):
    assert wgf_metrics.verify_result(text) == found


def test_one_interface_only():
    got = samples(exposition(only="wg9"))
    assert {dict(lab)["interface"] for _, lab in got if lab} == {"wg9"}


def test_every_series_has_help_and_the_wireguard_prefix_and_no_key():
    pillar = declared()
    pillar["wg0"]["clients"]["phone"].update(
        expires="2027-01-31T18:00:00Z", limits={"rate": None, "quota": 2**30}
    )
    use = {"wg0": {"phone": {"used": 5000, "quota": 2**30}}}
    text = exposition(declared=pillar, verify={"time": NOW, "passed": 1, "failed": 0}, use=use)
    families = list(text_string_to_metric_families(text))
    assert len(families) == len(wgf_metrics.FAMILIES)
    for family in families:
        assert family.name.startswith("wireguard_") and family.documentation, family.name
    for public_key in (HUB, LAPTOP, PHONE, STRANGER, NODE2):
        assert public_key not in text
    assert STRANGER[:8] in text


def test_promtool_accepts_the_exposition():
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=exposition(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_client_expiry_and_quota_where_pillar_sets_them():
    pillar = declared()
    pillar["wg0"]["clients"]["phone"].update(
        expires="2027-01-31T18:00:00Z", limits={"rate": None, "quota": 10 * 2**30}
    )
    found = samples(exposition(declared=pillar))
    phone = labels("wg0", "phone", kind="client")
    assert found[(wgf_metrics.CLIENT_EXPIRY, phone)] == 1801418400.0
    assert found[(wgf_metrics.CLIENT_QUOTA, phone)] == 10 * 2**30
    # the tablet sets neither: no series is made up for it
    assert not [k for k in found if k[0].startswith("wireguard_client_") and "tablet" in str(k)]
    assert wgf_metrics.CLIENT_EXPIRY not in exposition()
    proc = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition(declared=pillar),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------- settings


def test_settings_default_interval_and_off():
    assert wgf_metrics.check({"textfile": GOOD}) == {"textfile": GOOD, "interval": 30}
    assert wgf_metrics.check({"textfile": GOOD, "interval": 3600})["interval"] == 3600
    assert wgf_metrics.check(None) is None and wgf_metrics.check(False) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"textfile": "wireguard.prom"},
            "lookup:metrics:textfile: 'wireguard.prom' is not an absolute",
        ),
        (
            {"textfile": "/var/lib/../x.prom"},
            "lookup:metrics:textfile: '/var/lib/../x.prom' is not a normalised",
        ),
        ({"textfile": "/var/lib/x/"}, "lookup:metrics:textfile: '/var/lib/x/' is not a normalised"),
        ({"textfile": "/tmp"}, "lookup:metrics:textfile: '/tmp' is a directory"),
        ({"textfile": "/proc/x.prom"}, "lookup:metrics:textfile: '/proc/x.prom' is under"),
        ({"textfile": "/x y.prom"}, "lookup:metrics:textfile: '/x y.prom': only letters"),
        ({"textfile": ["/x.prom"]}, "lookup:metrics:textfile: expected the absolute path"),
        ({"interval": 30}, "lookup:metrics:textfile: required"),
        ({"textfile": GOOD, "interval": 4}, "lookup:metrics:interval: 4 is out of range"),
        ({"textfile": GOOD, "interval": 3601}, "lookup:metrics:interval: 3601 is out of range"),
        ({"textfile": GOOD, "interval": "30"}, "lookup:metrics:interval: '30' is not a whole"),
        ({"textfile": GOOD, "interval": True}, "lookup:metrics:interval: 'True' is not a whole"),
        ({"textfile": GOOD, "intervall": 30}, "did you mean 'interval'?"),
        ("/x.prom", "wireguard:lookup:metrics: expected a mapping"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(value, message):
    with pytest.raises(SaltInvocationError, match=r"^wireguard:lookup:metrics") as exc:
        wgf_metrics.check(value)
    assert message in str(exc.value)


def test_a_textfile_that_is_a_directory_on_the_minion_is_refused(tmp_path):
    with pytest.raises(SaltInvocationError, match="is a directory"):
        wgf_metrics.check({"textfile": str(tmp_path)})


def test_the_map_and_the_pipeline_refuse_bad_settings_before_anything():
    with pytest.raises(SaltInvocationError, match="wireguard:lookup:metrics:interval"):
        wgf_layout.check_map(
            {**wgf_layout_defaults(), "metrics": {"textfile": GOOD, "interval": 1}}
        )
    pillar = {"interfaces": {"wg0": {"address": "10.0.0.1/24"}}}
    facts = wgf_pipeline.Facts(minion_id="m1", metrics={"textfile": "x.prom"})
    with pytest.raises(SaltInvocationError, match="wireguard:lookup:metrics:textfile"):
        wgf_pipeline.run(pillar, facts)
    facts = wgf_pipeline.Facts(minion_id="m1", metrics={"textfile": GOOD})
    assert wgf_pipeline.run(pillar, facts)["settings"]["metrics"] == {
        "textfile": GOOD,
        "interval": 30,
    }
    assert (
        wgf_pipeline.run(pillar, wgf_pipeline.Facts(minion_id="m1"))["settings"]["metrics"] is None
    )


def wgf_layout_defaults():
    from tests.support.render import REPO

    text = (REPO / "wireguard/parameters/defaults.yaml").read_text()
    return yaml.safe_load(text)["values"]


# -------------------------------------------------------------- alert rules


def rules_of(minions, tmp_path):
    text = wgf_metrics.alert_rules(minions)
    path = tmp_path / "rules.yml"
    path.write_text(text)
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ((group,),) = [yaml.safe_load(text)["groups"]]
    assert group["name"] == "wireguard"
    return text, {rule["alert"]: rule for rule in group["rules"]}


def test_promtool_accepts_the_alert_rules_made_from_pillar(tmp_path):
    minions = {
        "hub": {
            "max_key_age": {"wg0": 90},
            "metrics": {"textfile": GOOD, "interval": 30},
        },
        "site-a": {"max_key_age": {}, "metrics": {"textfile": GOOD, "interval": 60}},
    }
    text, rules = rules_of(minions, tmp_path)
    down = rules["WireGuardPeerDown"]
    assert down["expr"] == "wireguard_peer_expected == 1 and wireguard_peer_up == 0"
    assert down["for"] == "5m"
    assert rules["WireGuardKeyTooOld"]["expr"] == (
        "wireguard_interface_key_age_seconds > wireguard_interface_max_key_age_seconds"
    )
    assert "# max_key_age (days) in pillar: hub wg0: 90 days" in text
    assert "each client whose pillar (or group) sets expires" in text
    assert wgf_metrics.CLIENT_EXPIRY in rules["WireGuardClientExpiresSoon"]["expr"]
    # the longest interval of the minions that write that file, three times
    assert rules["WireGuardMetricsStale"]["expr"] == (
        'time() - node_textfile_mtime_seconds{file=~"(.*/)?wireguard\\\\.prom"} > 180'
    )


def test_alert_rules_without_any_metrics_or_max_key_age_still_pass(tmp_path):
    text, rules = rules_of({}, tmp_path)
    assert set(rules) == {
        "WireGuardPeerDown",
        "WireGuardKeyTooOld",
        "WireGuardClientExpiresSoon",
        "WireGuardMetricsStale",
    }
    assert "no minion's pillar sets max_key_age" in text


def test_the_runner_reads_the_pillar_the_master_compiles(tmp_path, monkeypatch):
    import salt.utils.minions

    pillars = {
        "hub": {
            "wireguard": {
                "lookup": {"metrics": {"textfile": "/srv/node/wg.prom", "interval": 10}},
                "interfaces": {"wg0": {"address": "10.0.0.1/24", "max_key_age": 30}},
            }
        },
        "node1": {
            "wireguard": {
                "networks": {
                    "corp": {
                        "interface": "wg7",
                        "max_key_age": 60,
                        "nodes": {"node1": {"address": "10.5.0.1/24"}},
                    }
                }
            }
        },
        "plain": {},
        "broken": {"_errors": ["no"]},
        "bad": {"wireguard": {"lookup": {"metrics": {"textfile": "rel.prom"}}}},
    }

    class Targets:
        def __init__(self, opts):
            pass

        def check_minions(self, tgt, tgt_type):
            return {"minions": sorted(pillars)}

    monkeypatch.setattr(salt.utils.minions, "CkMinions", Targets)
    runner = Runner("wireguard_runner_metrics")
    runner.__opts__ = {"output": None}
    runner.__salt__ = {"pillar.show_pillar": lambda minion: pillars[minion]}
    got = runner.alert_rules()
    assert got["outputter"] == "txt"
    text = got["data"]
    assert "# max_key_age (days) in pillar: hub wg0: 30 days; node1 wg7: 60 days" in text
    assert "# left out (pillar not read): bad, broken" in text
    assert "from the pillar of 2 minion(s)" in text
    assert 'wg\\\\.prom"} > 30' in text


# ---------------------------------------------------------------------- SLS


def test_the_scheduler_keeps_the_textfile_fresh(renderer):
    pillar = {"lookup": {"metrics": {"textfile": GOOD, "interval": 15}}}
    got = states(renderer.render("debian-12", pillar, sls=("wireguard",)))
    job = got["wireguard-metrics-schedule-present"]
    assert fun(job) == "schedule.present"
    assert arg(job, "name") == "wireguard-metrics"
    assert arg(job, "function") == "wireguard.metrics"
    assert arg(job, "job_kwargs") == {"textfile": GOOD, "scheduled": True}
    assert arg(job, "seconds") == 15
    assert arg(job, "return_job") is False


def test_without_metrics_the_job_is_removed_and_clean_removes_job_and_file(renderer):
    got = states(renderer.render("debian-12", {}, sls=("wireguard",)))
    assert fun(got["wireguard-metrics-schedule-absent"]) == "schedule.absent"
    assert arg(got["wireguard-metrics-schedule-absent"], "name") == "wireguard-metrics"
    pillar = {"lookup": {"metrics": {"textfile": GOOD}}}
    clean = states(
        renderer.render("debian-12", pillar, sls=("wireguard.clean",)), "wireguard.clean"
    )
    assert fun(clean["wireguard-metrics-clean-schedule-absent"]) == "schedule.absent"
    assert arg(clean["wireguard-metrics-clean-file-absent-1"], "name") == GOOD


@pytest.mark.parametrize("pillar", [{}, {"lookup": {"metrics": {"textfile": GOOD}}}])
def test_clean_removes_the_verify_result_the_textfile_reads(renderer, pillar):
    """The latest verify probe's result (issue 22) goes with clean, metrics or not: the
    directory ``wireguard.verify_probe`` writes ``last.json`` into."""
    clean = states(
        renderer.render("debian-12", pillar, sls=("wireguard.clean",)), "wireguard.clean"
    )
    state = clean["wireguard-metrics-clean-verify-result-absent"]
    assert fun(state) == "file.absent"
    assert arg(state, "name") == os.path.dirname(wgf_layout.VERIFY_RESULT)
    assert wgf_layout.VERIFY_RESULT.startswith("/var/lib/wireguard-formula/verify/")


def test_a_bad_textfile_fails_the_render_naming_the_key(renderer):
    pillar = {"lookup": {"metrics": {"textfile": "../wireguard.prom"}}}
    answer = renderer.render("debian-12", pillar, sls=("wireguard", "wireguard.clean"))
    for sls in ("wireguard", "wireguard.clean"):
        assert isinstance(answer[sls], list), answer[sls]
        assert "wireguard:lookup:metrics:textfile" in "\n".join(map(str, answer[sls]))


def test_a_clients_quota_use_is_a_series_beside_its_quota():
    pillar = declared()
    pillar["wg0"]["clients"]["phone"].update(limits={"rate": None, "quota": 2**20})
    use = {"wg0": {"phone": {"used": 4096, "quota": 2**20, "over_quota": False}}}
    got = samples(exposition(declared=pillar, use=use))
    phone = labels("wg0", "phone", kind="client")
    assert got[("wireguard_client_quota_bytes", phone)] == 2**20
    assert got[("wireguard_client_quota_used_bytes", phone)] == 4096
    assert not [n for n, _ in samples(exposition(declared=pillar)) if n.endswith("_used_bytes")]
