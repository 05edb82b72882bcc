"""A tiny authoritative DNS responder for the lab (copied into a container and run
there with python3): answers A queries for the names given, REFUSED otherwise.

usage: python3 dnsresponder.py LISTEN_ADDR NAME=IPV4 [NAME=IPV4 ...]
"""

import socket
import struct
import sys


def answer(query: bytes, table: dict) -> bytes:
    ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
    pos, labels = 12, []
    while query[pos]:
        n = query[pos]
        labels.append(query[pos + 1 : pos + 1 + n].decode().lower())
        pos += n + 1
    qtype, _qclass = struct.unpack("!HH", query[pos + 1 : pos + 5])
    question = query[12 : pos + 5]
    name = ".".join(labels)
    addr = table.get(name)
    if qdcount != 1 or addr is None:
        return (
            struct.pack("!HHHHHH", ident, 0x8185 if addr is None else 0x8180, 1, 0, 0, 0) + question
        )
    if qtype != 1:  # a name we know, no record of that type
        return struct.pack("!HHHHHH", ident, 0x8580, 1, 0, 0, 0) + question
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(addr)
    return struct.pack("!HHHHHH", ident, 0x8580, 1, 1, 0, 0) + question + rr


def main() -> None:
    listen = sys.argv[1]
    table = dict(arg.lower().split("=", 1) for arg in sys.argv[2:])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen, 53))
    while True:
        data, peer = sock.recvfrom(512)
        try:
            sock.sendto(answer(data, table), peer)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue


if __name__ == "__main__":
    main()
