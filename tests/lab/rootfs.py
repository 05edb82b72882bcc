"""The one root file system every lab container boots from.

Built once with debootstrap (minbase bookworm), Salt in a venv at /opt/salt, and a few
systemd units; cached under /var/cache/wireguard-formula-lab/rootfs-<hash>, where the
hash covers the whole recipe below. A recipe change builds a new one; otherwise it is
reused. The build goes into a temporary directory that is renamed at the very end, so
an interrupted build never leaves something that looks finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import tomllib

from .util import CACHE_DIR, CLEAN_ENV, REPO, LabError, log, remove_tree, sh, umount_tree

SUITE = "bookworm"
# Bump when the build steps change in a way the recipe below does not show.
RECIPE_VERSION = 3

PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "wireguard-tools",
    "wireguard-go",
    "iputils-ping",
    "python3",
    "python3-venv",
    "iptables",
    "nftables",
    "openresolv",
    "tcpdump",
    "ca-certificates",
    "procps",
    "kmod",
    "less",
    # `salt-run wireguard.graph svg=...` renders with Graphviz on the master
    "graphviz",
]

SALT_TOOLS = ["salt", "salt-call", "salt-master", "salt-minion", "salt-run", "salt-key"]

# Units the lab adds. They are installed but only the /proc/sys/net one is enabled in
# the image; the lab enables salt-master/salt-minion per container.
UNITS = {
    "salt-master.service": """\
[Unit]
Description=The Salt Master Server (lab)
After=network.target

[Service]
Type=simple
LimitNOFILE=100000
ExecStart=/usr/local/bin/salt-master
Restart=on-failure
# Salt takes 5-10 s to act on SIGTERM; nothing in the lab needs a graceful stop
TimeoutStopSec=2

[Install]
WantedBy=multi-user.target
""",
    "salt-minion.service": """\
[Unit]
Description=The Salt Minion (lab)
After=network.target

[Service]
Type=simple
LimitNOFILE=8192
ExecStart=/usr/local/bin/salt-minion
# as upstream: a restart of the minion must not kill the jobs it started
KillMode=process
Restart=on-failure
# Salt takes 5-10 s to act on SIGTERM; nothing in the lab needs a graceful stop
TimeoutStopSec=2

[Install]
WantedBy=multi-user.target
""",
    # systemd-nspawn mounts /proc/sys read-only because it does not own the network
    # namespace (the lab creates it). The container does own it, so make /proc/sys/net
    # writable early at boot and apply the net.* sysctls like a real boot would
    # (systemd-sysctl.service itself is skipped: /proc/sys is read-only).
    "lab-proc-sys-net.service": """\
[Unit]
Description=Lab: writable /proc/sys/net and net.* sysctls from /etc/sysctl.d
DefaultDependencies=no
Before=sysinit.target network-pre.target systemd-sysctl.service
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /proc/sys/net /proc/sys/net
ExecStart=/bin/mount -o remount,bind,rw /proc/sys/net
ExecStart=/lib/systemd/systemd-sysctl --prefix=/net

[Install]
WantedBy=sysinit.target
""",
}

# Units that only cost time or take the dpkg lock at random moments in a lab.
MASKED = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "e2scrub_all.timer",
    "fstrim.timer",
    "systemd-networkd-wait-online.service",
    "getty@.service",
    "console-getty.service",
]


def salt_pins() -> list[str]:
    """The exact Salt and libraries the lab runs: pyproject.toml's `lab` dependency group."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(data["dependency-groups"]["lab"])


def recipe() -> dict:
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "packages": PACKAGES,
        "pins": salt_pins(),
        "units": UNITS,
        "masked": MASKED,
        "tools": SALT_TOOLS,
    }


