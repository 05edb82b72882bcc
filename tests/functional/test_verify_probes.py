"""Reachability assertions' live probes (issue 22) against real network stacks, in
namespaces this file creates: ICMP, TCP and UDP from a bound source address, all at once,
each answering what the network answers."""

import time

import pytest

import wgf_host
from tests.support.netns import Netns

LISTENERS = """
import socket, threading
t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("198.18.23.2", 8080))
t.listen(8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("198.18.23.2", 5353))
def echo():
    while True:
        data, peer = u.recvfrom(512)
        u.sendto(data, peer)
threading.Thread(target=echo, daemon=True).start()
print("listening", flush=True)
while True:
    t.accept()[0].close()
"""


@pytest.fixture
def two(loaders):
    """``local`` (198.18.23.1) and ``remote`` (198.18.23.2, a TCP listener on 8080 and a
    UDP echo on 5353) joined by a veth; the test runs inside ``local``."""
    local, remote = Netns("vplocal"), Netns("vpremote")
    listener = None
    try:
        local.create()
        remote.create()
        local.veth(remote, "eth0", "eth0", "198.18.23.1/24", "198.18.23.2/24")
        listener = remote.popen(["python3", "-c", LISTENERS])
        assert listener.stdout.readline().strip() == "listening"
        with local.entered():
            yield wgf_host.Host(loaders.modules)
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        local.delete()
        remote.delete()


def test_each_protocol_answers_what_the_network_answers_from_its_source(two):
    host = two
    src = "198.18.23.1"
    assert host.probe("icmp", src, "198.18.23.2") is True
    assert host.probe("tcp", src, "198.18.23.2", 8080) is True
    assert host.probe("udp", src, "198.18.23.2", 5353) is True
    assert host.probe("tcp", src, "198.18.23.2", 8081, timeout=1) is False  # refused
    assert host.probe("udp", src, "198.18.23.2", 5354, timeout=1) is False  # no listener
    assert host.probe("icmp", src, "198.18.23.9", timeout=1) is False  # nobody there
    # a source that is not this host's cannot send at all
    assert host.probe("tcp", "198.18.99.1", "198.18.23.2", 8080, timeout=1) is False


def test_the_probes_run_at_once(two):
    host = two
    silent = [("tcp", "198.18.23.1", "198.18.23.9", 80)] * 6 + [
        ("udp", "198.18.23.1", "198.18.23.9", 53)
    ] * 6
    started = time.monotonic()
    answers = host.probe_many(
        [
            *silent,
            ("tcp", "198.18.23.1", "198.18.23.2", 8080),
            ("icmp", "198.18.23.1", "198.18.23.2", None),  # ping runs in a thread too
            ("icmp", "198.18.23.1", "198.18.23.9", None),
        ],
        timeout=2,
    )
    elapsed = time.monotonic() - started
    assert answers == [False] * 12 + [True, True, False]
    assert elapsed < 6, f"12 silent probes of 2 s took {elapsed:.1f} s: not in parallel"
