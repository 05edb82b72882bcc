"""The disk image every lab guest (a QEMU virtual machine) boots: the kernel tier.

The container root file system (tests/lab/rootfs.py: systemd, Salt in /opt/salt, the
formula's test needs) plus Debian's cloud kernel (`linux-image-cloud-amd64`, which has
WireGuard as a module), udev and the QEMU guest agent, made into a raw ext4 image with
`mkfs.ext4 -d`. The kernel and initrd are kept beside it (QEMU boots them directly, no
boot loader). Cached under /var/cache/wireguard-formula-lab/guest-<hash>, where the hash
covers the container recipe and the one below; built in tmp-guest-* and renamed when
complete, like the root file system. Each guest boots a copy-on-write qcow2 overlay of
`disk.img` (tests/lab/guest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from . import rootfs as rootfs_mod
from .util import CACHE_DIR, LabError, log, remove_tree, sh, umount_tree

# Bump when the build steps change in a way the recipe below does not show.
RECIPE_VERSION = 1
PACKAGES = ["linux-image-cloud-amd64", "initramfs-tools", "udev", "qemu-guest-agent"]
DISK_SIZE = "2G"

# At every boot, before the network is up: the lab's per-guest script names the NICs
# (by MAC address) and sets their addresses and routes, as `ip -n` does from the outside
# for a container (a guest's own kernel owns its network: nothing reaches in).
UNITS = {
    "lab-net.service": """\
[Unit]
Description=Lab: name the NICs and set addresses and routes (/etc/lab-net.sh)
DefaultDependencies=no
After=systemd-udevd.service
Before=network-pre.target network.target
Wants=network-pre.target
ConditionPathExists=/etc/lab-net.sh

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh /etc/lab-net.sh

[Install]
WantedBy=sysinit.target
""",
}
# serial-getty would take the serial console (the boot log); the guest agent is how
# the lab runs commands
MASKED = [
    "serial-getty@ttyS0.service",
    "lab-proc-sys-net.service",
    # TCG makes every unit at boot cost: only what a server needs
    "e2scrub_reap.service",
    "systemd-pstore.service",
    "dpkg-db-backup.timer",
    "remote-fs.target",
    "getty@tty1.service",
]
# A small initrd (unpacked by an emulated CPU at every boot): only what finds the root
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4"]


def recipe() -> dict:
    return {
        "version": RECIPE_VERSION,
        "rootfs": rootfs_mod.recipe_hash(),
        "packages": PACKAGES,
        "units": UNITS,
        "masked": MASKED,
        "size": DISK_SIZE,
        "initrd": INITRD_MODULES,
    }


def image_path() -> Path:
    blob = json.dumps(recipe(), sort_keys=True).encode()
    return CACHE_DIR / f"guest-{hashlib.sha256(blob).hexdigest()[:12]}"


def is_ready(path: Path | None = None) -> bool:
    return ((path or image_path()) / "recipe.json").is_file()


def _chroot(root: Path, script: str, timeout: float = 900) -> None:
    sh(
        ["chroot", root, "/bin/sh", "-ec", script],
        timeout=timeout,
        what="guest image",
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
        },
    )


def _build(dest: Path, base: Path) -> None:
    t0 = time.monotonic()
    tmp = CACHE_DIR / f"tmp-guest-{dest.name.split('-', 1)[1]}-{os.getpid()}"
    remove_tree(tmp)
    upper, work, merged = tmp / "upper", tmp / "work", tmp / "merged"
    for d in (upper, work, merged):
        d.mkdir(parents=True)
    out = tmp / "image"
    out.mkdir()
    mirror = rootfs_mod.debian_mirror()
    try:
        sh(
            [
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                f"lowerdir={base},upperdir={upper},workdir={work}",
                merged,
            ],
            what="guest image",
        )
        sources = merged / "etc/apt/sources.list"
        sources_text = sources.read_text()
        resolv = merged / "etc/resolv.conf"
        resolv_text = resolv.read_text()
        sources.write_text(f"deb {mirror} {rootfs_mod.SUITE} main\n")
        resolv.write_text(Path("/etc/resolv.conf").read_text())
        sh(["mount", "-t", "proc", "proc", merged / "proc"], what="guest image")
        sh(["mount", "--rbind", "/dev", merged / "dev"], what="guest image")
        sh(["mount", "--make-rslave", merged / "dev"], what="guest image")
        conf = merged / "etc/initramfs-tools"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "modules").write_text("\n".join(INITRD_MODULES) + "\n")
        (conf / "conf.d").mkdir(exist_ok=True)
        (conf / "conf.d/lab.conf").write_text("MODULES=list\nCOMPRESS=gzip\n")
        try:
            log(f"guest image: installing {' '.join(PACKAGES)} (about a minute)")
            _chroot(
                merged,
                "apt-get -q update >/dev/null; "
                "apt-get install -y -q --no-install-recommends "
                f"{' '.join(PACKAGES)} >/dev/null; apt-get clean; "
                "rm -rf /var/lib/apt/lists/*",
            )
        finally:
            umount_tree(merged / "dev")
            umount_tree(merged / "proc")
        sources.write_text(sources_text)
        resolv.write_text(resolv_text)
        (merged / "etc/fstab").write_text("/dev/vda / ext4 defaults 0 1\n")
        units = merged / "etc/systemd/system"
        for name, text in UNITS.items():
            (units / name).write_text(text)
        wants = units / "sysinit.target.wants"
        wants.mkdir(exist_ok=True)
        (wants / "lab-net.service").symlink_to("../lab-net.service")
        (wants / "lab-proc-sys-net.service").unlink(missing_ok=True)
        for name in MASKED:
            (units / name).unlink(missing_ok=True)
            (units / name).symlink_to("/dev/null")
        boot = merged / "boot"
        kernels = sorted(boot.glob("vmlinuz-*"))
        initrds = sorted(boot.glob("initrd.img-*"))
        if not kernels or not initrds:
            raise LabError(f"guest image: no kernel or initrd in {boot}")
        for src, name in ((kernels[-1], "vmlinuz"), (initrds[-1], "initrd.img")):
            (out / name).write_bytes(src.read_bytes())
        sh(
            ["mkfs.ext4", "-q", "-L", "labroot", "-d", merged, out / "disk.img", DISK_SIZE],
            timeout=300,
            what="guest image",
        )
        (out / "recipe.json").write_text(
            json.dumps({"recipe": recipe(), "kernel": kernels[-1].name, "built": time.time()})
            + "\n"
        )
        umount_tree(merged)
        out.rename(dest)
    finally:
        remove_tree(tmp)
    log(f"guest image ready at {dest} ({time.monotonic() - t0:.0f}s)")


def ensure_image(rebuild: bool = False) -> Path:
    """The cached guest image directory (disk.img, vmlinuz, initrd.img), built if needed."""
    dest = image_path()
    if is_ready(dest) and not rebuild:
        return dest
    base = rootfs_mod.ensure_rootfs()
    with rootfs_mod._lock():
        if is_ready(dest) and not rebuild:
            return dest
        for old in CACHE_DIR.glob("tmp-guest-*"):
            remove_tree(old)
        remove_tree(dest)
        _build(dest, base)
        for old in CACHE_DIR.glob("guest-*"):
            if old != dest:
                log(f"removing an outdated guest image: {old}")
                remove_tree(old)
    return dest
