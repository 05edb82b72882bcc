"""The one staleness rule (``wgf_staleness.link_state``) that ``wireguard.check``, the
fleet audit and the beacon all judge a peer by."""

import pytest

import wgf_staleness

UP, IDLE, STALE, NEVER, NEW = "up", "idle", "stale", "never", "new"
KEEPALIVE = wgf_staleness.KEEPALIVE_BYTES


def sent(tx, rx=0):
    """How much the counters grew while watched."""
    return {"tx": tx, "rx": rx}


RULE = [
    # (handshake age, bytes sent so far, persistent keepalive, sample, state)
    # a recent handshake is up, whatever else
    (10, 1000, None, None, UP),
    (180, 1000, None, None, UP),
    (10, 1000, 25, sent(10**6), UP),
    # an old handshake: idle unless traffic is being sent
    (181, 1000, None, None, IDLE),
    (181, 1000, None, sent(0), IDLE),
    (181, 1000, None, sent(KEEPALIVE), IDLE),  # one keepalive is not traffic
    (181, 1000, None, sent(KEEPALIVE + 1), STALE),
    (181, 1000, None, sent(148), STALE),  # a handshake initiation
    (181, 1000, 25, None, STALE),  # a persistent keepalive sends all the time
    (181, 1000, 25, sent(0), STALE),
    # ... unless the peer answers: it was found at a new address, its session works
    (181, 1000, None, sent(148, 92), UP),
    (181, 1000, 25, sent(0, 32), UP),
    (None, 148, 25, sent(148, 92), UP),
    # no handshake at all
    (None, 0, None, None, NEW),
    (None, 148, None, None, NEVER),  # without a sample, the counter since the start
    (None, 0, 25, None, NEW),  # just added: its first handshake may be on the way
    (None, 0, 25, sent(0), NEVER),  # ... but over a sample a keepalive is sending
    (None, 0, None, sent(148), NEVER),
    (None, 0, None, sent(KEEPALIVE), NEW),
    (None, 148, None, sent(0), NEW),  # sent once, long ago: nothing sent now
]


@pytest.mark.parametrize(("age", "tx_bytes", "keepalive", "sample", "state"), RULE)
def test_the_staleness_rule(age, tx_bytes, keepalive, sample, state):
    peer = {
        "latest_handshake_age": age,
        "tx_bytes": tx_bytes,
        "rx_bytes": 0,
        "persistent_keepalive": keepalive,
    }
    assert wgf_staleness.link_state(peer, 180, sample) == state


def test_the_threshold_is_a_parameter_with_one_default():
    peer = {"latest_handshake_age": 400, "tx_bytes": 1000, "persistent_keepalive": 25}
    assert wgf_staleness.link_state(peer) == STALE
    assert wgf_staleness.link_state(peer, stale_after=400) == UP
    assert wgf_staleness.STALE_AFTER == 180


def test_a_sample_is_how_much_the_counters_grew():
    before = {"tx_bytes": 1000, "rx_bytes": 500}
    assert wgf_staleness.sample(before, {"tx_bytes": 1148, "rx_bytes": 500}) == sent(148)
    assert wgf_staleness.sample({}, {"tx_bytes": 1148, "rx_bytes": 9}) == sent(0)


def test_only_peers_without_a_recent_handshake_are_worth_sampling():
    def live(*ages):
        return {"peers": {str(i): {"latest_handshake_age": a} for i, a in enumerate(ages)}}

    assert not wgf_staleness.worth_sampling(None)
    assert not wgf_staleness.worth_sampling(live(5, 180))
    assert wgf_staleness.worth_sampling(live(5, 181))
    assert wgf_staleness.worth_sampling(live(5, None))
    assert not wgf_staleness.worth_sampling(live(300), stale_after=300)
