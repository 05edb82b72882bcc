"""``wg show dump``: the live state of WireGuard interfaces as plain data.

Interface lines carry the private key and peer lines the preshared key: both are
dropped while parsing (a preshared key at most becomes its SHA-256 with
``psk_digests``), so nothing above this module ever sees them.
"""

import time

from salt.exceptions import CommandExecutionError

import wgf_keys

NONE = "(none)"


def _optional_int(value):
    """A dump number; ``off``, ``0`` and ``(none)`` are None; fwmark comes as hex."""
    return None if value in ("off", "0", NONE) else int(value, 0)


def parse(text, interface=None, psk_digests=False, now=None):
    """Parse ``wg show all dump`` (or ``wg show IF dump`` with ``interface``)."""
    now = int(time.time()) if now is None else now
    interfaces = {}
    prefix = 0 if interface is None else 1
    for line in text.split("\n"):
        if not line:
            continue
        fields = line.split("\t")
        name = interface if prefix else fields[0]
        count = len(fields) + prefix
        if count == 5:
            try:
                interfaces[name] = {
                    "public_key": None if fields[2 - prefix] == NONE else fields[2 - prefix],
                    "listen_port": _optional_int(fields[3 - prefix]),
                    "fwmark": _optional_int(fields[4 - prefix]),
                    "peers": {},
                }
            except ValueError:
                raise CommandExecutionError(
                    "Unexpected number in an interface line of 'wg show dump' output"
                ) from None
            continue
        if count != 9:
            raise CommandExecutionError(
                f"Unexpected line in 'wg show dump' output with {count} fields"
            )
        key, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields[1 - prefix :]
        try:
            handshake = int(handshake)
            peer = {
                "preshared_key": psk != NONE,
                "endpoint": None if endpoint == NONE else endpoint,
                "allowed_ips": [] if allowed == NONE else allowed.split(","),
                "latest_handshake": handshake or None,
                "latest_handshake_age": now - handshake if handshake else None,
                "rx_bytes": int(rx),
                "tx_bytes": int(tx),
                "persistent_keepalive": _optional_int(keepalive),
            }
        except ValueError:
            raise CommandExecutionError(
                "Unexpected number in a peer line of 'wg show dump' output"
            ) from None
        if psk_digests:
            peer["preshared_key_sha256"] = wgf_keys.digest(psk) if psk != NONE else None
        entry = interfaces.get(name)
        if entry is None:
            entry = interfaces[name] = {
                "public_key": None,
                "listen_port": None,
                "fwmark": None,
                "peers": {},
            }
        entry["peers"][key] = peer
    return interfaces
