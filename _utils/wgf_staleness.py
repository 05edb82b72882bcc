"""The one staleness rule: when the link to a peer is up, idle, stale, never made or
new. ``wireguard.check``, the fleet audit and the beacon (through
``wireguard.link_states``) all judge a peer with ``link_state`` and these constants.
Plain data in (peers of ``wgf_dump.parse``), plain data out.
"""

#: Seconds without a handshake, while traffic is sent, after which a peer is stale.
#: WireGuard renews a session every 120 s while it carries traffic and drops its keys
#: after 180 s, so a working link never goes past this.
STALE_AFTER = 180
#: Size of a WireGuard keepalive as the transfer counters count it (header and tag):
#: one keepalive is not traffic.
KEEPALIVE_BYTES = 32
#: Seconds ``wireguard.check`` watches the counters of peers without a recent handshake.
SAMPLE = 2
#: What ``link_state`` says of a peer.
UP, IDLE, STALE, NEVER, NEW = "up", "idle", "stale", "never", "new"


def link_state(peer, stale_after=STALE_AFTER, sample=None):
    """The state of the link to one peer (a peer of ``wgf_dump.parse``).

    ``sample`` is None, or ``{"tx": bytes, "rx": bytes}`` that the peer's counters grew
    by over a while (a later look, or since the beacon's previous one).

    - ``up``: a handshake within ``stale_after`` seconds, or the peer answers (its
      received counter grows: a peer found at a new address keeps its session);
    - ``stale``: the last handshake is older while traffic is being sent: the sent
      counter grew by more than one keepalive, or a persistent keepalive is set;
    - ``idle``: the last handshake is older and nothing is being sent;
    - ``never``: no handshake at all although traffic was sent;
    - ``new``: no handshake and nothing sent yet.

    A persistent keepalive counts as sending for a peer that never had a handshake
    only over a sample: a peer just added has its first handshake on the way.
    """
    age = peer["latest_handshake_age"]
    if age is not None and age <= stale_after:
        return UP
    if sample is not None and sample["rx"] > 0:
        return UP
    grew = sample is not None and sample["tx"] > KEEPALIVE_BYTES
    keepalive = bool(peer["persistent_keepalive"]) and (age is not None or sample is not None)
    sending = grew or keepalive
    if age is None:
        return NEVER if sending or (sample is None and peer["tx_bytes"]) else NEW
    return STALE if sending else IDLE


def sample(before, after):
    """How much a peer's counters grew from one look (``before``) to a later one."""

    def grown(counter):
        earlier = before.get(counter)
        return after[counter] - earlier if isinstance(earlier, int) else 0

    return {"tx": grown("tx_bytes"), "rx": grown("rx_bytes")}


def worth_sampling(live, stale_after=STALE_AFTER):
    """Whether a live interface has a peer whose handshake is missing or old."""
    return live is not None and any(
        p["latest_handshake_age"] is None or p["latest_handshake_age"] > stale_after
        for p in live["peers"].values()
    )


def link_states(shown, now, stale_after=STALE_AFTER, since=None):
    """``wireguard.link_states``: every live peer of ``shown`` (``wgf_dump.parse``)
    judged, with the counters' growth since ``since`` (an earlier result, when it is
    at most ``max(stale_after, 60)`` seconds old) as the sample."""
    earlier = {}
    if (
        isinstance(since, dict)
        and isinstance(since.get("at"), (int, float))
        and 0 <= now - since["at"] <= max(stale_after, 60)
    ):
        earlier = since.get("interfaces") or {}
    result = {"at": now, "stale_after": stale_after, "interfaces": {}}
    for name, iface in shown.items():
        states = result["interfaces"][name] = {}
        before_peers = earlier.get(name) if isinstance(earlier.get(name), dict) else {}
        for key, peer in iface["peers"].items():
            before = before_peers.get(key)
            growth = sample(before, peer) if isinstance(before, dict) else None
            states[key] = {
                "state": link_state(peer, stale_after, growth),
                "latest_handshake": peer["latest_handshake"],
                "age": peer["latest_handshake_age"],
                "endpoint": peer["endpoint"],
                "tx_bytes": peer["tx_bytes"],
                "rx_bytes": peer["rx_bytes"],
            }
    return result
