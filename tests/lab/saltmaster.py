"""The salt-master container and helpers to drive Salt from it like a user would."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import yaml

from .host import Container
from .util import LabError, wait_for

MASTER_IP = "198.19.255.1"
MINION_READY = "Minion is ready to receive requests!"
FORMULA_DIR = "/srv/formula"
PILLAR_DIR = "/srv/pillar"

MASTER_CONF = f"""\
# wireguard-formula lab master
interface: {MASTER_IP}
auto_accept: True
worker_threads: 3
timeout: 30
gather_job_timeout: 15
# the repo checkout, bind-mounted read-only: serves wireguard/, _modules/, _states/ ...
file_roots:
  base:
    - {FORMULA_DIR}
file_ignore_regex:
  - '(^|/)\\.git($|/)'
  - '(^|/)\\.venv($|/)'
  - '(^|/)__pycache__($|/)'
  - '(^|/)\\.lab($|/)'
  - '(^|/)build($|/)'
fileserver_list_cache_time: 2
pillar_roots:
  base:
    - {PILLAR_DIR}
log_level_logfile: info
# the formula's ext_pillar: the preshared keys of networks (docs/rotation.md: Preshared keys of networks)
ext_pillar:
  - wireguard: {{}}
"""

MINION_CONF = """\
# wireguard-formula lab minion
master: {master}
id: {id}
acceptance_wait_time: 1
acceptance_wait_time_max: 2
random_reauth_delay: 0
recon_default: 200
recon_max: 1000
recon_randomize: False
auth_timeout: 15
# no DNS in the lab: reverse lookups of every address would only time out
enable_fqdns_grains: False
enable_gpu_grains: False
log_level_logfile: info
"""


def minion_conf(minion_id: str) -> str:
    return MINION_CONF.format(master=MASTER_IP, id=minion_id)


class Master(Container):
    """The salt-master: `salt`, `salt-run` and `salt-key` run inside it."""

    kind = "master"

    def create(self) -> Master:
        super().create()
        self.write("/etc/salt/master.d/lab.conf", MASTER_CONF)
        self.write(f"{PILLAR_DIR}/top.sls", "base: {}\n")
        self.enable_unit("salt-master.service")
        self.ready = False
        self.synced = False
        self.last_exit: int | None = None  # of the last salt_run
        # {minion id: the pillar file last written for it}: a minion whose file did not
        # change needs no refresh of its in-memory pillar
        self.pillar_files: dict[str, str] = {}
        return self

    @property
    def pillar_host_dir(self) -> Path:
        return self.merged / PILLAR_DIR.lstrip("/")

    def wait_ready(self, timeout: float = 90) -> None:
        if self.ready:
            return
        self.wait_booted()

        def up():
            return (
                self.run(
                    ["salt-run", "--out=json", "manage.present"], check=False, timeout=60
                ).returncode
                == 0
            )

        wait_for(
            up,
            timeout,
            "salt-master to answer in container master",
            interval=0.5,
            detail=lambda: self.out(
                "journalctl -u salt-master --no-pager -n 30; tail -n 30 /var/log/salt/master",
                check=False,
            ),
        )
        self.ready = True

    # -- running salt ---------------------------------------------------------------------
    @staticmethod
    def _cli_args(args, kwargs) -> list[str]:
        out = []
        for a in args:
            out.append(a if isinstance(a, str) else json.dumps(a))
        for k, v in kwargs.items():
            out.append(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
        return out

    def salt(self, target, fun: str, *args, timeout: float = 60, **kwargs) -> dict:
        """`salt --out=json --static TARGET FUN ARGS` -> {minion id: return}.
        A list target is sent as `-L`. Minions that do not answer are missing or map
        to Salt's "Minion did not return" string."""
        self.wait_ready()
        argv = ["salt", "--out=json", "--static", "--no-color", "-t", str(int(timeout))]
        if isinstance(target, (list, tuple)):
            argv += ["-L", ",".join(target)]
        else:
            argv.append(target)
        argv += [fun, *self._cli_args(args, kwargs)]
        proc = self.run(argv, check=False, timeout=timeout + 120)
        return self._parse(proc, argv)

    def salt_run(self, fun: str, *args, timeout: float = 60, **kwargs):
        self.wait_ready()
        argv = [
            "salt-run",
            "--out=json",
            "--no-color",
            "-t",
            str(int(timeout)),
            fun,
            *self._cli_args(args, kwargs),
        ]
        proc = self.run(argv, check=False, timeout=timeout + 60)
        self.last_exit = proc.returncode  # salt-run's exit code, as a user sees it
        return self._parse(proc, argv)

    def _parse(self, proc, argv):
        text = proc.stdout.strip()
        try:
            return json.loads(text) if text else {}
        except json.JSONDecodeError:
            # several JSON documents (no --static) or a traceback
            raise LabError(
                f"master: `{' '.join(argv)}` printed no JSON (exit {proc.returncode})\n"
                f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
            ) from None

    def sync_all(self) -> None:
        """`salt-run saltutil.sync_all` once: the formula's runner and ext_pillar (and
        the utils they import) into the master's extension modules."""
        if self.synced:
            return
        ret = self.salt_run("saltutil.sync_all", timeout=120)
        if (
            not isinstance(ret, dict)
            or "runners.wireguard" not in ret.get("runners", [])
            or "pillar.wireguard" not in ret.get("pillar", [])
        ):
            raise LabError(
                "salt-run saltutil.sync_all did not sync the formula's runner "
                f"and ext_pillar: {ret}"
            )
        self.synced = True

    def keys(self) -> dict:
        return json.loads(self.out(["salt-key", "--out=json", "-L"]))

    def delete_key(self, minion_id: str) -> None:
        self.run(["salt-key", "-y", "-d", minion_id], check=False)

    def wait_minions(self, ids, timeout: float = 120, hosts: dict | None = None) -> float:
        """Until every minion's key is accepted and it answers test.ping."""
        self.wait_ready()
        t0 = time.monotonic()
        pending = set(ids)
        # First, cheaply: read each minion's log from the outside until it says it is
        # ready (every `salt` call costs a second of CPU that the starting minions need).
        logs = {
            mid: h.merged / "var/log/salt/minion"
            for mid, h in (hosts or {}).items()
            if mid in pending and isinstance(h, Container)
        }

        def logged_ready():
            for mid, path in list(logs.items()):
                try:
                    if MINION_READY in path.read_text(errors="replace"):
                        del logs[mid]
                except OSError:
                    pass
            return not logs

        with contextlib.suppress(LabError):  # the test.ping loop below explains failures
            wait_for(logged_ready, min(timeout, 60), "minion logs", interval=0.2, max_interval=0.3)

        # Each round that misses waits twice as long, up to a minute: a ping that times
        # out stays queued in the minion, with Salt's "still running?" query beside it, and
        # a stream of them drowned the minion of a starved emulated guest (every return
        # timed out for 10 min in a full suite run).
        ping_timeout = 5

        def answered():
            nonlocal ping_timeout
            ret = self.salt(sorted(pending), "test.ping", timeout=ping_timeout)
            for mid, val in ret.items():
                if val is True:
                    pending.discard(mid)
            ping_timeout = min(2 * ping_timeout, 60)
            return not pending

        def detail():
            lines = [f"minions not answering: {', '.join(sorted(pending))}"]
            with_keys = self.keys()
            lines.append(f"master's keys: {json.dumps(with_keys)}")
            for mid in sorted(pending):
                host = (hosts or {}).get(mid)
                if host is not None:
                    lines.append(f"--- {mid}: salt-minion journal")
                    lines.append(
                        host.out(
                            "journalctl -u salt-minion --no-pager -n 15; "
                            "tail -n 15 /var/log/salt/minion",
                            check=False,
                        )
                    )
            return "\n".join(lines)

        wait_for(
            answered,
            timeout,
            f"minions {', '.join(sorted(ids))} to answer the master",
            interval=0.5,
            detail=detail,
        )
        return time.monotonic() - t0

    # -- pillar and states ----------------------------------------------------------------
    def write_pillar(self, pillars: dict, refresh: bool = True) -> list[str]:
        """Make the master's pillar exactly {minion id: that minion's pillar dict}; with
        `refresh`, the minions whose pillar file changed refresh their in-memory pillar
        (`saltutil.refresh_pillar wait=True`). Returns those minions."""
        root = self.pillar_host_dir
        mdir = root / "minions"
        if mdir.exists():
            shutil.rmtree(mdir)
        mdir.mkdir(parents=True)
        top = {"base": {}}
        changed = []
        for mid, data in pillars.items():
            sls = mid.replace(".", "_")
            text = "#!yaml\n" + yaml.safe_dump(data or {}, default_flow_style=False)
            (mdir / f"{sls}.sls").write_text(text)
            top["base"][mid] = [f"minions.{sls}"]
            if self.pillar_files.get(mid) != text:
                changed.append(mid)
            self.pillar_files[mid] = text
        (root / "top.sls").write_text("#!yaml\n" + yaml.safe_dump(top))
        for mid in set(self.pillar_files) - set(pillars):
            del self.pillar_files[mid]
        changed.sort()
        if refresh and changed:
            self.salt(changed, "saltutil.refresh_pillar", wait=True)
        return changed

    def forget_pillar(self, minions) -> None:
        """These minions' in-memory pillar is unknown (a new minion of the same id, a
        pillar set behind write_pillar's back): the next write refreshes them."""
        for mid in [minions] if isinstance(minions, str) else minions:
            self.pillar_files.pop(mid, None)

    def state_apply(
        self,
        minions,
        pillars: dict | None = None,
        check: bool = True,
        timeout: float = 300,
        sls: str = "wireguard",
        **kwargs,
    ) -> dict:
        """`salt MINIONS state.apply SLS` -> {minion: {state id: result}} (raw), after
        making `pillars` ({minion id: pillar}) the master's pillar when given. kwargs go
        to state.apply (`test=True`, or `pillar={...}` for an override on the command
        line). With `check`, a LabError unless each of `minions` (one id or a list)
        answered and no state failed.

        A targeted minion whose pillar changed refreshes it in the same job, before the
        run (`salt MINIONS saltutil.refresh_pillar,state.apply wait=True , SLS`): one
        round trip instead of two, and its in-memory pillar is still the new one for
        whatever the test asks it next."""
        expected = [minions] if isinstance(minions, str) else list(minions)
        refresh = []
        if pillars is not None:
            changed = self.write_pillar(pillars, refresh=False)
            others = [m for m in changed if m not in expected]
            if others:
                self.salt(others, "saltutil.refresh_pillar", wait=True)
            refresh = [m for m in changed if m in expected]
        if refresh:
            ret = self._refresh_and_apply(expected, sls, timeout, kwargs)
        else:
            ret = self.salt(minions, "state.apply", sls, timeout=timeout, **kwargs)
        if check:
            missing = sorted(set(expected) - set(ret))
            failures = describe_failures(ret)
            if missing or failures:
                raise LabError(
                    f"state.apply {sls} on {', '.join(expected)} failed"
                    + (f"\nno answer from {', '.join(missing)}" if missing else "")
                    + (f"\n{failures}" if failures else "")
                )
        return ret

    def _refresh_and_apply(self, minions: list, sls: str, timeout: float, kwargs) -> dict:
        """The compound job `saltutil.refresh_pillar,state.apply`; each minion's return
        is state.apply's (or what the CLI said instead of a return)."""
        self.wait_ready()
        argv = ["salt", "--out=json", "--static", "--no-color", "-t", str(int(timeout))]
        argv += ["-L", ",".join(minions), "saltutil.refresh_pillar,state.apply"]
        argv += ["wait=True", ",", *self._cli_args([sls], kwargs)]
        proc = self.run(argv, check=False, timeout=timeout + 120)
        ret = self._parse(proc, argv)
        return {
            mid: got.get("state.apply", got) if isinstance(got, dict) else got
            for mid, got in ret.items()
        }