def recipe_hash() -> str:
    blob = json.dumps(recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def rootfs_path() -> Path:
    return CACHE_DIR / f"rootfs-{recipe_hash()}"


def is_ready(path: Path | None = None) -> bool:
    path = path or rootfs_path()
    return (path / "etc/wireguard-formula-lab.json").is_file()


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line format)."""
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(d.glob("*.list")) + sorted(d.glob("*.sources"))
    for f in files:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        # deb822: a stanza with URIs: and Suites: naming the suite itself
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split() and "debian" in uris.group(1):
                return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb":
                # skip [options]
                rest = [p for p in parts[1:] if not p.startswith("[") and not p.endswith("]")]
                if len(rest) >= 2 and rest[1] == SUITE and "debian" in rest[0]:
                    return rest[0]
    return "http://deb.debian.org/debian"


@contextlib.contextmanager
def _lock():
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another lab process is building the root file system; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def wheel_dir(pins: list[str]) -> Path:
    """A cached directory of wheels for these pins and everything they pull in, built
    with the host's pip (same Python 3.11 ABI as bookworm): timelib has no wheel on the
    index and the rootfs has no compiler. Also the offline index of the extension test."""
    key = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:12]
    target = CACHE_DIR / f"wheels-{key}"
    if (target / ".complete").is_file():
        return target
    tmp = CACHE_DIR / f"tmp-wheels-{key}-{os.getpid()}"
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    log(f"building wheels for {' '.join(pins)} (host pip)")
    env = dict(os.environ)
    sh(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", tmp, *pins],
        timeout=900,
        env=env,
        what="pip wheel",
    )
    (tmp / ".complete").write_text("\n".join(pins) + "\n")
    remove_tree(target)
    tmp.rename(target)
    return target


def _chroot(root: Path, argv: list[str], timeout: float = 600) -> str:
    return sh(["chroot", root, *argv], timeout=timeout, what=f"chroot {root.name}").stdout


def _build(dest: Path) -> None:
    t0 = time.monotonic()
    tmp = CACHE_DIR / f"tmp-rootfs-{dest.name.split('-', 1)[1]}-{os.getpid()}"
    remove_tree(tmp)
    mirror = debian_mirror()
    debs = CACHE_DIR / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    pins = salt_pins()
    try:
        wheels = wheel_dir(pins)
        log(f"debootstrap {SUITE} minbase from {mirror} into {tmp} (about a minute)")
        sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                f"--cache-dir={debs}",
                SUITE,
                tmp,
                mirror,
            ],
            timeout=1200,
            what="debootstrap",
        )
        log(f"debootstrap done after {time.monotonic() - t0:.0f}s; installing Salt into /opt/salt")
        # each container gets its own machine id at boot
        (tmp / "etc/machine-id").write_text("")
        with contextlib.suppress(FileNotFoundError):
            (tmp / "var/lib/dbus/machine-id").unlink()
        # The containers have no route out: everything the formula installs is already
        # here, and `apt-get update` must succeed quickly instead of timing out.
        (tmp / "etc/apt/sources.list").write_text(
            "# wireguard-formula lab: no network inside the lab, every package is preinstalled\n"
        )
        (tmp / "etc/resolv.conf").unlink(missing_ok=True)
        (tmp / "etc/resolv.conf").write_text("# no DNS inside the lab\n")
        (tmp / "etc/hostname").write_text("lab\n")

        # Salt venv from the host-built wheels, no index.
        wheels_in = tmp / "tmp/wheels"
        shutil.copytree(wheels, wheels_in)
        for sub in ("proc", "dev"):
            (tmp / sub).mkdir(exist_ok=True)
        sh(["mount", "-t", "proc", "proc", tmp / "proc"], what="mount proc")
        sh(["mount", "--rbind", "/dev", tmp / "dev"], what="mount dev")
        sh(["mount", "--make-rslave", tmp / "dev"], what="mount dev")
        try:
            _chroot(tmp, ["/usr/bin/python3", "-m", "venv", "/opt/salt"])
            _chroot(
                tmp,
                [
                    "/opt/salt/bin/pip",
                    "install",
                    "-q",
                    "--no-index",
                    "--disable-pip-version-check",
                    "--no-cache-dir",
                    "--find-links",
                    "/tmp/wheels",
                    *pins,
                ],
                timeout=900,
            )
            _chroot(
                tmp,
                [
                    "/opt/salt/bin/python",
                    "-c",
                    "import salt.version, timelib;print(salt.version.__version__)",
                ],
            )
        finally:
            umount_tree(tmp / "dev")
            umount_tree(tmp / "proc")
        shutil.rmtree(wheels_in)
        for tool in SALT_TOOLS:
            link = tmp / "usr/local/bin" / tool
            link.unlink(missing_ok=True)
            link.symlink_to(f"/opt/salt/bin/{tool}")
        for d in ("etc/salt/master.d", "etc/salt/minion.d", "srv"):
            (tmp / d).mkdir(parents=True, exist_ok=True)

        units = tmp / "etc/systemd/system"
        for name, text in UNITS.items():
            (units / name).write_text(text)
        wants = units / "sysinit.target.wants"
        wants.mkdir(exist_ok=True)
        (wants / "lab-proc-sys-net.service").symlink_to("../lab-proc-sys-net.service")
        for name in MASKED:
            target = units / name
            target.unlink(missing_ok=True)
            target.symlink_to("/dev/null")
        # quieter, faster journald; keep logs in memory
        jd = tmp / "etc/systemd/journald.conf.d"
        jd.mkdir(parents=True, exist_ok=True)
        (jd / "lab.conf").write_text("[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n")

        (tmp / "etc/wireguard-formula-lab.json").write_text(
            json.dumps(
                {"recipe": recipe(), "mirror": mirror, "built": time.time()},
                indent=1,
                sort_keys=True,
            )
            + "\n"
        )
        tmp.rename(dest)
    except BaseException:
        remove_tree(tmp)
        raise
    log(f"root file system ready at {dest} ({time.monotonic() - t0:.0f}s)")


def ensure_rootfs(rebuild: bool = False) -> Path:
    """Return the cached root file system, building it first if needed."""
    dest = rootfs_path()
    if is_ready(dest) and not rebuild:
        return dest
    with _lock():
        if is_ready(dest) and not rebuild:
            return dest
        # leftovers of interrupted builds (we hold the lock: nobody else is building)
        for old in CACHE_DIR.glob("tmp-*"):
            log(f"removing an interrupted build: {old}")
            remove_tree(old)
        if rebuild or dest.exists():
            remove_tree(dest)
        for tool in ("debootstrap", "chroot"):
            if shutil.which(tool, path=CLEAN_ENV["PATH"]) is None:
                raise LabError(f"`{tool}` is missing: run ./lab setup")
        _build(dest)
        # older recipes are never used again
        in_use = Path("/proc/self/mountinfo").read_text()
        for old in CACHE_DIR.glob("rootfs-*"):
            if old != dest and f"lowerdir={old}" not in in_use:
                log(f"removing an outdated root file system: {old}")
                remove_tree(old)
    return dest
