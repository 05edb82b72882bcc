"""The Salt event bus of a lab master, watched from a test: ``salt-run state.event`` in
the background (used by the confirm and the clients e2e tests)."""

from __future__ import annotations

import json
import select
import subprocess
import time

from tests.lab.util import wait_for


class Events:
    """`salt-run state.event` on the hub's master bus, in the background."""

    def __init__(self, hub, tagmatch="*"):
        self.hub = hub
        self.pidfile = f"/run/test-confirm-events-{time.monotonic_ns()}.pid"
        self.proc = hub.popen(
            f"echo $$ > {self.pidfile}; exec salt-run state.event "
            f"'tagmatch={tagmatch}' pretty=False"
        )
        self.seen = ""
        wait_for(lambda: hub.file_exists(self.pidfile), 10, "salt-run state.event", 0.05)
        time.sleep(1.5)  # connected to the bus

    def stop(self) -> str:
        self.hub.run(f"kill -KILL $(cat {self.pidfile}); rm -f {self.pidfile}", check=False)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.seen += out or ""
        return self.seen

    def wait(self, tag: str, timeout: float) -> list[dict]:
        """The data of each event `tag` seen within `timeout` (then it stops)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and f"{tag}\t" not in self.seen:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.seen += line
        found = []
        for line in self.stop().splitlines():
            name, _, data = line.partition("\t")
            if name == tag:
                event = json.loads(data)
                found.append(event.get("data", event))
        return found
