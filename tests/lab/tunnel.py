"""Salt over the tunnel (issue 21): minions that reach their master only through the
WireGuard tunnel the formula manages.

    hub = lab.tunnel_master("hub")                     # salt-master + WireGuard hub
    spoke = lab.container("spoke1", minion=False, formula=True)
    ...cable both to a switch, then:
    bootstrap(spoke, pillar)                           # salt-call --local: tunnel up
    join(hub, [spoke], "10.21.0.1")                    # its minion -> master over wg0

A spoke has no link to the mgmt switch: once joined, `salt spoke1 ...` on the hub goes
through the spoke's wg0 and nothing else.
"""

from __future__ import annotations

import json
import threading

import yaml

from .host import Container
from .saltmaster import FORMULA_DIR, MINION_CONF, Master, describe_failures
from .util import LabError

LOCAL_PILLAR = "/srv/pillar-local"
LOCAL_CONF = "/etc/salt/minion.d/bootstrap.conf"
BOOTSTRAP_CONF = f"""\
# masterless bootstrap (tests/lab/tunnel.py), removed by join()
file_client: local
file_roots:
  base:
    - {FORMULA_DIR}
pillar_roots:
  base:
    - {LOCAL_PILLAR}
file_ignore_regex:
  - '(^|/)\\.git($|/)'
  - '(^|/)__pycache__($|/)'
"""


def bootstrap(minion: Container, pillar: dict) -> dict:
    """Bring the minion's WireGuard up masterless: `salt-call --local state.apply
    wireguard` with `pillar` as its only pillar file. Returns the state run; a failed
    state is a LabError."""
    minion.write(LOCAL_CONF, BOOTSTRAP_CONF)
    minion.write(f"{LOCAL_PILLAR}/top.sls", "base:\n  '*':\n    - wg\n")
    minion.write(f"{LOCAL_PILLAR}/wg.sls", yaml.safe_dump(pillar), mode=0o600)
    call = ["salt-call", "--local", "--out=json", "--no-color"]
    minion.run([*call, "saltutil.sync_all"], timeout=180)
    proc = minion.run([*call, "state.apply", "wireguard"], check=False, timeout=300)
    try:
        ret = json.loads(proc.stdout)["local"]
    except (ValueError, KeyError, TypeError):
        raise LabError(f"{minion.name}: salt-call --local state.apply: {proc.stdout}") from None
    failures = describe_failures({minion.name: ret})
    if failures:
        raise LabError(f"{minion.name}: the masterless bootstrap failed\n{failures}")
    return ret


def join(master: Master, minions, address: str, timeout: float = 120) -> None:
    """Point each minion's salt-minion at `address` (the master's tunnel address) and
    start it; wait until all answer the master (keys are accepted on their own) and sync
    the formula's modules to them from it."""
    for m in minions:
        m.run(["rm", "-f", LOCAL_CONF])
        m.write("/etc/salt/minion.d/lab.conf", MINION_CONF.format(master=address, id=m.name))
        m.run(["systemctl", "enable", "--now", "salt-minion.service"])
    ids = [m.name for m in minions]
    master.wait_minions(ids, timeout=timeout, hosts={m.name: m for m in minions})
    ret = master.salt(ids, "saltutil.sync_all", timeout=120)
    missing = [i for i in ids if not isinstance(ret.get(i), dict)]
    if missing:
        raise LabError(f"saltutil.sync_all failed on {missing}: {ret}")


def in_parallel(func, items) -> list:
    """func(item) for each item, each in a thread; the first error is raised."""
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def one(i, item):
        try:
            results[i] = func(item)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i, it)) for i, it in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(items))]
