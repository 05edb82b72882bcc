"""The event sending both timer job scripts end with (``wgf_events.send_lines``), run by
``sh`` with a stub ``salt-call`` that takes one event and refuses another."""

import os
import subprocess

import wgf_events


def run(tmp_path, status):
    stub, calls = tmp_path / "salt-call", tmp_path / "calls"
    stub.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> "{calls}"\n'
        'case "$*" in *refused*) exit 1 ;; esac\n'
        "echo '{\"local\": true}'\n"
    )
    os.chmod(stub, 0o755)
    script = "\n".join(["set -u", f"dir={tmp_path}", *wgf_events.send_lines("a/tag", stub, status)])
    proc = subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/usr/bin:/bin"}, check=False)
    return proc.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_a_taken_event_is_logged_and_removed_others_wait(tmp_path):
    events = tmp_path / wgf_events.EVENTS
    events.mkdir()
    (events / "1-taken").write_text('{"client": "phone"}')
    (events / "2-refused").write_text('{"client": "refused"}')
    (events / "3-half.tmp").write_text('{"client": "half"}')  # still being written
    status, calls = run(tmp_path, "3")
    assert status == 3
    assert calls == [
        '--out=json event.fire_master {"client": "phone"} a/tag',
        '--out=json event.fire_master {"client": "refused"} a/tag',
    ]
    assert sorted(p.name for p in events.iterdir()) == ["2-refused", "3-half.tmp"]
    sent = (tmp_path / wgf_events.SENT).read_text().splitlines()
    assert len(sent) == 1 and sent[0].split(" ", 1)[1] == '{"client": "phone"}'


def test_without_salt_call_nothing_is_sent_and_the_status_is_kept(tmp_path):
    events = tmp_path / wgf_events.EVENTS
    events.mkdir()
    (events / "1-taken").write_text("{}")
    script = "\n".join(["set -u", f"dir={tmp_path}", *wgf_events.send_lines("a/tag", "''", "4")])
    proc = subprocess.run(["/bin/sh", "-c", script], env={"PATH": "/nowhere"}, check=False)
    assert proc.returncode == 4
    assert [p.name for p in events.iterdir()] == ["1-taken"]
    assert not (tmp_path / wgf_events.SENT).exists()
