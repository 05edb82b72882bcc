"""wgf_host: `wg` runs with its keys hidden and its errors masked, whoever calls it."""

import pytest
from salt.exceptions import CommandExecutionError

import wgf_host
import wgf_keys


@pytest.fixture
def fake_wg(tmp_path, monkeypatch):
    """A `wg` on PATH that prints its environment, or fails quoting a key."""
    script = tmp_path / "wg"
    script.write_text(
        '#!/bin/sh\nif [ "$1" = fail ]; then echo "Key is not the correct length: $2" >&2; '
        "exit 1; fi\nenv\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    return script


def test_wg_runs_with_its_keys_hidden(fake_wg):
    env = dict(line.split("=", 1) for line in wgf_host.wg(["show"]).splitlines())
    assert env["WG_HIDE_KEYS"] == "always" and env["LC_ALL"] == "C"


def test_a_key_wg_quotes_in_its_error_is_masked(fake_wg):
    key = wgf_keys.genpsk()
    with pytest.raises(CommandExecutionError) as exc:
        wgf_host.wg(["fail", key])
    assert str(exc.value) == "wg fail <hidden> failed: Key is not the correct length: <hidden>"


# ------------------------------------------------ what the states ask of the host


def test_wg_set_hands_the_private_key_over_in_a_file_never_on_the_command_line(
    tmp_path, monkeypatch
):
    script = tmp_path / "wg"
    script.write_text('#!/bin/sh\necho "$@"\ncat "$4"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    said, real = [], wgf_host.wg  # the real `wg` run, its output kept
    monkeypatch.setattr(wgf_host, "wg", lambda args: said.append(real(args)))
    key = wgf_keys.genkey()
    wgf_host.Host({}).wg_set("wg7", private_key=key, listen_port=51820, fwmark="off")
    argv, content = said[0].split("\n", 1)
    assert key not in argv and content == key + "\n"
    assert argv.split()[:3] == ["set", "wg7", "private-key"]
    assert argv.split()[4:] == ["listen-port", "51820", "fwmark", "off"]


class FakeSalt(dict):
    """``cmd.run_all`` answering each argv from a table, recording what ran."""

    def __init__(self, answers):
        super().__init__({"cmd.run_all": self.run_all, "cmd.has_exec": self.has_exec})
        self.answers, self.ran = answers, []

    def run_all(self, argv, stdin=None, **kwargs):
        self.ran.append(argv)
        retcode, stdout, stderr = self.answers.get(tuple(argv), (0, "", ""))
        return {"retcode": retcode, "stdout": stdout, "stderr": stderr}

    def has_exec(self, name):
        return any(argv[0] == name for argv in self.answers)


def test_the_unit_result_and_the_journal_are_read_from_systemd():
    journal = ("journalctl", "-u", "wg-quick@wg7", "-n", "8", "--no-pager", "-o", "cat")
    key = wgf_keys.genkey()
    salt = FakeSalt(
        {
            ("systemctl", "show", "-p", "Result", "wg-quick@wg7"): (
                0,
                "Result=start-limit-hit\n",
                "",
            ),
            journal: (0, f"PrivateKey = {key}\nfailed\n", ""),
        }
    )
    host = wgf_host.Host(salt)
    assert host.unit_result("wg-quick@wg7") == "start-limit-hit"
    said = host.journal("wg-quick@wg7")
    assert key not in said and "failed" in said
    host.reset_failed("wg-quick@wg7")
    assert salt.ran[-1] == ["systemctl", "reset-failed", "wg-quick@wg7"]
    assert wgf_host.Host(FakeSalt({})).journal("x") == "(see the service's log)"


def test_a_missing_nft_table_is_none_and_another_nft_error_fails():
    argv = ("nft", "list", "table", "inet", "wireguard")
    host = wgf_host.Host(FakeSalt({argv: (1, "", "Error: No such file or directory")}))
    assert host.nft_table("wireguard") is None
    host = wgf_host.Host(FakeSalt({argv: (1, "", "Error: Operation not permitted")}))
    with pytest.raises(CommandExecutionError, match="Operation not permitted"):
        host.nft_table("wireguard")
    host = wgf_host.Host(FakeSalt({argv: (0, "table inet wireguard {\n}", "")}))
    assert host.nft_table("wireguard") == "table inet wireguard {\n}\n"


def test_iptables_save_is_none_where_the_tool_is_missing():
    salt = FakeSalt({("iptables-save",): (0, "*filter\nCOMMIT\n", "")})
    host = wgf_host.Host(salt)
    assert host.iptables_save(4) == "*filter\nCOMMIT\n" and host.iptables_save(6) is None


def test_a_secret_is_written_0600_and_removed(tmp_path):
    path = tmp_path / "wg7.key"
    host = wgf_host.Host({})
    host.write_secret(str(path), "secret\n")
    assert path.read_text() == "secret\n" and path.stat().st_mode & 0o777 == 0o600
    host.remove(str(path))
    host.remove(str(path))  # gone already: nothing to do
    assert not path.exists()


def test_only_the_devices_of_this_namespace_are_live_interfaces():
    """wg lists wireguard-go's control sockets, shared by every namespace on a machine:
    one of another namespace (or one just gone) is no interface of this minion."""
    with open("/proc/net/dev") as handle:
        present = sorted(line.split(":")[0].strip() for line in handle.readlines()[2:])
    assert wgf_host.in_this_namespace([*present, "wgf-elsewhere0"]) == present


def test_a_transient_unit_name_still_in_use_is_tried_again(monkeypatch):
    """A rollout's hold re-arms right after the disarm: systemd may refuse the name
    until it has collected the stopped units; the arm resets them and tries again."""
    calls, answers = [], [1, 0, 0]

    def run_all(argv, **_):
        calls.append(argv[0] if argv[0] != "systemctl" else " ".join(argv[:2]))
        code = answers.pop(0) if argv[0] == "systemd-run" else 0
        return {"retcode": code, "stdout": "", "stderr": "Unit already exists"}

    host = wgf_host.Host({"cmd.run_all": run_all})
    monkeypatch.setattr(wgf_host.Host, "has_systemd", lambda self: True)
    monkeypatch.setattr(wgf_host.time, "sleep", lambda seconds: None)
    host.arm_undo("wg0", 30)
    assert calls == ["systemd-run", "systemctl reset-failed", "systemd-run"]


def test_the_quota_saver_is_installed_enabled_and_started_and_removed_after_a_last_save(
    tmp_path, monkeypatch
):
    """Issue 23, under systemd: its three unit files (0644), one daemon-reload, the timer
    and the shutdown unit enabled and started; the disarm saves once more first."""
    import wgf_quota

    monkeypatch.setattr(wgf_quota, "UNIT_DIR", str(tmp_path / "units"))
    monkeypatch.setattr(wgf_host.salt.utils.systemd, "booted", lambda: True)
    timer = ("systemctl", "is-active", "--quiet", "wireguard-quota.timer")
    salt = FakeSalt({timer: (3, "", "")})
    host = wgf_host.Host(salt)
    assert not host.quota_saver_armed()
    host.arm_quota_saver()
    units = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert units == [
        "wireguard-quota-shutdown.service",
        "wireguard-quota.service",
        "wireguard-quota.timer",
    ]
    assert all((tmp_path / "units" / u).stat().st_mode & 0o777 == 0o644 for u in units)
    enable = ["systemctl", "enable", "--now", "wireguard-quota.timer"]
    assert salt.ran[-2:] == [
        ["systemctl", "daemon-reload"],
        [*enable, "wireguard-quota-shutdown.service"],
    ]
    salt.ran.clear()
    host.disarm_quota_saver()
    assert salt.ran[0] == ["/bin/sh", f"{wgf_quota.STATE_DIR}/save"]
    assert salt.ran[1] == [
        "systemctl",
        "disable",
        "--now",
        "wireguard-quota.timer",
        "wireguard-quota-shutdown.service",
    ]
    assert not (tmp_path / "units").exists() or not list((tmp_path / "units").iterdir())


def test_a_killed_waiter_is_gone_when_kill_waiter_returns():
    """A signal is delivered asynchronously: the next "is it armed?" (which reads the
    waiter's /proc entry) must already hear no. A zombie counts as gone."""
    import subprocess

    import wgf_host_timers

    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        wgf_host_timers.kill_waiter(child.pid)
        with open(f"/proc/{child.pid}/stat", encoding="ascii") as handle:
            assert handle.read().rsplit(")", 1)[-1].split()[0] == "Z"
    finally:
        child.kill()
        child.wait()
