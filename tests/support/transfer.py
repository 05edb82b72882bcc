"""Small programs that move bytes over TCP (client rates and quotas, issue 23): run with
``python3 -c`` in a namespace or container.

Timing (rates): RECEIVER ADDRESS PORT prints ``ready``, counts what one connection
sends and answers the count; SENDER ADDRESS PORT SIZE sends SIZE bytes and prints the
count and the seconds until the receiver answered.

Counting through a path that may stop passing (quotas): COUNTER ADDRESS PORT IDLE
prints ``ready``, then the bytes one connection sent until it closed or sent nothing for
IDLE seconds; PUSHER ADDRESS PORT SIZE STALL sends up to SIZE bytes and gives up
quietly once sending stalls for STALL seconds."""

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

COUNTER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
conn.settimeout(float(sys.argv[3]))
got = 0
try:
    while True:
        data = conn.recv(65536)
        if not data:
            break
        got += len(data)
except OSError:
    pass
print(got, flush=True)
"""

PUSHER = """
import socket, sys
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
conn.settimeout(float(sys.argv[4]))
try:
    conn.sendall(b"x" * int(sys.argv[3]))
except OSError:
    pass
"""
