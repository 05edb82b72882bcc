"""A WireGuard interface's clients record, ``<config_dir>/<if>.clients.json``: the
addresses and public keys the minion gave its clients, and the addresses of revoked
clients (``retired``), kept so that a client keeps its address from run to run. No
secret is in it. Read, written, compared and stamped here; what a client is, and how
addresses are given, is ``wgf_clients``.
"""

import json
import marshal
import os

from salt.exceptions import SaltInvocationError

import wgf_keys
from wgf_addr import ip_text

RECORD_VERSION = 1


def empty_record():
    return {"version": RECORD_VERSION, "clients": {}, "retired": []}


#: The last record text parsed and what it gave: the pipeline and the clients state
#: read the same record in a run (10,000 clients: 40 ms a parse, 5 ms a copy).
_LAST_PARSED = {}


def parse_record(text, where="the clients record"):
    """The record from its JSON text (None: no record yet); raise when it is damaged."""
    if text is None:
        return empty_record()
    if _LAST_PARSED.get("text") == text:
        return marshal.loads(_LAST_PARSED["record"])
    record = _parse_record(text, where)
    _LAST_PARSED.update(text=text, record=marshal.dumps(record))
    return record


def _parse_record(text, where):
    try:
        data = json.loads(text)
        clients = data["clients"]
        retired = [ip_text(a) for a in data["retired"]]
        for entry in clients.values():
            entry["address"] = [ip_text(a) for a in entry["address"]]
            if entry.get("public_key") is not None:
                wgf_keys.decode(entry["public_key"], "public_key")
    except (ValueError, KeyError, TypeError, AttributeError, SaltInvocationError):
        raise SaltInvocationError(
            f"{where} cannot be read: it is not the JSON the formula writes; move it away "
            "and apply again (clients then get new addresses)"
        ) from None
    return {"version": RECORD_VERSION, "clients": clients, "retired": retired}


#: ``json.dumps(value, sort_keys=True)`` with one encoder (``dumps`` makes one a call).
_ENCODE_SORTED = json.JSONEncoder(sort_keys=True).encode


def dump_record(record):
    """The record's JSON text, a client per line: json's C encoder writes each line
    (its pure-Python indenting encoder took 0.1 s for 10,000 clients; issue 24)."""
    lines = ",\n".join(
        f"{json.dumps(name)}: {_ENCODE_SORTED(entry)}"
        for name, entry in sorted(record["clients"].items())
    )
    head = json.dumps({k: v for k, v in record.items() if k != "clients"}, sort_keys=True)
    return f'{head[:-1]}, "clients": {{\n{lines}\n}}}}\n'


def record_of(iface, public_keys):
    """The record to keep for ``iface`` once ``public_keys`` {client: key} are made."""
    record = empty_record()
    record["retired"] = list(iface["client_retired"])
    for name, client in sorted(iface["clients"].items()):
        if client["absent"]:
            continue
        record["clients"][name] = {
            "address": client["address"],
            "byo": client["byo"],
            "public_key": public_keys.get(name) or client["public_key"],
        }
    return record


def stamp(config_dir):
    """What of ``config_dir`` validation reads (key files, records), as file identities:
    a change to any of them changes the stamp."""
    try:
        entries = sorted(os.scandir(config_dir), key=lambda e: e.name)
    except OSError:
        return ()
    return tuple(
        (e.name, e.inode(), e.stat().st_mtime_ns, e.stat().st_size)
        for e in entries
        if e.name.endswith((".key", ".clients.json"))
    )


def changes(old, new, rekeyed, made, test):
    """``{client: {"old", "new"}}`` with addresses and public keys, for each client
    added, revoked, moved, or given a key (``made``: its public key) or a key file
    (``rekeyed``: the names of those whose key or preshared key file is written); never a
    secret."""
    result = {}
    for name in sorted(set(old["clients"]) | set(new["clients"])):
        before, after = old["clients"].get(name), new["clients"].get(name)
        if before == after and before and name not in made and name not in rekeyed:
            continue  # the common case: 10,000 clients as they were
        now = {k: (after or {}).get(k) for k in ("address", "public_key")}
        if name in made:
            now["public_key"] = made[name] if not test else "(new key)"
        if before and after and {k: before.get(k) for k in now} == now and name not in rekeyed:
            continue
        result[name] = {
            "old": {k: before.get(k) for k in ("address", "public_key")} if before else None,
            "new": now if after else None,
        }
    return result
