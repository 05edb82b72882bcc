"""The README's Quick start, walked as written on a real master with two minions: each
YAML block is written where the text says (placeholders such as `<laptop's public
key>` replaced by the real values), each `salt` line of its shell blocks runs on the
master in order, and it ends with the two minions pinging over the tunnel."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from tests.lab.saltmaster import PILLAR_DIR

REPO = Path(__file__).resolve().parents[2]
INTERNET = "198.18.26"
ADDRESSES = {"server": f"{INTERNET}.1", "laptop": f"{INTERNET}.2"}


def quick_start_steps(readme: str) -> list[tuple[str, str, str | None]]:
    """``(kind, text, path)`` of each fenced block of the Quick start, in order: ``yaml``
    with the last ``.sls`` path the text names before it, or ``sh``."""
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    # prose, kind, body, prose, kind, body, ..., prose
    parts = re.split(r"(?ms)^ *```(\w+)\n(.*?)^ *```\n", section)
    steps = []
    for i in range(0, len(parts) - 1, 3):
        prose, kind, body = parts[i : i + 3]
        paths = re.findall(r"`(/[^`]+\.sls)`", prose)
        steps.append((kind, _dedent(body), paths[-1] if kind == "yaml" and paths else None))
    return steps


def _dedent(text: str) -> str:
    lines = text.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines) + "\n"


def test_the_quick_start_steps_are_what_this_test_walks():
    """Guard the parser: every YAML block has a path, every command is a salt command."""
    steps = quick_start_steps((REPO / "README.md").read_text())
    assert [k for k, _, _ in steps].count("yaml") >= 4
    assert all(path for kind, _, path in steps if kind == "yaml"), steps
    commands = [line for kind, body, _ in steps if kind == "sh" for line in body.splitlines()]
    assert commands and all(
        c.split()[0] in ("salt", "salt-run", "salt-call") for c in commands if c.strip()
    ), commands


@pytest.fixture
def server_and_laptop(lab):
    with lab.section():
        inet = lab.bridge("readme-inet")
        hosts = {name: lab.container(name) for name in ADDRESSES}
        for name, host in hosts.items():
            inet.attach(host, "eth0", [f"{ADDRESSES[name]}/24"])
        lab.wait_ready()
        try:
            yield lab, hosts
        finally:
            shutil.rmtree(lab.master.pillar_host_dir / "wireguard", ignore_errors=True)
            lab.master.write_pillar({})


def public_keys(master) -> dict:
    argv = ["salt", "--out=json", "--static", "-L", "server,laptop", "wireguard.public_keys"]
    return {m: keys["wg0"] for m, keys in json.loads(master.out(argv)).items()}


@pytest.mark.e2e
def test_a_newcomer_following_the_quick_start_gets_a_working_tunnel(server_and_laptop):
    lab, hosts = server_and_laptop
    master = lab.master
    values = {"<server's public address>": ADDRESSES["server"]}
    for kind, body, path in quick_start_steps((REPO / "README.md").read_text()):
        if kind == "yaml":
            for placeholder in re.findall(r"<[^>]+>", body):
                if placeholder not in values:  # "<laptop's public key>": read it now
                    values.update(
                        {f"<{m}'s public key>": k for m, k in public_keys(master).items()}
                    )
                body = body.replace(placeholder, values[placeholder])
            assert path.startswith(PILLAR_DIR + "/"), path
            target = master.pillar_host_dir / path[len(PILLAR_DIR) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            continue
        for line in body.splitlines():
            command = line.split("#", 1)[0].strip()
            if not command:
                continue
            proc = master.run(["sh", "-c", command], check=False, timeout=300)
            shown = f"`{command}` (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            assert proc.returncode == 0, shown
            assert "is not available" not in proc.stdout, shown
            assert not re.search(r"Failed:\s+[1-9]", proc.stdout), shown
            if shlex.split(command)[-1].startswith("ping "):
                assert "bytes from 10.0.0.1" in proc.stdout, shown
    # and the laptop reaches the server over the tunnel, seen from the laptop itself
    assert hosts["laptop"].ping("10.0.0.1").ok
