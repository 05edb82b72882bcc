"""`./lab clean`: remove what a crashed or kept lab run left behind.

Only things named with the lab's prefix (`wgflab-`) are touched: systemd-nspawn
processes of machines with that name, network namespaces, overlay mounts and state
under /run/wireguard-formula-lab, cgroup directories under /sys/fs/cgroup/{systemd,
unified}/wgflab-*, /run/systemd/nspawn entries, and interrupted root file system
builds in the cache. A lab whose owning process still runs is left alone (--force
removes it too). Also the `wgt-` network namespaces of test runs and benchmarks whose
process was killed (`tests.support.netns.reap_orphans`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from pathlib import Path

from ..support.netns import reap_orphans
from .host import Container
from .lab import _tidy_nspawn_run_dir
from .util import (
    CACHE_DIR,
    CGROUP_ROOTS,
    NETNS_DIR,
    PREFIX,
    STATE_DIR,
    log,
    mounts_under,
    remove_tree,
    sh,
)


def lab_id(name: str) -> str | None:
    """wgflab-<prefix>-<hex>-<host...> -> wgflab-<prefix>-<hex>."""
    if not name.startswith(PREFIX):
        return None
    parts = name.split("-")
    return "-".join(parts[:3]) if len(parts) >= 3 else None


def _netns_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.glob(f"{PREFIX}*")) if NETNS_DIR.is_dir() else []


def _nspawn_processes() -> dict[int, str]:
    """{pid: machine name} of systemd-nspawn processes running lab machines."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"systemd-nspawn"):
            continue
        for i, a in enumerate(argv[:-1]):
            if a == b"-M" and argv[i + 1].decode(errors="replace").startswith(PREFIX):
                found[int(proc.name)] = argv[i + 1].decode(errors="replace")
    return found


def find_labs() -> dict[str, list[str]]:
    """{lab id: [what was found of it]} for every lab leftover on this machine."""
    labs: dict[str, list[str]] = {}

    def add(name: str, what: str) -> None:
        lid = lab_id(name)
        if lid:
            labs.setdefault(lid, []).append(what)

    for ns in _netns_names():
        add(ns, f"netns {ns}")
    if STATE_DIR.is_dir():
        for d in STATE_DIR.iterdir():
            add(d.name, f"state {d}")
    for root in CGROUP_ROOTS:
        if root.is_dir():
            for d in root.glob(f"{PREFIX}*"):
                add(d.name, f"cgroup {d}")
    for pid, machine in _nspawn_processes().items():
        add(machine, f"systemd-nspawn pid {pid} ({machine})")
    return labs


def owner_alive(lid: str) -> bool:
    return _owner_pid_alive(STATE_DIR / lid / "owner")


def _owner_pid_alive(owner_file: Path) -> bool:
    try:
        owner = owner_file.read_text().strip()
    except OSError:
        return False
    if not owner.isdigit():
        return False  # "kept": left running on purpose, clean removes it
    try:
        cmdline = Path(f"/proc/{owner}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in cmdline


def clean_lab(lid: str) -> None:
    # 1. the containers: kill everything in their cgroups, then nspawn itself
    for root in CGROUP_ROOTS:
        Container._kill_cgroups_at(root / lid)
    for pid, machine in _nspawn_processes().items():
        if lab_id(machine) == lid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(
        lab_id(m) == lid for m in _nspawn_processes().values()
    ):
        time.sleep(0.1)
    # 2. processes left in its namespaces (a ping, a wireguard-go)
    namespaces = [ns for ns in _netns_names() if lab_id(ns) == lid]
    for ns in namespaces:
        for pid in sh(["ip", "netns", "pids", ns], check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    # 3. overlays and state
    remove_tree(STATE_DIR / lid)
    # 4. cgroup directories, depth first
    for root in CGROUP_ROOTS:
        Container._clean_cgroup(root / lid)
    # 5. namespaces
    for ns in namespaces:
        sh(["ip", "netns", "del", ns], check=False)
    _tidy_nspawn_run_dir(lid)


def clean_builds() -> None:
    """Interrupted root file system builds (only when no build is running)."""
    if not CACHE_DIR.is_dir():
        return
    with open(CACHE_DIR / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("a root file system build is running; leaving the cache alone")
            return
        for tmp in CACHE_DIR.glob("tmp-*"):
            log(f"removing interrupted build {tmp}")
            remove_tree(tmp)


def clean(force: bool = False) -> None:
    labs = find_labs()
    removed = 0
    running = set()
    for lid, what in sorted(labs.items()):
        if owner_alive(lid) and not force:
            log(f"{lid}: its process still runs; leaving it (use --force to remove it)")
            running.add(lid)
            continue
        log(
            f"{lid}: removing {len(what)} leftovers: "
            + "; ".join(what[:6])
            + (" ..." if len(what) > 6 else "")
        )
        clean_lab(lid)
        removed += 1
    clean_builds()
    for name in reap_orphans():
        log(f"removed {name}, a network namespace of a test run that was killed")
    # a lab killed between creating its state directory and renaming it into place
    for half in STATE_DIR.glob(f".{PREFIX}*.new") if STATE_DIR.is_dir() else []:
        if not owner_alive(half.name[1:-4]) and not _owner_pid_alive(half / "owner"):
            remove_tree(half)
    if STATE_DIR.is_dir() and not any(STATE_DIR.iterdir()):
        STATE_DIR.rmdir()
    _tidy_nspawn_run_dir(PREFIX)
    left = set(find_labs()) - running
    overlays = [m for m in mounts_under(STATE_DIR) if not any(f"/{lid}/" in m for lid in running)]
    if removed == 0 and not left:
        log("nothing to clean: no leftovers of a finished lab on this machine")
    elif not left and not overlays:
        log(f"removed {removed} lab(s); nothing of them is left")
    else:
        log(f"could not remove everything: {sorted(left)} {overlays}")
