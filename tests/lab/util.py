"""Small shared helpers of the lab: running commands, logging, waiting, names."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The cached root file systems (and the wheels and .debs they are built from).
CACHE_DIR = Path(os.environ.get("WGLAB_CACHE", "/var/cache/wireguard-formula-lab"))
# Per-run state: overlay upper/work/merged dirs, console logs, pillar.
STATE_DIR = Path("/run/wireguard-formula-lab")
# Every namespace, machine, cgroup directory and state directory the lab creates starts
# with this; `./lab clean` removes exactly what carries it.
PREFIX = "wgflab-"
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
NETNS_DIR = Path("/run/netns")
NSPAWN_RUN_DIR = Path("/run/systemd/nspawn")

CLEAN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "TERM": "dumb",
}

_T0 = time.monotonic()
VERBOSE = os.environ.get("WGLAB_VERBOSE", "") not in ("", "0")


class LabError(RuntimeError):
    """Something in the lab failed; the message names the host and what was tried."""


def log(msg: str) -> None:
    """A progress line on stderr, with the seconds since the lab module was loaded."""
    print(f"[lab {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def debug(msg: str) -> None:
    if VERBOSE:
        log(msg)


def fmt_cmd(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def sh(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = 120,
    input: str | None = None,
    what: str = "host",
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run argv on the machine itself, capture text output; LabError on failure."""
    argv = [str(a) for a in argv]
    debug(f"{what}$ {fmt_cmd(argv)}")
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env if env is not None else CLEAN_ENV,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: `{fmt_cmd(argv)}` timed out after {timeout}s") from exc
    except FileNotFoundError as exc:
        raise LabError(f"{what}: `{argv[0]}` is not installed (run ./lab setup)") from exc
    if check and proc.returncode != 0:
        raise LabError(
            f"{what}: `{fmt_cmd(argv)}` exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout.strip()}\n--- stderr\n{proc.stderr.strip()}"
        )
    return proc


def wait_for(
    pred: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.1,
    max_interval: float = 1.0,
    detail: Callable[[], str] | None = None,
):
    """Poll pred() until it returns something truthy; LabError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except LabError as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = ""
            if last_exc is not None:
                extra += f"\nlast error: {last_exc}"
            if detail is not None:
                try:
                    extra += "\n" + detail()
                except Exception as exc:  # diagnostics must not hide the real error
                    extra += f"\n(could not collect details: {exc})"
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)
        interval = min(interval * 1.5, max_interval)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError(
            "the lab must run as root: it creates network namespaces, overlay mounts "
            "and systemd-nspawn containers (try: sudo ./lab ...)"
        )


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below path, deepest first (from /proc/self/mountinfo)."""
    base = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mp = line.split()[4].replace("\\040", " ")
            if mp == base or mp.startswith(base + "/"):
                found.append(mp)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def umount_tree(path: Path) -> None:
    """Unmount everything mounted at or below path (lazily if busy)."""
    for mp in mounts_under(path):
        if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mp], capture_output=True)


def remove_tree(path: Path) -> None:
    """rm -rf that never crosses into a mount (a bind of /dev or /proc, say)."""
    if not path.exists() and not path.is_symlink():
        return
    umount_tree(path)
    if mounts_under(path):
        raise LabError(f"refusing to remove {path}: still has mounts {mounts_under(path)}")
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
