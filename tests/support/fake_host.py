"""A fake host adapter (``wgf_host.Host``) for the state modules' unit tier.

It answers from canned live state, records every call that would change the minion in
``done`` (commands, restarts, file writes and removals, in order) and every question in
``asked``, and fails the calls it is told to fail (``fail``). Files are really written
and removed: the tests keep them under ``tmp_path``, and the states read them back."""

import contextlib
import os
import shutil

from salt.exceptions import CommandExecutionError

import wgf_confirm
import wgf_confirm_undo
import wgf_expiry
import wgf_files
import wgf_openrc


class FakeHost:
    def __init__(self):
        self.done = []  # (method, *arguments) of each change, in order
        self.asked = []  # (method, *arguments) of each question
        self.failing = []  # (method, prefix of its arguments): those calls fail
        self.executables = {"journalctl"}
        self.systemd = True
        self.active = True  # service.status of every service
        self.units = {}  # {service: service.status}, over `active` for those named
        self.restart_ok = True  # whether a restart starts the service
        self.refuse_starts = 0  # how many restarts systemd refuses (start-limit-hit)
        self.results = {}  # {unit: its systemd Result}
        self.ip = {}  # {tuple(args of ip -j): answer}
        self.routes = {}  # {address: its route} for endpoint_routes
        self.links = {}  # {link: mtu}
        self.dns_dir = None  # resolvconf's records directory, None: systemd-resolved
        self.nft = None  # the live `table inet wireguard`, None: there is none
        self.iptables = {4: None, 6: None}  # ip(6)tables-save text, None: no such tool
        self.iptables_counted = {}  # {4|6: ip(6)tables-save -c text} (clients' quotas)
        self.log = "wg-quick: Line unrecognized: `PostUp'"
        # confirm (issue 21)
        self.answers = {}  # {("tcp", host, port) | ("icmp", address): bool or [bool, ...]}
        self.dumps = {}  # {interface: `wg show <if> dump` text}
        self.clock = 1_000_000.0  # now(); sleep() moves it
        self.events = []  # (tag, data) sent
        self.undo_works = True  # what the undo script's run says
        # client expiry (issue 23)
        self.expiry_timers = {}  # {interface: the epochs its timer or waiter is armed for}
        self.salt_call_path = "/opt/salt/bin/salt-call"
        # client rates (issue 23): {device: {"root": bool, "classes": {minor: line}}},
        # the interface's ingress qdisc, as tc_apply left them
        self.tc = {}
        self.tc_ingress = set()
        # client quotas (issue 23)
        self.quotas_json = None  # `nft -j list quotas table inet wireguard`
        self.quota_armed = False  # the quota saver's timer or loop runs

    def fail(self, method, *prefix):
        """Make each later call of ``method`` whose arguments start with ``prefix`` fail."""
        self.failing.append((method, prefix))

    def _do(self, method, *args):
        self.done.append((method, *args))
        self._maybe_fail(method, args)

    def _ask(self, method, *args):
        self.asked.append((method, *args))
        self._maybe_fail(method, args)

    def _maybe_fail(self, method, args):
        flat = tuple(a for arg in args for a in (arg if isinstance(arg, list) else [arg]))
        for name, prefix in self.failing:
            if name == method and flat[: len(prefix)] == prefix:
                raise CommandExecutionError(f"{method} {' '.join(map(str, flat))}: it failed")

    # ------------------------------------------------------------- questions

    def has_exec(self, name):
        self._ask("has_exec", name)
        return name in self.executables

    def ip_json(self, args):
        self._ask("ip_json", list(args))
        return self.ip.get(tuple(args), [])

    def endpoint_routes(self, addresses, fwmark=None):
        self._ask("endpoint_routes", sorted(addresses), fwmark)
        return {a: self.routes[a] for a in sorted(addresses) if a in self.routes}

    def link_mtus(self):
        self._ask("link_mtus")
        return dict(self.links)

    def resolvconf_records(self):
        self._ask("resolvconf_records")
        return self.dns_dir

    def resolvconf_name(self, interface):
        return interface

    def service_active(self, service):
        self._ask("service_active", service)
        return self.units.get(service, self.active)

    def has_systemd(self):
        return self.systemd

    def unit_result(self, service):
        self._ask("unit_result", service)
        return self.results.get(service, "success")

    def journal(self, unit):
        self._ask("journal", unit)
        return self.log

    def nft_table(self, table):
        self._ask("nft_table", table)
        return self.nft

    def nft_canonical(self, table, text):
        self._ask("nft_canonical", table)
        return text.strip() + "\n"  # the kernel prints it back as it was given

    def iptables_save(self, version):
        self._ask("iptables_save", version)
        return self.iptables[version]

    def iptables_canonical(self, version, text):
        self._ask("iptables_canonical", version)
        return text

    def wg(self, args):
        self._ask("wg", list(args))
        return self.dumps.get(args[1], "")

    def _answer(self, key):
        """A list of answers is taken one per probe (its last one repeats); a callable
        answer is called (what else happens while the probe runs)."""
        answer = self.answers.get(key, True)
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        return answer() if callable(answer) else answer

    def tcp_answers(self, host, port, timeout=2.0):
        self._ask("tcp_answers", host, int(port))
        return self._answer(("tcp", host, int(port)))

    def icmp_answers(self, address, interface=None):
        self._ask("icmp_answers", address, interface)
        return self._answer(("icmp", address))

    def boot_id(self):
        return "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    def now(self):
        return self.clock

    def sleep(self, seconds):
        self.asked.append(("sleep", seconds))
        self.clock += seconds

    @contextlib.contextmanager
    def locked(self, directory):
        yield

    # --------------------------------------------------------------- changes

    def run(self, argv, stdin=None):
        self._do("run", list(argv))
        return ""

    def wg_set(self, interface, private_key=None, listen_port=None, fwmark=None):
        key = None if private_key is None else "(a private key)"
        self._do("wg_set", interface, key, listen_port, fwmark)

    def set_dns(self, name, text):
        self._do("set_dns", name, text)

    def remove_dns(self, name):
        self._do("remove_dns", name)

    def restart(self, service):
        self._do("restart", service)
        if self.refuse_starts:
            self.refuse_starts -= 1
            self.results[service] = "start-limit-hit"
            raise CommandExecutionError(
                f"Job for {service} failed: start of the service was attempted too often"
            )
        return self.restart_ok

    def reset_failed(self, service):
        self._do("reset_failed", service)
        self.results[service] = "success"

    def nft_apply(self, script):
        self._do("nft_apply", script)
        table = script.split("\n", 2)[-1]
        self.nft = table.strip() + "\n" if "table inet" in table else None

    def iptables_counts(self, version):
        self._ask("iptables_counts", version)
        return self.iptables_counted.get(version)

    def iptables_restore(self, version, text, counters=False):
        self._do("iptables_restore", version, text, *(["counters"] if counters else []))
        self.iptables[version] = text if ":WIREGUARD-" in text else ""

    def write_secret(self, path, text):
        self._do("write_secret", path)
        wgf_files.write_private(path, text)

    def write_secrets(self, files):
        self._do("write_secrets", sorted(files))
        wgf_files.write_many(files)

    def read_text(self, path):
        self._ask("read_text", path)
        try:
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return None

    def write_text(self, path, text):
        self._do("write_text", path)
        with open(path, "wb") as handle:
            handle.write(text.encode("utf-8", "surrogateescape"))

    def remove(self, path):
        self._do("remove", path)
        wgf_files.remove(path)

    def remove_stale_temps(self, path, prefix=None):
        self._do("remove_stale_temps", path)

    def make_private_dir(self, path):
        self._do("make_private_dir", path)
        os.makedirs(path, mode=0o700, exist_ok=True)

    def make_private(self, path):
        self._do("make_private", path)

    def arm_undo(self, interface, timeout):
        # the command line the real adapter runs (systemd) or starts detached (OpenRC)
        if self.systemd:
            self._do("arm_undo", wgf_confirm_undo.arm_argv(interface, timeout))
        else:
            self._do("arm_undo", wgf_confirm_undo.waiter_argv(interface, timeout))

    def disarm_undo(self, interface):
        if self.systemd:
            self._do("disarm_undo", wgf_confirm_undo.disarm_argv(interface))
        else:
            self._do("disarm_undo", "kill the waiter", interface)

    def run_undo(self, interface, mode="now"):
        """What the script does, told in short: ``undone`` replaces ``armed``."""
        self._do("run_undo", interface, mode)
        directory = wgf_confirm.state_dir(interface, wgf_confirm.STATE_ROOT)
        failed = 0 if self.undo_works else 1
        wgf_files.write_private(
            os.path.join(directory, wgf_confirm.UNDONE),
            f"mode={mode}\ntime={int(self.clock)}\nfailed={failed}\n",
        )
        wgf_files.remove(os.path.join(directory, wgf_confirm.ARMED))
        return self.undo_works

    def arm_expiry(self, interface, epochs, service=None):
        # systemd: the unit files the real adapter writes (then enables and starts the
        # timer); OpenRC: the command line it starts detached
        if self.systemd:
            units = wgf_expiry.unit_files(interface, epochs, service, wgf_expiry.STATE_ROOT)
            for path, text in units.items():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
            self._do("arm_expiry", sorted(units))
        else:
            argv = wgf_expiry.waiter_argv(interface, epochs, wgf_expiry.STATE_ROOT)
            self._do("arm_expiry", argv)
        self.expiry_timers[interface] = list(epochs)

    def disarm_expiry(self, interface, keep_units=False):
        self._do("disarm_expiry", interface)
        self.expiry_timers.pop(interface, None)
        if self.systemd and not keep_units:
            for path in wgf_expiry.unit_paths(interface):
                wgf_files.remove(path)

    def expiry_armed(self, interface):
        self._ask("expiry_armed", interface)
        return interface in self.expiry_timers

    def tc_live(self, interface, ifb):
        """What tc would show: the qdisc and class lines ``wgf_tc.parse_live`` reads."""
        self._ask("tc_live", interface, ifb)

        def shown(dev):
            state = self.tc.get(dev, {"root": False, "classes": {}})
            qdisc = "qdisc htb 1: root r2q 10\n" if state["root"] else "qdisc noqueue 0: root\n"
            if dev in self.tc_ingress:
                qdisc += "qdisc ingress ffff: parent ffff:fff1 ----------------\n"
            classes = "".join(
                f"class htb 1:{m:x} root {line}\n" for m, line in state["classes"].items()
            )
            return qdisc, classes

        out = dict(zip(("qdisc", "class"), shown(interface), strict=True))
        if ifb in self.tc:
            out["ifb_qdisc"], out["ifb_class"] = shown(ifb)
        return out

    def tc_apply(self, before, lines, after):
        """Keeps what the batch makes of roots, classes, ingress and IFB devices."""
        self._do("tc_apply", before, lines, after)
        for argv in before:
            if argv[:3] == ["ip", "link", "add"]:
                self.tc[argv[3]] = {"root": False, "classes": {}}
        for line in lines:
            words = line.split()
            dev = words[3]
            state = self.tc.setdefault(dev, {"root": False, "classes": {}})
            if words[:2] == ["qdisc", "replace"] and "root" in words:
                state["root"] = True
            elif words[:2] == ["qdisc", "add"] and "ingress" in words:
                self.tc_ingress.add(dev)
            elif words[:2] == ["qdisc", "del"]:
                if words[-1] == "ingress":
                    self.tc_ingress.discard(dev)
                else:
                    state.update(root=False, classes={})
            elif words[:2] in (["class", "replace"], ["class", "del"]):
                minor = int(words[words.index("classid") + 1].split(":")[1], 16)
                if words[1] == "del":
                    state["classes"].pop(minor)
                else:
                    state["classes"][minor] = " ".join(words[words.index("htb") + 1 :])
        for argv in after:
            if argv[:3] == ["ip", "link", "del"]:
                self.tc.pop(argv[3], None)

    def salt_call(self):
        return self.salt_call_path

    # clients' quotas (issue 23)
    def nft_quotas(self, table):
        self._ask("nft_quotas", table)
        return self.quotas_json

    def quota_saver_armed(self):
        self._ask("quota_saver_armed")
        return self.quota_armed

    def arm_quota_saver(self):
        self._do("arm_quota_saver")
        self.quota_armed = True

    def disarm_quota_saver(self):
        self._do("disarm_quota_saver")
        self.quota_armed = False

    def write_records(self, directory, files):
        self._do("write_records", directory, sorted(files))
        for path in (os.path.dirname(directory), directory):
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o700)
        wgf_files.write_many({os.path.join(directory, n): t for n, t in files.items()})

    def remove_records(self, directory):
        self._do("remove_records", directory)
        shutil.rmtree(directory, ignore_errors=True)

    def install_unit(self, path, text, unit):
        self._do("install_unit", path, unit)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def remove_unit(self, path, unit):
        self._do("remove_unit", path, unit)
        wgf_files.remove(path)

    def install_init_script(self, service, text, runlevel=wgf_openrc.RUNLEVEL):
        path = wgf_openrc.script_path(service)
        self._do("install_init_script", path, service, runlevel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def remove_init_script(self, service, runlevel=wgf_openrc.RUNLEVEL):
        path = wgf_openrc.script_path(service)
        self._do("remove_init_script", path, service, runlevel)
        wgf_files.remove(path)

    # the networkd backend (issue 25)

    def restart_service(self, service):
        self._do("restart_service", service)

    def write_networkd(self, units, keys, keys_dir, group):
        self._do("write_networkd", sorted(units), sorted(keys), keys_dir, group)
        os.makedirs(keys_dir, mode=0o750, exist_ok=True)
        os.chmod(keys_dir, 0o750)
        for path, text in keys.items():
            wgf_files.write_private(path, text)
            os.chmod(path, 0o640)
        for name in os.listdir(keys_dir):
            if os.path.join(keys_dir, name) not in keys:
                os.unlink(os.path.join(keys_dir, name))
        for path, text in units.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)

    def remove_tree(self, path):
        self._do("remove_tree", path)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            wgf_files.remove(path)

    def networkctl(self, *args):
        self._do("networkctl", *args)

    def stop_service(self, service):
        self._do("stop_service", service)
        self.units[service] = False

    def delete_link(self, interface):
        self._do("delete_link", interface)

    def send_event(self, tag, data):
        self._do("send_event", tag, data)
        self.events.append((tag, data))
        return True
