"""The host adapter: every command the formula runs on a minion runs here, and nowhere
else. The loader files hand ``__salt__`` to ``Host`` and call its methods; the unit tests
hand the states a fake one.

``wg`` runs with ``WG_HIDE_KEYS=always`` (its output never holds a private or preshared
key), in the C locale, its output never logged, its errors masked (``wg`` quotes a key it
cannot read). Keys reach it only as files (``wgf_files.key_files``), never on its command
line."""

import ipaddress
import logging
import os
import shutil
import subprocess

import salt.utils.json
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


class Host:
    """The minion, as the formula's loader code sees it: built from ``__salt__``."""

    def __init__(self, salt):
        self._salt = salt

    def wg(self, args):
        return wg(args)

    def run_all(self, argv, stdin=None):
        """``cmd.run_all`` of ``argv``: no shell, output never logged, a failure returned
        (``retcode``, ``stdout``, ``stderr``), not raised."""
        return self._salt["cmd.run_all"](
            argv, python_shell=False, ignore_retcode=True, stdin=stdin, output_loglevel="quiet"
        )

    def run(self, argv, stdin=None):
        """The stdout of ``argv``, or ``CommandExecutionError`` naming it (masked)."""
        out = self.run_all(argv, stdin)
        if out["retcode"] != 0:
            error = wgf_conf.mask(out.get("stderr") or out.get("stdout") or "").strip()
            raise CommandExecutionError(f"{' '.join(argv)}: {error}")
        return out["stdout"]

    def ip_json(self, args):
        """``ip -j ARGS``, parsed."""
        text = self.run(["ip", "-j", *args])
        try:
            return salt.utils.json.loads(text or "[]")
        except ValueError:
            raise CommandExecutionError(f"ip -j {' '.join(args)} printed no JSON") from None

    def has_exec(self, name):
        return bool(self._salt["cmd.has_exec"](name))

    def endpoint_routes(self, addresses, fwmark=None):
        """``{address: route}`` of ``ip route get`` for each address that has a route.
        With a fwmark the lookup carries it, as WireGuard's own packets do: a full tunnel
        (wg-quick's fwmark rule) would otherwise send the lookup into the tunnel itself."""
        mark = f" mark {fwmark}" if fwmark else ""
        wanted = {str(ipaddress.ip_address(a)) for a in addresses}
        if not wanted:
            return {}
        out = self.run_all(
            ["ip", "-j", "-force", "-batch", "-"],
            stdin="".join(f"route get {a}{mark}\n" for a in sorted(wanted)),
        )
        found = {}
        for line in (out["stdout"] or "").splitlines():
            for route in salt.utils.json.loads(line) if line.strip() else []:
                dst = str(ipaddress.ip_address(route.get("dst", "").split("/")[0] or "::"))
                if dst in wanted:
                    found[dst] = route
        return found

    def link_mtus(self):
        """``{link name: mtu}`` of every link."""
        return {link.get("ifname"): link.get("mtu") for link in self.ip_json(["link", "show"])}


def render_svg(dot_text, path):
    """Render DOT to an SVG file with Graphviz ``dot`` (on the master, for the runner);
    ``(the path written, None)``, or ``(None, why not)``."""
    dot = shutil.which("dot")
    if not dot:
        return None, "Graphviz is not installed on the master (no 'dot'): no SVG written"
    path = os.path.abspath(os.path.expanduser(str(path)))
    proc = subprocess.run(
        [dot, "-Tsvg", "-o", path],
        input=dot_text,
        text=True,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        return None, f"dot failed: {proc.stderr.strip()[:500]}"
    return path, None
