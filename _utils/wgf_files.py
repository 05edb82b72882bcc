"""Files that hold secrets: written atomically (a killed run never leaves a
half-written file, only a ``.<name>.*`` temporary the next run removes), 0600 from the
first byte, in a directory only root enters."""

import contextlib
import os
import shutil
import tempfile

from salt.exceptions import CommandExecutionError, SaltInvocationError


def _temp_prefix(path):
    return f".{os.path.basename(path)}."


def remove_stale_temps(path, prefix=None):
    """Remove what a killed run left of an atomic write of ``path`` (with ``prefix``
    ".": of any file in the directory of ``path``)."""
    directory = os.path.dirname(path)
    if os.path.isdir(directory):
        for entry in os.listdir(directory):
            if entry.startswith(prefix or _temp_prefix(path)):
                os.unlink(os.path.join(directory, entry))


def _not_a_directory(path):
    return CommandExecutionError(
        f"{path} is a directory, where the formula keeps a file: move it out of the way"
    )


def write_many(files, sync_each=True):
    """Write ``{path: text or bytes}`` atomically, each 0600; ``sync_each=False`` syncs
    once for all of them (a thousand key files)."""
    for path in files:
        if os.path.isdir(path):  # os.replace would fail half-way through the files
            raise _not_a_directory(path)
    temps = {}
    try:
        for directory in {os.path.dirname(path) for path in files}:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        for path, data in files.items():
            directory = os.path.dirname(path)
            fd, temps[path] = tempfile.mkstemp(dir=directory, prefix=_temp_prefix(path))
            with os.fdopen(fd, "wb") as handle:  # mkstemp: 0600 from the first byte
                handle.write(data.encode("ascii") if isinstance(data, str) else data)
                if sync_each:
                    handle.flush()
                    os.fsync(handle.fileno())
        if not sync_each:
            os.sync()
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def write_private(path, data):
    """Write ``data`` (text or bytes) to ``path`` atomically, mode 0600."""
    write_many({path: data})


def remove(path):
    """Remove the file ``path`` if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def read(path):
    """The text of ``path``, or None when there is no such file; a directory there is
    refused (CommandExecutionError naming it)."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise _not_a_directory(path) from None


def read_key(path):
    """The key a key file holds (stripped), or None when there is none."""
    return (read(path) or "").strip() or None


@contextlib.contextmanager
def key_files():
    """``put(key) -> path``: each key ``wg`` reads from a file, in a 0600 file of a 0700
    directory under /run (a tmpfs: never on a disk), removed with it afterwards. A key
    never reaches a command line, where ``ps`` would show it."""
    directory = tempfile.mkdtemp(
        prefix="wireguard-", dir="/run" if os.access("/run", os.W_OK) else None
    )

    def put(key):
        fd, path = tempfile.mkstemp(dir=directory)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key + "\n")
        return path

    try:
        yield put
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def refuse_inside(path, directory, what, why):
    """Raise when ``path`` is ``directory`` or inside it, once both are resolved as the
    kernel would (symlinks, ``..``): a file written at a path a user gives must not land
    among the formula's own files."""
    real, base = os.path.realpath(path), os.path.realpath(directory)
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        raise SaltInvocationError(
            f"{what} {path!r} is {'' if real == base else 'inside '}the formula's directory "
            f"{directory}: {why}"
        )
