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
