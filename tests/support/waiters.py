"""Clean-up after a functional test that lets one of the formula's detached waiters run
(confirm's undo, client expiry, the quota saver's OpenRC loop): the waiter leaves the
test's cgroup for one of its own, as it leaves salt-minion's."""

import contextlib
import os
import signal
import time

#: The cgroup v2 hierarchy of this machine.
CGROUP2 = next(
    root
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
    if os.path.exists(f"{root}/cgroup.controllers")
)


def _ended(pid):
    """Whether process ``pid`` has ended (a zombie has: only its parent's wait is left)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def stop_waiter(record, cgroup):
    """Kill the process group whose id the file ``record`` holds (when it does) and wait
    for its leader to end (a SIGKILL is delivered when the process next runs: on a busy
    machine, later than the next line of a test), then remove the waiter's cgroup
    ``CGROUP2/<cgroup>`` once its processes are gone."""
    text = record.read_text().strip() if record.exists() else ""
    if text.isdigit():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(text), signal.SIGKILL)
        for _ in range(50):
            if _ended(int(text)):
                break
            time.sleep(0.1)
    for _ in range(50):
        try:
            os.rmdir(f"{CGROUP2}/{cgroup}")
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
