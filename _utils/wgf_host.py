"""The host adapter: every command the formula runs, and every file the states and the
rotation write, go through here and nowhere else (on a minion ``Host``; on the master
``render_svg`` for the runner's graph). The loader files hand ``__salt__`` to ``Host``
and call its methods; the unit tests hand the states a fake one.

``wg`` runs with ``WG_HIDE_KEYS=always`` (its output never holds a private or preshared
key), in the C locale, its output never logged, its errors masked (``wg`` quotes a key it
cannot read). Keys reach it only as files (``wgf_files.key_files``), never on its command
line."""

import concurrent.futures
import contextlib
import fcntl
import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time

import salt.utils.json
import salt.utils.path
import salt.utils.systemd
from salt.exceptions import CommandExecutionError

import wgf_conf
import wgf_confirm
import wgf_files
import wgf_host_files
import wgf_host_timers
import wgf_live

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


def in_this_namespace(names):
    """Those of ``names`` that are network devices of this network namespace. ``wg show``
    also lists wireguard-go's control sockets, which /var/run/wireguard shares between
    namespaces (another namespace's interface, or one going away as it is listed)."""
    try:  # the calling thread's namespace (a test may have entered one: setns)
        with open("/proc/thread-self/net/dev", encoding="utf-8") as handle:
            present = {line.split(":")[0].strip() for line in handle.readlines()[2:]}
    except OSError:
        return list(names)
    return [name for name in names if name in present]