def summarize(ret: dict) -> dict:
    """{minion: {"total", "changed", "failed": [ids], "error": str|None}} of a state run."""
    out = {}
    for mid, states in ret.items():
        if not isinstance(states, dict):
            out[mid] = {"total": 0, "changed": 0, "failed": [], "error": str(states)}
            continue
        failed = [sid for sid, r in states.items() if not r.get("result", False)]
        changed = [sid for sid, r in states.items() if r.get("changes")]
        out[mid] = {
            "total": len(states),
            "changed": len(changed),
            "changed_ids": changed,
            "failed": failed,
            "error": None,
        }
    return out


def describe_failures(ret: dict) -> str:
    """Human-readable lines for every failed state (for assertion messages)."""
    lines = []
    for mid, states in ret.items():
        if not isinstance(states, dict):
            lines.append(f"{mid}: {states}")
            continue
        for sid, r in sorted(states.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
            if not r.get("result", False):
                lines.append(f"{mid}: {sid}: {r.get('comment')}")
    return "\n".join(lines)


def refusal(ret: dict, minion: str) -> str:
    """What a refused `state.apply` said on `minion`: its render errors (Salt returns a
    list of strings when an SLS does not render, and then runs no state at all) or its
    failed states. An AssertionError when the apply did not fail, or the minion gave no
    return (Salt's "Minion did not return" is no refusal)."""
    got = ret.get(minion)
    if isinstance(got, list) and got:
        return "\n".join(str(line) for line in got)
    if isinstance(got, dict):
        failures = describe_failures({minion: got})
        assert failures, f"the apply on {minion} did not fail: {got}"
        return failures
    raise AssertionError(f"no refusal from {minion}: {ret}")
