"""Commands the formula runs on the minion. ``wg`` runs here and nowhere else: with
``WG_HIDE_KEYS=always`` (its output never holds a private or preshared key), in the C
locale, its output never logged, its errors masked (``wg`` quotes a key it cannot
read). Keys reach it only as files (``wgf_files.key_files``), never on its command
line."""

import logging
import os
import subprocess

import salt.utils.path
from salt.exceptions import CommandExecutionError

import wgf_conf

log = logging.getLogger(__name__)


def wg(args):
    """Run ``wg ARGS``; its stdout, or raise ``CommandExecutionError`` naming the
    subcommand. ``subprocess`` directly, not ``cmd.run_all``: on a 10,000-peer
    interface that alone costs as much again as parsing ``wg show dump``."""
    binary = salt.utils.path.which("wg")
    if not binary:
        raise CommandExecutionError(
            "The 'wg' command is missing: install wireguard-tools on this minion"
        )
    log.debug("wireguard: running wg %s", " ".join(args[:2]))
    proc = subprocess.run(
        [binary, *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            "LC_ALL": "C",
            "WG_HIDE_KEYS": "always",
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin"),
        },
    )
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()
        raise CommandExecutionError(wgf_conf.mask(f"wg {' '.join(args[:2])} failed: {said}"))
    return proc.stdout