class Host(wgf_host_timers.Timers, wgf_host_files.Files):
    """The minion, as the formula's loader code sees it: built from ``__salt__``."""

    def __init__(self, salt):
        self._salt = salt

    def _spawn_waiter(self, argv, record, what):
        """Start ``argv`` detached (a session of its own, no tie to salt-minion's files or
        terminal) and write its process id into ``record`` (0600)."""
        try:
            waiter = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
                cwd="/",
            )
        except OSError as error:
            raise CommandExecutionError(f"{what} could not be armed: {error}") from error
        wgf_files.write_many({record: f"{waiter.pid}\n"})

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

    # -------------------------------------------------- the states' commands and writes

    def wg_set(self, interface, private_key=None, listen_port=None, fwmark=None):
        """``wg set`` of the private key (only through a 0600 file), the listen port and
        the fwmark (0 or "off": none); None leaves one alone."""
        args = ["set", interface]
        with wgf_files.key_files() as put_key:
            if private_key is not None:
                args += ["private-key", put_key(private_key)]
            if listen_port is not None:
                args += ["listen-port", str(listen_port)]
            if fwmark is not None:
                args += ["fwmark", str(fwmark or "off")]
            self.wg(args)

    def resolvconf_records(self):
        """Where this minion's resolvconf keeps each interface's DNS record (which may not
        exist yet), or None when its records cannot be read (systemd-resolved's)."""
        binary = salt.utils.path.which("resolvconf")
        if not binary or os.path.basename(os.path.realpath(binary)) == "resolvectl":
            return None
        if os.path.exists(INTERFACE_ORDER):  # Debian's resolvconf
            return RESOLVCONF_RECORDS["resolvconf"]
        return RESOLVCONF_RECORDS["openresolv"]

    def resolvconf_name(self, interface):
        """The name resolvconf keeps ``interface``'s record under, as wg-quick names it."""
        return wgf_live.resolvconf_name(interface, wgf_files.read(INTERFACE_ORDER))

    def set_dns(self, name, text):
        """Register the resolv.conf lines ``text`` as record ``name``, as wg-quick does."""
        self.run(["resolvconf", "-a", name, "-m", "0", "-x"], stdin=text)

    def remove_dns(self, name):
        self.run(["resolvconf", "-d", name, "-f"])

    def service_active(self, service):
        return bool(self._salt["service.status"](service))

    def restart(self, service):
        """``service.restart``: what Salt's service module returns (False or an error when
        the service did not start)."""
        return self._salt["service.restart"](service)

    def has_systemd(self):
        return bool(salt.utils.systemd.booted())

    def networkctl(self, *args):
        """``networkctl ARGS`` (``reload``, ``reconfigure <if>``, ``delete <if>``)."""
        self.run(["networkctl", *args])

    def stop_service(self, service):
        """Stop ``service`` and disable it (a backend switch: the other one runs it)."""
        self._salt["service.stop"](service)
        self._salt["service.disable"](service)

    def restart_service(self, service):
        """Restart ``service`` (systemd-networkd: it builds the netdevs it lacks)."""
        if not self._salt["service.restart"](service):
            raise CommandExecutionError(f"{service} did not restart")

    def delete_link(self, interface):
        """Remove the interface (networkd keeps a netdev whose file is gone)."""
        self.run(["ip", "link", "delete", "dev", interface])

    def unit_result(self, service):
        """The ``Result`` property of ``service``'s systemd unit (``start-limit-hit``...).
        No ``--value``: systemd before 230 lacks it."""
        return self.run(["systemctl", "show", "-p", "Result", service]).strip().partition("=")[2]

    def reset_failed(self, service):
        """``systemctl reset-failed``: clears the unit's failed state and start counter."""
        self.run(["systemctl", "reset-failed", service])

    def journal(self, unit):
        """The unit's last log lines (masked), where systemd keeps them."""
        if not self.has_exec("journalctl"):
            return "(see the service's log)"
        out = self.run_all(["journalctl", "-u", unit, "-n", "8", "--no-pager", "-o", "cat"])
        return wgf_conf.mask(out["stdout"] or "").strip() or "(no log)"

    def nft_table(self, table):
        """``nft list table inet TABLE``, or None when there is no such table."""
        out = self.run_all(["nft", "list", "table", "inet", table])
        if out["retcode"] != 0:
            if "No such file or directory" in out["stderr"]:
                return None
            raise CommandExecutionError(f"nft list table: {out['stderr'].strip()}")
        return out["stdout"].strip() + "\n"

    def nft_quotas(self, table):
        """``nft -j list quotas table inet TABLE`` (the clients' quota counts), or None."""
        out = self.run_all(["nft", "-j", "list", "quotas", "table", "inet", table])
        return out["stdout"] if out["retcode"] == 0 else None

    def nft_apply(self, script):
        """``nft -f -``: one transaction."""
        self.run(["nft", "-f", "-"], stdin=script)

    def tc_live(self, interface, ifb):
        """What tc shows of ``interface`` and of its IFB device (``ifb_*`` only when
        that exists), for ``wgf_tc.parse_live``."""
        shown = {k: self.run(["tc", k, "show", "dev", interface]) for k in ("qdisc", "class")}
        if self.run_all(["ip", "link", "show", "dev", ifb])["retcode"] == 0:
            for kind in ("qdisc", "class"):
                shown[f"ifb_{kind}"] = self.run(["tc", kind, "show", "dev", ifb])
        return shown

    def tc_apply(self, before, lines, after):
        """The ``ip`` commands ``before``, one ``tc -batch`` of ``lines``, then ``after``
        (``wgf_tc.batch``)."""
        for argv in before:
            self.run(argv)
        if lines:
            self.run(["tc", "-batch", "-"], stdin="\n".join(lines) + "\n")
        for argv in after:
            self.run(argv)

    def _in_scratch_namespace(self, script, text, suffix, *args):
        """Run the shell ``script`` (``$1``: a file holding ``text``, then ``args``) in a
        new, empty network namespace that ends with it: what the kernel makes of a rule
        set, without touching the minion's firewall."""
        with tempfile.NamedTemporaryFile("w", suffix=suffix) as handle:
            handle.write(text)
            handle.flush()
            return self.run(
                ["unshare", "--net", "--", "sh", "-c", script, "sh", handle.name, *args]
            )

    def nft_canonical(self, table, text):
        """``text`` (a ``table inet TABLE``) as ``nft list table`` prints it back."""
        # a `list` in the same nft -f batch would show the table before its rules
        shown = self._in_scratch_namespace(
            'nft -f "$1" && nft list table inet "$2"', text, ".nft", table
        )
        return shown.strip() + "\n"

    def iptables_save(self, version):
        """``ip(6)tables-save``, or None where the tool is missing."""
        save, _ = _iptables_tools(version)
        return self.run([save]) if self.has_exec(save) else None

    def iptables_counts(self, version):
        """``ip(6)tables-save -c -t filter`` (rules with their counters: the clients'
        quota counts), or None where the tool is missing."""
        save, _ = _iptables_tools(version)
        return self.run_all([save, "-c", "-t", "filter"])["stdout"] if self.has_exec(save) else None

    def iptables_restore(self, version, text, counters=False):
        """Feed ``text`` to ``ip(6)tables-restore --noflush`` (``--counters``: with the
        ``[packets:bytes]`` it sets)."""
        _, restore = _iptables_tools(version)
        with tempfile.NamedTemporaryFile("w", suffix=".rules") as rules:
            rules.write(text)
            rules.flush()
            self.run([restore, "--noflush", *(["--counters"] if counters else []), rules.name])

    def iptables_canonical(self, version, text):
        """What ``ip(6)tables-save`` shows after ``text`` is restored into an empty
        namespace."""
        save, restore = _iptables_tools(version)
        return self._in_scratch_namespace(
            '"$2" --noflush "$1" && "$3"', text, ".rules", restore, save
        )

    # ------------------------------------------ confirmed changes (issue 21, wgf_confirm)

    def tcp_answers(self, host, port, timeout=2.0):
        """Whether a TCP connect to ``host:port`` succeeds within ``timeout`` seconds."""
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            return False

    def icmp_answers(self, address, interface=None):
        """Whether one ICMP echo to ``address`` is answered within a second (``ping
        -c1 -W1``, through ``interface`` when given)."""
        version = ipaddress.ip_address(address).version
        argv = ["ping", f"-{version}", "-c1", "-W1"]
        if interface:
            argv += ["-I", interface]
        return self.run_all([*argv, address])["retcode"] == 0

    # ------------------------------------- reachability probes (issue 22, wgf_verify)

    def forwarding(self):
        """``{"ipv4": bool, "ipv6": bool}`` from /proc/sys (None where unreadable)."""
        values = {}
        for family, path in FORWARDING.items():
            text = wgf_files.read(path)
            values[family] = None if text is None else text.strip() == "1"
        return values

    def probe(self, proto, source, target, port=None, timeout=2.0):
        """Whether ``target`` answers from ``source`` (the minion's tunnel address):
        one ICMP echo (``ping -I source``), a TCP connect bound to ``source``, or a UDP
        datagram that a listener answers; ``timeout`` seconds at most."""
        if proto == "icmp":
            # subprocess, not cmd.run_all: probe_many runs this in threads, where Salt's
            # loader context (its dunders) is not set
            ping = shutil.which("ping")
            version = ipaddress.ip_address(target).version
            argv = [ping, f"-{version}", "-c1", f"-W{max(1, round(timeout))}", "-I", source]
            try:
                proc = subprocess.run(
                    [*argv, target], capture_output=True, timeout=timeout + 2, check=False
                )
            except (OSError, TypeError, subprocess.TimeoutExpired):
                return False
            return proc.returncode == 0
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        try:
            with socket.socket(family, kind) as sock:
                sock.settimeout(timeout)
                sock.bind((source, 0))
                sock.connect((target, int(port)))
                if proto == "udp":
                    sock.send(b"wireguard-formula verify\n")
                    return bool(sock.recv(512))
                return True
        except (OSError, ValueError):
            return False

    def probe_many(self, probes, timeout=2.0):
        """``probe`` of each ``(proto, source, target, port)``, all at once (threads):
        the list of answers, in order."""
        if not probes:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, len(probes))) as pool:
            return list(pool.map(lambda p: self.probe(*p, timeout=timeout), probes))

    def write_result(self, path, text):
        """Write ``text`` (no secret in it) to ``path`` atomically, its directory made."""
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=os.path.dirname(path), prefix=".wgf-", delete=False
        ) as handle:
            handle.write(text)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)

    def boot_id(self):
        """The kernel's id of the running boot."""
        return (wgf_files.read(wgf_confirm.BOOT_ID) or "").strip()

    def now(self):
        return time.time()

    def sleep(self, seconds):
        time.sleep(seconds)

    @contextlib.contextmanager
    def locked(self, directory):
        """Hold ``<directory>/lock`` (``flock``), the lock the undo script takes: a
        disarm and an undo never run at once."""
        with open(os.path.join(directory, wgf_confirm.LOCK), "a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def send_event(self, tag, data):
        """Send ``data`` as event ``tag`` to the master (``event.send``)."""
        return bool(self._salt["event.send"](tag, data))


#: Where openresolv and Debian's resolvconf keep each interface's DNS record.
RESOLVCONF_RECORDS = {
    "openresolv": "/run/resolvconf/interfaces",
    "resolvconf": "/run/resolvconf/interface",
}
INTERFACE_ORDER = "/etc/resolvconf/interface-order"
FORWARDING = {
    "ipv4": "/proc/sys/net/ipv4/ip_forward",
    "ipv6": "/proc/sys/net/ipv6/conf/all/forwarding",
}


def _iptables_tools(version):
    prefix = "iptables" if version == 4 else "ip6tables"
    return f"{prefix}-save", f"{prefix}-restore"


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
