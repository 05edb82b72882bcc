"""Keys never reach a command line: wg reads them from 0600 files."""

import os
import stat

PEER = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="


def test_preshared_key_goes_through_a_private_file(wgmod, monkeypatch):
    calls = []

    def run_all(argv, **kwargs):
        calls.append(argv)
        path = argv[argv.index("preshared-key") + 1]
        mode = stat.S_IMODE(os.stat(path).st_mode)
        dir_mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        with open(path) as handle:
            calls.append((mode, dir_mode, handle.read().strip()))
        assert kwargs["python_shell"] is False
        return {"retcode": 0, "stdout": "", "stderr": ""}

    monkeypatch.setattr(wgmod.salt.utils.path, "which", lambda _: "/usr/bin/wg")
    wgmod.__salt__["cmd.run_all"] = run_all
    wgmod.set_peer("wg0", PEER, allowed_ips=["10.0.0.2/32"], preshared_key=PSK)
    argv = calls[0]
    assert argv[:3] == ["wg", "set", "wg0"]
    assert PSK not in " ".join(argv)
    assert calls[1] == (0o600, 0o700, PSK)
    assert not os.path.exists(argv[argv.index("preshared-key") + 1])


def test_many_peers_are_batched(wgmod, monkeypatch):
    calls = []

    def run_all(argv, **_):
        calls.append(argv)
        return {"retcode": 0, "stdout": "wg0", "stderr": ""}

    monkeypatch.setattr(wgmod.salt.utils.path, "which", lambda _: "/usr/bin/wg")
    wgmod.__salt__["cmd.run_all"] = run_all
    peers = [{"public_key": wgmod.pubkey(wgmod.genkey())} for _ in range(1200)]
    wgmod.apply_peers("wg0", peers=peers)
    sets = [c for c in calls if c[1] == "set"]
    assert len(sets) == 3 == len(calls)
    assert sum(c.count("peer") for c in sets) == 1200
