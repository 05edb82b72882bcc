"""Benchmark: the static part of ``salt-run wireguard.verify`` on a 24-node mesh with 552
assertions, every node to every other (goal: under 1 s).

Run from the repository: ``.venv/bin/python -m benchmarks.verify_scale``.
No master and no network: each node's interface comes out of the formula's own pillar
pipeline (a mine-driven mesh, the mine's keys given), its facts are composed as
``wireguard.verify_facts`` composes them (the live ``wg`` state as the pipeline wants it,
one route per AllowedIP as wg-quick adds them, an access rule set on every node), and
the runner's static part is timed: the answers read as untrusted data, every name
checked, every assertion decided hop by hop and back, the result and its table.
"""

import pathlib
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "_utils"))
import wgf_keys  # noqa: E402  (the formula's utils, not an installed package)
import wgf_pipeline  # noqa: E402
import wgf_verify_report  # noqa: E402

NODES = 24
GOAL = 1.0
RUNS = 5


def fleet():
    """``{minion: verify_facts}`` of the mesh, each node asserting it reaches every other
    on tcp/22 (its access rules let the other nodes to port 22 only)."""
    ids = [f"node{i:02d}" for i in range(NODES)]
    private = {m: wgf_keys.genkey() for m in ids}
    public = {m: {"wg1": wgf_keys.pubkey(k)} for m, k in private.items()}
    mesh = {
        "interface": "wg1",
        "listen_port": 51821,
        "nodes": {
            m: {"address": f"10.3.0.{i + 1}/24", "endpoint": f"198.18.3.{i + 1}"}
            for i, m in enumerate(ids)
        },
    }
    answers = {}
    for i, minion in enumerate(ids):
        pillar = {"networks": {"corp": mesh}}
        declared = wgf_pipeline.run(
            pillar,
            wgf_pipeline.Facts(
                minion_id=minion,
                published_keys=public,
                own_public_keys={"wg1": public[minion]["wg1"]},
                firewall="nftables",
            ),
        )["interfaces"]
        wg1 = declared["wg1"]
        wg1["access"] = {
            "default": "drop",
            "rules": [
                {
                    "from": ["10.3.0.0/24"],
                    "to": [],
                    "proto": "tcp",
                    "ports": ["22"],
                    "sources": ["10.3.0.0/24"],
                }
            ],
        }
        live = {
            "wg1": {
                "public_key": public[minion]["wg1"],
                "listen_port": 51821,
                "peers": {
                    p["public_key"]: {"allowed_ips": p["allowed_ips"]}
                    for p in wg1["peers"].values()
                },
            }
        }
        routes = [{"dst": "10.3.0.0/24", "dev": "wg1"}] + [
            {"dst": c, "dev": "wg1"} for p in wg1["peers"].values() for c in p["allowed_ips"]
        ]
        routes.append({"dst": "default", "dev": "eth0"})
        links = [
            {"ifname": "lo", "addr_info": [{"local": "127.0.0.1", "prefixlen": 8}]},
            {"ifname": "wg1", "addr_info": [{"local": f"10.3.0.{i + 1}", "prefixlen": 24}]},
        ]
        expect = [
            {"from": minion, "to": other, "proto": "tcp", "port": 22}
            for other in ids
            if other != minion
        ]
        answers[minion] = wgf_verify_report.facts(
            declared, live, {}, routes, links, {"ipv4": False, "ipv6": False}, expect
        )
    return answers


def static_part(answers):
    facts = wgf_verify_report.facts_from(answers)
    assertions, decisions = wgf_verify_report.static(facts)
    result = wgf_verify_report.result(assertions, decisions)
    wgf_verify_report.text_table(result)
    return result


def main():
    answers = fleet()
    times, result = [], None
    for _ in range(RUNS):
        start = time.perf_counter()
        result = static_part(answers)
        times.append(time.perf_counter() - start)
    count = len(result["assertions"])
    assert count == NODES * (NODES - 1), count
    assert result["failed"] == 0, [r for r in result["assertions"] if not r["pass"]][:3]
    print(
        f"{NODES}-node mesh, {count} assertions, static part of salt-run wireguard.verify: "
        f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
        f"over {RUNS} runs (goal < {GOAL * 1000:.0f} ms); {result['passed']} passed"
    )
    return 0 if max(times) < GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
