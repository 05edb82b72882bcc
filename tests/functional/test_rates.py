"""A client's ``rate`` (issue 23) with real traffic: through the real ``salt-call``, the
formula's firewall table is loaded in the server's network namespace and holds a
client, connected over real WireGuard (wireguard-go) from a second namespace, to 2
mbit/s in both directions; without the limit the same megabyte over the same tunnel
moves many times faster, measured in the same run; and the table goes with the limit."""

import json
import uuid

import pytest

import wgf_keys
import wgf_shaping
from tests.support.minion import SaltCall
from tests.support.netns import Netns

IF = f"wgrt{uuid.uuid4().hex[:6]}"  # wireguard-go's sockets are shared by all namespaces
PEER_IF = f"{IF}c"
SERVER, CLIENT = "10.71.0.1", "10.71.0.2"
SIZE = 1_000_000  # 1 MB
RATE = 2_000_000  # 2 mbit/s: 250,000 bytes/s

RECEIVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
got = 0
while True:
    data = conn.recv(65536)
    if not data:
        break
    got += len(data)
conn.sendall(str(got).encode())
conn.close()
"""

SENDER = """
import socket, sys, time
start = time.monotonic()
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
conn.sendall(b"x" * int(sys.argv[3]))
conn.shutdown(socket.SHUT_WR)
got = int(conn.recv(64).decode())
print(got, time.monotonic() - start)
"""


class Tunnel:
    """The server (a salt-call minion in its namespace) and a client device in another,
    joined by a veth underlay and real WireGuard."""

    def __init__(self, root):
        self.server_ns, self.client_ns = Netns("rate-srv"), Netns("rate-cli")
        self.server_key, self.client_key = wgf_keys.genkey(), wgf_keys.genkey()
        self.port = 5000
        try:
            self._build(root)
        except BaseException:
            self.close()
            raise

    def _build(self, root):
        self.server_ns.create()
        self.client_ns.create()
        self.minion = SaltCall(root, self.server_ns)
        self.server_ns.veth(self.client_ns, "eth0", "eth0", "198.18.71.1/24", "198.18.71.2/24")
        self.server_ns.wireguard(IF, self.server_key, f"{SERVER}/24", 51871)
        self.client_ns.wireguard(PEER_IF, self.client_key, f"{CLIENT}/32")
        self.client_ns.run(
            [
                "wg",
                "set",
                PEER_IF,
                "peer",
                wgf_keys.pubkey(self.server_key),
                "allowed-ips",
                f"{SERVER}/32",
                "endpoint",
                "198.18.71.1:51871",
            ]
        )
        self.client_ns.ip("route", "add", f"{SERVER}/32", "dev", PEER_IF)

    def close(self):
        self.client_ns.delete()
        self.server_ns.delete()

    def apply(self, limits):
        client = {"public_key": wgf_keys.pubkey(self.client_key)}
        if limits:
            client["limits"] = limits
        self.minion.pillar(
            {
                "wireguard": {
                    "lookup": {"config_dir": str(self.minion.config_dir), "firewall": "nftables"},
                    "interfaces": {
                        IF: {
                            "address": f"{SERVER}/24",
                            "listen_port": 51871,
                            "private_key": self.server_key,
                            "endpoint": "198.18.71.1",
                            "pool": "10.71.0.0/29",
                            "clients": {"phone": client},
                        }
                    },
                }
            }
        )
        for fun, name in (
            ("private_key", IF),
            ("clients", IF),
            ("config", IF),
            ("client_peers", IF),
            ("firewall", "firewall"),
        ):
            proc = self.minion.call(
                "state.single", f"wireguard.{fun}", name, f"config_dir={self.minion.config_dir}"
            )
            ret = json.loads(proc.stdout)["local"]
            assert all(r["result"] is not False for r in ret.values()), proc.stdout

    def table(self):
        return self.server_ns.run(["nft", "list", "ruleset"]).stdout

    def move(self, sender_ns, receiver_ns, address):
        """Seconds to move SIZE bytes over TCP from ``sender_ns`` to ``address`` in
        ``receiver_ns`` (until the receiver has counted them all)."""
        self.port += 1
        receiver = receiver_ns.popen(["python3", "-c", RECEIVER, address, str(self.port)])
        try:
            assert receiver.stdout.readline().strip() == "ready"
            out = sender_ns.run(
                ["python3", "-c", SENDER, address, str(self.port), str(SIZE)], timeout=90
            ).stdout.split()
            assert int(out[0]) == SIZE
            return float(out[1])
        finally:
            receiver.kill()
            receiver.wait()


@pytest.fixture
def tunnel(tmp_path):
    tunnel = Tunnel(tmp_path)
    try:
        yield tunnel
    finally:
        tunnel.close()


def test_a_client_limited_to_2mbit_moves_a_megabyte_at_that_rate_both_ways(tunnel):
    tunnel.apply(None)
    assert "table inet wireguard" not in tunnel.table()  # nothing needs it yet
    up_free = tunnel.move(tunnel.client_ns, tunnel.server_ns, SERVER)
    down_free = tunnel.move(tunnel.server_ns, tunnel.client_ns, CLIENT)

    tunnel.apply({"rate": "2mbit"})
    table = tunnel.table()
    assert "rate over 250000 bytes/second" in table and f"ip saddr {CLIENT} limit name" in table
    up = tunnel.move(tunnel.client_ns, tunnel.server_ns, SERVER)  # input path
    down = tunnel.move(tunnel.server_ns, tunnel.client_ns, CLIENT)  # output path

    # the bucket (one second of the rate) passes at once, the rest at the rate
    bytes_per_second = RATE / 8
    floor = (SIZE - max(bytes_per_second, wgf_shaping.MIN_BUCKET)) / bytes_per_second
    for limited, free in ((up, up_free), (down, down_free)):
        assert limited >= 0.95 * floor, (limited, floor)
        assert limited <= 3 * floor, (limited, floor)  # held to the rate, not cut off
        assert limited >= 5 * free, (limited, free)

    # the limit gone, the table goes and the same megabyte moves freely again
    tunnel.apply(None)
    assert "table inet wireguard" not in tunnel.table()
    again = tunnel.move(tunnel.client_ns, tunnel.server_ns, SERVER)
    assert again * 5 <= up, (again, up)
    print(f"free {up_free:.3f}/{down_free:.3f} s, 2 mbit/s {up:.3f}/{down:.3f} s")
