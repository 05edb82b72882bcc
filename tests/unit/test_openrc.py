"""The OpenRC boot scripts of the formula's detached waiters (``wgf_openrc``, issue 23):
what their ``start`` and ``stop`` run, as openrc-run would run them."""

import os
import subprocess
import time

import pytest

import wgf_expiry
import wgf_openrc
import wgf_quota


def run(script, action, tmp_path):
    path = tmp_path / "service"
    path.write_text(script)
    done = subprocess.run(["sh", "-c", f'. "{path}" && {action}'], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def test_start_runs_the_command_line_detached_and_records_its_process_id(tmp_path):
    out, record = tmp_path / "out", tmp_path / "waiter"
    # an argument with a quote, a space and a newline reaches the command as it is
    argv = ["/bin/sh", "-c", 'printf "%s" "$1" > "$2"; sleep 30', "name", "it's\n a b", str(out)]
    script = wgf_openrc.waiter_script("a waiter's test", argv, str(record), after="wg-quick.wg0")
    assert "    after wg-quick.wg0\n" in script and script.startswith("#!/sbin/openrc-run\n")
    run(script, "start", tmp_path)
    pid = int(record.read_text())
    try:
        for _ in range(50):
            if out.exists() and out.read_text():
                break
            time.sleep(0.05)
        assert out.read_text() == "it's\n a b"
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert handle.read().split(b"\0")[:3] == [b"/bin/sh", b"-c", argv[2].encode()]
        assert os.stat(record).st_mode & 0o777 == 0o600
    finally:
        os.kill(pid, 9)


def test_stop_runs_its_command_or_nothing(tmp_path):
    mark = tmp_path / "saved"
    script = wgf_openrc.waiter_script("x", ["true"], str(tmp_path / "r"), stop=["touch", mark])
    run(script, "stop", tmp_path)
    assert mark.exists()
    run(wgf_openrc.waiter_script("x", ["true"], str(tmp_path / "r")), "stop", tmp_path)


def test_the_expiry_and_quota_scripts_start_their_waiters_and_the_saver_saves_at_stop():
    expiry = wgf_expiry.boot_script("wg0", [1800000000, 1900000000], "wg-quick.wg0", "/x")
    assert "/x/wg0/waiter" in expiry and "1800000000 1900000000" in expiry
    assert "    after wg-quick.wg0\n" in expiry
    quota = wgf_quota.boot_script("", "/q")
    assert "stop() {\n    /bin/sh /q/save\n}" in quota and "> /q/waiter" in quota


@pytest.mark.parametrize("name", ["", "a b", "x;y", "../x", None])
def test_a_name_that_is_no_service_name_is_refused(name):
    with pytest.raises(ValueError):
        wgf_openrc.script_path(name)
