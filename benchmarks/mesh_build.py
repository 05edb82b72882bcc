"""Benchmark: one minion builds its interface for a 200-node mesh (goal: under 2 s).

Run from the repository: ``.venv/bin/python -m benchmarks.mesh_build``.
Times what a node does in a run of the formula for a mine-driven network: validate
the declaration, work out its 199 peers, take their public keys from the mine data
(199 published keys, handed in as the mine would return them: the mine's own
transport from the master is not part of this number) and render the config file.
"""

import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "_utils"))
import wgf_conf  # the formula's utils, not an installed package
import wgf_keys
import wgf_pipeline

NODES = 200
ROUNDS = 10


def main():
    ids = [f"node{i:03d}" for i in range(NODES)]
    published = {m: {"wg1": wgf_keys.pubkey(wgf_keys.genkey())} for m in ids}
    nodes = {
        m: {
            "address": f"10.2.{i // 250}.{i % 250 + 1}/16",
            "endpoint": f"198.18.{i // 250}.{i % 250 + 1}",
            "allowed_ips": [f"192.168.{i}.0/24"],
        }
        for i, m in enumerate(ids)
    }
    pillar = {
        "networks": {
            "corp": {"interface": "wg1", "listen_port": 51821, "topology": "mesh", "nodes": nodes}
        }
    }
    key = wgf_keys.genkey()
    timings = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        compiled = wgf_pipeline.compile_pillar(pillar, "node000")
        facts = wgf_pipeline.Facts(
            "node000",
            published_keys={m: published[m] for m in wgf_pipeline.needs(compiled)["minions"]},
            own_public_keys={"wg1": wgf_keys.pubkey(key)},
            known_tables={"main", "local"},
        )
        interfaces = wgf_pipeline.resolve(compiled, facts)["interfaces"]
        text = wgf_conf.render(interfaces["wg1"], key)
        timings.append(time.perf_counter() - start)
    assert text.count("[Peer]") == NODES - 1
    median = statistics.median(timings)
    print(
        f"one node of a {NODES}-node mesh builds its interface (validate, 199 peers, "
        f"render): median {median * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms "
        f"over {ROUNDS} runs (goal < 2 s)"
    )
    return 0 if median < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
