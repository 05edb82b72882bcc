"""wg-quick config files the functional tests write by hand, matching a test pair's
live interface (a hand-written config the formula adopts or checks)."""

import os


def conf_text(pair, peers, extra=""):
    """The config file that matches the local interface of ``pair`` and ``peers``
    (``{name: (public key, allowed ips, endpoint)}``)."""
    lines = [
        "[Interface]",
        f"PrivateKey = {pair.local_key}",
        "Address = 10.77.0.1/24",
        "ListenPort = 51820",
        extra,
    ]
    for name, (key, allowed, endpoint) in peers.items():
        lines += [
            "",
            "[Peer]",
            f"# {name}",
            f"PublicKey = {key}",
            f"AllowedIPs = {', '.join(allowed)}",
        ]
        if endpoint:
            lines.append(f"Endpoint = {endpoint}")
    return "\n".join(lines) + "\n"


def write_conf(config_dir, pair, peers, extra="", mode=0o600):
    path = config_dir / f"{pair.ifname}.conf"
    path.write_text(conf_text(pair, peers, extra))
    os.chmod(path, mode)
    return path


def silent_peer(allowed_ips):
    """A peer as ``wireguard.show`` (``wgf_dump.parse``) reads one that was added and
    never heard from: no endpoint, no handshake, no traffic, no keepalive, no PSK."""
    return {
        "endpoint": None,
        "allowed_ips": allowed_ips,
        "latest_handshake": None,
        "latest_handshake_age": None,
        "rx_bytes": 0,
        "tx_bytes": 0,
        "persistent_keepalive": None,
        "preshared_key": False,
    }
