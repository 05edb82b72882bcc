"""End-to-end tests: real systemd containers, a real salt-master serving this checkout,
real salt-minions, real wireguard-go tunnels, real packets (see docs/lab.md).

One lab (management switch + salt-master container) lives for the whole session; each
test module or topology adds its containers and namespaces in a `lab.section()` that
removes them again, also when a test fails or the run is interrupted. The topologies of
examples/ that several modules use are built once (`shared_deployments`), and the
modules that use them run one after the other (`E2E_ORDER`).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.e2e.auditing import REACTOR_CONF, REACTOR_CONF_PATH
from tests.e2e.deployments import SharedDeployments, ready
from tests.lab.util import CLEAN_ENV

# The order of the e2e modules: those sharing a deployment of examples/ run one after
# the other (audit, lifecycle and verify: mesh; hardening: laptop-server; then
# test_topologies, which starts with those two), and the modules whose hosts carry
# the same names as a shared deployment's (test_readme: server, laptop) run before
# it is built. Modules not listed run after these, in name order.
E2E_ORDER = (
    "test_lab_smoke.py",
    "test_readme.py",
    "test_clients.py",
    "test_firewall.py",
    "test_layout.py",
    "test_networks.py",
    "test_psk.py",
    "test_live_changes.py",
    "test_audit.py",
    "test_lifecycle.py",
    "test_verify.py",
    "test_hardening.py",
    "test_topologies.py",
)


def pytest_collection_modifyitems(config, items):
    e2e = [i for i, item in enumerate(items) if "/tests/e2e/" in str(item.fspath)]
    for i in e2e:
        items[i].add_marker(pytest.mark.e2e)

    def rank(item):
        name = item.fspath.basename
        return E2E_ORDER.index(name) if name in E2E_ORDER else len(E2E_ORDER)

    ordered = sorted((items[i] for i in e2e), key=rank)  # stable: a module's own order
    for i, item in zip(e2e, ordered, strict=True):
        items[i] = item


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

    with Lab("e2e", master_files={REACTOR_CONF_PATH: REACTOR_CONF}) as the_lab:
        yield the_lab


@pytest.fixture
def section(lab):
    """Hosts created by the test are removed when it ends."""
    with lab.section():
        yield lab


@pytest.fixture(scope="session")
def shared_deployments(lab):
    """The topologies of examples/, each built once for every module that uses it."""
    pool = SharedDeployments(lab)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def mesh(shared_deployments):
    """examples/mesh, applied and handshaking (shared with the other modules using it)."""
    return ready(shared_deployments.get("mesh"))


@pytest.fixture
def restore(mesh):
    """Put examples/mesh back on the minions the test changed, and handshake."""
    yield mesh
    ready(mesh)


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
