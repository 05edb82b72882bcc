"""End-to-end tests: real systemd containers, a real salt-master serving this checkout,
real salt-minions, real wireguard-go tunnels, real packets (see docs/lab.md).

One lab (management switch + salt-master container) lives for the whole session; each
test module or topology adds its containers and namespaces in a `lab.section()` that
removes them again, also when a test fails or the run is interrupted.
"""

from __future__ import annotations

import copy
import os
import shutil

import pytest

from tests.e2e.deployments import deployment, reachable
from tests.lab.util import CLEAN_ENV


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, overlay mounts, systemd-nspawn)"
    missing = [
        t
        for t in ("systemd-nspawn", "debootstrap", "nsenter")
        if shutil.which(t, path=CLEAN_ENV["PATH"]) is None
    ]
    if missing:
        return f"missing {', '.join(missing)}: run ./lab setup"
    return None


@pytest.fixture(scope="session")
def lab():
    reason = _lab_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"e2e lab unavailable in CI: {reason}")
        pytest.skip(reason)
    from tests.lab.lab import Lab

    with Lab("e2e") as the_lab:
        yield the_lab


@pytest.fixture
def section(lab):
    """Hosts created by the test are removed when it ends."""
    with lab.section():
        yield lab


@pytest.fixture(scope="module")
def mesh(lab):
    """examples/mesh, applied and handshaking, for the tests of one module."""
    with deployment(lab, "mesh") as dep:
        yield dep


@pytest.fixture
def restore(mesh):
    """Put examples/mesh back on every minion after the test, and handshake."""
    yield mesh
    mesh.apply(copy.deepcopy(mesh.base))
    reachable(mesh)


def pytest_terminal_summary(terminalreporter):
    from tests.lab.topologies import TIMINGS

    if not TIMINGS:
        return
    tr = terminalreporter
    tr.section("lab timings (seconds)")
    tr.write_line(
        f"{'topology':22s} {'containers':>10s} {'boot':>6s} {'ready':>6s} "
        f"{'build':>6s} {'apply':>6s}"
    )
    for t in TIMINGS:
        tr.write_line(
            f"{t['topology']:22s} {t['containers']:>10d} {t['boot']:6.1f} "
            f"{t['ready']:6.1f} {t['build']:6.1f} {t.get('apply', 0):6.1f}"
        )
