"""WireGuard key pairs for the tests, made by wireguard-tools' own `wg genkey` and
`wg pubkey` (not by the formula's code under test)."""

from __future__ import annotations

import subprocess
from typing import NamedTuple


class Keypair(NamedTuple):
    private: str
    public: str


def keypair() -> Keypair:
    """A new key pair (no network involved)."""
    private = subprocess.run(
        ["wg", "genkey"], capture_output=True, text=True, check=True
    ).stdout.strip()
    public = subprocess.run(
        ["wg", "pubkey"], input=private, capture_output=True, text=True, check=True
    ).stdout.strip()
    return Keypair(private, public)
