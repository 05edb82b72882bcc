"""The pillar pipeline (``_utils/wgf_pipeline.py``) run as the execution module runs it:
compile, ask the mine for exactly the minions ``needs`` names, resolve."""

import wgf_keys
import wgf_pipeline

#: A server whose clients have quotas (test_quota, test_quota_iptables): a 1 MiB/day
#: client, a group's 10 GiB/month client with a rate, an unlimited client and a
#: disabled one with a quota.
QUOTA_CLIENTS = {
    "alice": {"group": "guests"},
    "phone": {"limits": {"quota": "1MiB", "period": "day"}},
    "plain": {},
    "off": {"enabled": False, "limits": {"quota": "1MiB"}},
}
QUOTA_GROUPS = {"guests": {"limits": {"rate": "5mbit", "quota": "10GiB"}}}


def interfaces(pillar, minion="minion1", mine=None, **facts):
    """The interfaces ``minion`` gets from its ``wireguard`` pillar. ``mine``: a function
    of a list of minion ids, as the loader's mine lookup (asked only when a peer needs
    it; None: peers named by ``minion`` stay unresolved); ``facts``: the other fields
    of ``wgf_pipeline.Facts``."""
    return run(pillar, minion, mine, **facts)["interfaces"]


def run(pillar, minion="minion1", mine=None, **facts):
    """``{"settings", "interfaces"}`` of the pipeline (see ``interfaces``)."""
    compiled = wgf_pipeline.compile_pillar(pillar, minion)
    wanted = wgf_pipeline.needs(compiled)["minions"]
    published = None if mine is None else mine(wanted) if wanted else {}
    facts = wgf_pipeline.Facts(minion, published_keys=published, **facts)
    return wgf_pipeline.resolve(compiled, facts)


def client_server(private_key, firewall="nftables", **keys):
    """wg0 of minion ``vpn`` (10.8.0.1/24 and fd08::1/64, port 51820) with the interface
    ``keys`` (its ``clients``, ``client_groups``...), as the minion resolves it with no
    client record yet (addresses from the pool, in the clients' order)."""
    iface = {
        "address": ["10.8.0.1/24", "fd08::1/64"],
        "listen_port": 51820,
        "endpoint": "vpn.example.com",
        **keys,
    }
    return interfaces(
        {"interfaces": {"wg0": iface}},
        "vpn",
        own_public_keys={"wg0": wgf_keys.pubkey(private_key)},
        client_records={"wg0": None},
        firewall=firewall,
    )["wg0"]
