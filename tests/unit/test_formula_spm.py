"""`spm build` of the repository succeeds, and the package installs the formula
together with its execution and state modules.

SPM packs only what FORMULA's `files:` lists (paths relative to the directory it
runs in, the repository root). On install it puts `wireguard/` and `_modules/`,
`_states/` into its formula_path, a file_roots entry, from where
`saltutil.sync_all` ships the modules to the minions. Everything goes to a temp
dir through a private spm config; nothing touches /srv or /etc/salt.
"""

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.support import commands

REPO = Path(__file__).resolve().parents[2]
SPM = Path(sys.executable).parent / "spm"


@pytest.fixture(scope="module")
def spm(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spm")
    (tmp / "db").mkdir()
    conf = {
        "spm_build_dir": str(tmp / "build"),
        "spm_cache_dir": str(tmp / "cache"),
        "cachedir": str(tmp / "cache"),
        "spm_db": str(tmp / "db" / "packages.db"),
        "formula_path": str(tmp / "srv" / "salt"),
        "pillar_path": str(tmp / "srv" / "pillar"),
        "reactor_path": str(tmp / "srv" / "reactor"),
        "spm_share_dir": str(tmp / "share"),
        "spm_logfile": str(tmp / "spm.log"),
        "spm_repos_config": str(tmp / "spm.repos"),
    }
    (tmp / "conf").mkdir()
    (tmp / "conf" / "spm").write_text(yaml.safe_dump(conf))

    def run(*args):
        proc = commands.run([SPM, "-y", "-c", tmp / "conf", *args])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run.tmp = tmp
    run.conf = conf
    return run


@pytest.fixture(scope="module")
def package(spm):
    formula = yaml.safe_load((REPO / "FORMULA").read_text())
    out = spm("build", str(REPO))
    path = Path(spm.conf["spm_build_dir"]) / (
        f"{formula['name']}-{formula['version']}-{formula['release']}.spm"
    )
    assert "Built package" in out and path.exists(), out
    return path


def salt_modules():
    """The repository's Salt loader modules (_modules/, _states/, _beacons/, ...):
    the ones git tracks, so a stray local file does not count."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "_*/*.py"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        return sorted(p for p in proc.stdout.split("\0") if p)
    return sorted(str(p.relative_to(REPO)) for p in REPO.glob("_*/*.py"))


def test_spm_build_packs_the_formula_and_its_modules(package):
    with tarfile.open(package, "r:bz2") as tar:
        names = set(tar.getnames())
    modules = salt_modules()
    assert "_modules/wireguard.py" in modules
    for module in modules:
        assert f"wireguard/{module}" in names, f"{module} is not in FORMULA's files: list"
    for must in (
        "wireguard/FORMULA",
        "wireguard/wireguard/init.sls",
        "wireguard/wireguard/map.jinja",
        "wireguard/wireguard/parameters/defaults.yaml",
        "wireguard/_modules/wireguard.py",
        "wireguard/_states/wireguard.py",
        "wireguard/pillar.example",
        "wireguard/README.md",
    ):
        assert must in names, must
    # the worked examples, one pillar file per minion (spm install leaves them in the
    # package: it unpacks only the top-level dir, _* modules, pillar.example, README)
    examples = [str(p.relative_to(REPO)) for p in (REPO / "examples").rglob("*") if p.is_file()]
    assert "examples/two-sites-behind-nat/site-a.sls" in examples
    for path in examples:
        assert f"wireguard/{path}" in names, f"{path} is not in the package"
    # the documentation the README links to
    pages = [str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")]
    assert "docs/pillar.md" in pages
    for path in pages:
        assert f"wireguard/{path}" in names, f"{path} is not in the package"
    # only what the formula needs: no tests, venv or VCS data
    for name in names:
        assert not name.startswith(("wireguard/tests", "wireguard/.venv", "wireguard/.git")), name
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_spm_install_puts_modules_where_sync_all_finds_them(spm, package):
    spm("local", "install", str(package))
    root = Path(spm.conf["formula_path"])
    assert (root / "wireguard" / "init.sls").is_file()
    assert (root / "wireguard" / "parameters" / "os_family" / "Alpine.yaml").is_file()
    assert (root / "_modules" / "wireguard.py").read_bytes() == (
        REPO / "_modules" / "wireguard.py"
    ).read_bytes()
    for module in salt_modules():
        assert (root / module).read_bytes() == (REPO / module).read_bytes(), module
    assert "wireguard" in spm("list", "packages").split()
    assert "Supported OS families: Debian, RedHat, Arch, Suse, Alpine" in spm("info", "wireguard")
