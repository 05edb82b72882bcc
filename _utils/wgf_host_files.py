"""The host adapter's file writes: secrets (0600 from the first byte, atomically), the
files of others it edits (``/etc/hosts``), the metrics textfile, the records confirm
keeps, and the unit files and init scripts it installs. ``wgf_host.Host`` is made of it
(the loader code and the states know only ``Host``); every command stays in
``wgf_host``."""

import contextlib
import errno
import grp
import os
import shutil
import tempfile

from salt.exceptions import CommandExecutionError

import wgf_files


class Files:
    """The writes of ``wgf_host.Host``."""

    def write_secret(self, path, text):
        """Write ``path`` atomically, 0600 from the first byte."""
        wgf_files.write_private(path, text)

    def write_secrets(self, files):
        """Write ``{path: text}`` atomically, each 0600, synced once for all."""
        wgf_files.write_many(files, sync_each=False)

    def remove(self, path):
        """Remove the file ``path`` if it is there."""
        wgf_files.remove(path)

    def read_text(self, path):
        """The text of a file that is not the formula's (``/etc/hosts``), or None when
        there is none; bytes that are not UTF-8 come back as they were when written
        (``surrogateescape``)."""
        try:
            with open(path, "rb") as handle:
                return handle.read().decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return None

    def write_text(self, path, text):
        """Replace a file that is not the formula's (``/etc/hosts``) with ``text``
        atomically, keeping its mode and owner (a new file: 0644 root; a symbolic link:
        its target). Where the file
        cannot be replaced (a container's bind-mounted ``/etc/hosts``: EBUSY), it is
        rewritten in place."""
        data = text.encode("utf-8", "surrogateescape")
        path = os.path.realpath(path)  # a link stays a link: its target is replaced
        try:
            stat = os.stat(path)
            mode, uid, gid = stat.st_mode & 0o7777, stat.st_uid, stat.st_gid
        except FileNotFoundError:
            mode, uid, gid = 0o644, 0, 0
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchown(handle.fileno(), uid, gid)
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            try:
                os.replace(tmp, path)
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.EXDEV):
                    raise
                with open(path, "r+b") as handle:
                    handle.write(data)
                    handle.truncate()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def write_textfile(self, path, registry):
        """``prometheus_client.write_to_textfile``: the registry's exposition into a
        temporary file beside ``path`` (``<path>.<pid>.<thread>``, which node_exporter
        does not read), renamed over it in one step; 0644 from the first byte (the
        umask is set for the write: node_exporter may read it as another user)."""
        from prometheus_client import write_to_textfile

        if os.path.isdir(path):
            raise CommandExecutionError(f"{path} is a directory: name the file to write")
        umask = os.umask(0o022)
        try:
            write_to_textfile(path, registry)
        except OSError as exc:
            raise CommandExecutionError(f"cannot write {path}: {exc.strerror}") from None
        finally:
            os.umask(umask)

    def replace(self, source, target):
        """Put the file ``source`` in ``target``'s place in one step (same directory)."""
        os.replace(source, target)

    def remove_stale_temps(self, path, prefix=None):
        """Remove what a killed run left of an atomic write (``wgf_files``)."""
        wgf_files.remove_stale_temps(path, prefix)

    def make_private_dir(self, path):
        """``path`` is a directory only root enters (0700)."""
        os.makedirs(path, mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)

    def make_private(self, path):
        """The file ``path`` is root's and 0600."""
        os.chown(path, 0, 0)
        os.chmod(path, 0o600)

    def _write_system_file(self, path, text, mode, prefix):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=os.path.dirname(path), prefix=prefix, delete=False
        ) as handle:
            handle.write(text)
        os.chmod(handle.name, mode)
        os.replace(handle.name, path)

    def write_records(self, directory, files):
        """Write ``{name: text}`` into ``directory`` (made 0700, its parent too), each
        0600, atomically."""
        self.make_private_dir(os.path.dirname(directory))
        self.make_private_dir(directory)
        wgf_files.write_many({os.path.join(directory, n): t for n, t in files.items()})

    def remove_records(self, directory):
        """Remove ``directory`` and what it holds (the recorded files hold the key)."""
        shutil.rmtree(directory, ignore_errors=True)

    def write_networkd(self, units, keys, keys_dir, group):
        """The networkd backend's files of one interface (``wgf_networkd``): ``units``
        (``{path: text}``, 0644 root, atomically) and ``keys`` (``{path: text}``) in
        ``keys_dir``, which is made 0750 root:``group`` (its parent too), each key 0640
        root:``group`` from the first byte and renamed into place; other files there
        (a peer's key no longer named) are removed."""
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise CommandExecutionError(
                f"group {group} does not exist: is systemd-networkd installed?"
            ) from None
        for directory in (os.path.dirname(keys_dir), keys_dir):
            os.makedirs(directory, mode=0o750, exist_ok=True)
            os.chown(directory, 0, gid)
            os.chmod(directory, 0o750)
        for path, text in keys.items():
            fd, tmp = tempfile.mkstemp(dir=keys_dir, prefix=".key.")
            try:
                with os.fdopen(fd, "w") as handle:
                    os.fchown(handle.fileno(), 0, gid)
                    os.fchmod(handle.fileno(), 0o640)
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        for name in os.listdir(keys_dir):
            if os.path.join(keys_dir, name) not in keys:
                os.unlink(os.path.join(keys_dir, name))
        for path, text in units.items():
            self._write_system_file(path, text, 0o644, f".{os.path.basename(path)}.")

    def remove_tree(self, path):
        """Remove the file or directory ``path`` (and what it holds) if it is there."""
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            wgf_files.remove(path)
