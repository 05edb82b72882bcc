"""Linters as tests: each fails on any finding.

- yamllint over every YAML file of the repository (.yamllint says which);
- salt-lint over the formula's SLS files and Jinja libraries (.salt-lint);
- ruff over the repository's Python (pyproject.toml), and `ruff format`: the code is
  formatted as the formatter writes it;
- shellcheck over the shell scripts: ./lab and .ci/run;
- .pre-commit-config.yaml runs the same three, the same way, before a commit;
- FORMULA has what SPM needs.
"""

import re
import sys
from pathlib import Path

import yaml

from tests.support import commands

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# each linter's command line, run by these tests and by the pre-commit hooks
YAMLLINT = ("yamllint", "--strict", "--format", "parsable", ".")
SALT_LINT = ("salt-lint", "-c", ".salt-lint")  # + the formula's files
RUFF = ("ruff", "check", "--no-cache", ".")
RUFF_FORMAT = ("ruff", "format", "--check", "--no-cache", ".")
SHELLCHECK = ("shellcheck", "lab", ".ci/run")  # /usr/bin: ./lab installs it


def run(*argv):
    proc = commands.run(argv)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def formula_files():
    files = sorted(p for p in (REPO / "wireguard").rglob("*") if p.suffix in (".sls", ".jinja"))
    assert len(files) >= 20, files
    return [str(p.relative_to(REPO)) for p in files]


def test_yamllint_clean():
    rc, out = run(str(BIN / YAMLLINT[0]), *YAMLLINT[1:])
    assert rc == 0, out
    # it really looked at the formula's YAML
    rc, out = run(str(BIN / "yamllint"), "--list-files", ".")
    listed = set(out.splitlines())
    for must in (
        "FORMULA",
        ".yamllint",
        ".salt-lint",
        ".pre-commit-config.yaml",
        "wireguard/parameters/defaults.yaml",
        "wireguard/parameters/os_family/Alpine.yaml",
        "pillar.example",
        "examples/two-sites-behind-nat/site-a.sls",
        "examples/two-sites-behind-nat/top.sls",
    ):
        assert must in listed or f"./{must}" in listed, (must, sorted(listed))


def test_salt_lint_clean():
    rc, out = run(str(BIN / SALT_LINT[0]), *SALT_LINT[1:], *formula_files())
    assert rc == 0 and not out, out


def test_salt_lint_finds_problems(tmp_path):
    """Guard against a linter that passes everything: a bad SLS is reported."""
    bad = tmp_path / "bad.sls"
    bad.write_text("probe:\n  file.managed:\n    - name: /tmp/x\n    - mode: 0644\n")
    rc, out = run(str(BIN / "salt-lint"), "-c", ".salt-lint", str(bad))
    assert rc != 0 and "0644" in out, out


def test_ruff_clean():
    rc, out = run(str(BIN / RUFF[0]), *RUFF[1:])
    assert rc == 0, out


def test_ruff_format_clean():
    rc, out = run(str(BIN / RUFF_FORMAT[0]), *RUFF_FORMAT[1:])
    assert rc == 0, out


def test_shellcheck_clean():
    rc, out = run(*SHELLCHECK)
    assert rc == 0 and not out, out


def test_shellcheck_finds_problems(tmp_path):
    """Guard against a linter that passes everything: an unquoted expansion is reported."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")
    rc, out = run("shellcheck", str(bad))
    assert rc != 0 and "SC2086" in out, out


def pre_commit_hooks():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def test_pre_commit_runs_the_linters_as_these_tests_do():
    hooks = pre_commit_hooks()
    assert sorted(hooks) == ["ruff", "ruff-format", "salt-lint", "shellcheck", "yamllint"]
    for hook_id, command in (
        ("yamllint", YAMLLINT),
        ("salt-lint", SALT_LINT),
        ("ruff", RUFF),
        ("ruff-format", RUFF_FORMAT),
    ):
        hook = hooks[hook_id]
        assert hook["language"] == "system", hook
        assert hook["entry"].split() == [f".venv/bin/{command[0]}", *command[1:]], hook
    assert hooks["shellcheck"]["entry"].split() == list(SHELLCHECK)
    assert hooks["shellcheck"]["pass_filenames"] is False
    # ruff and yamllint choose their files from their own configuration, as here
    for hook_id in ("ruff", "ruff-format", "yamllint"):
        assert hooks[hook_id]["pass_filenames"] is False, hook_id
    # salt-lint gets exactly the files its test lints
    tracked = run("git", "ls-files", "*.sls", "*.jinja")[1].splitlines()
    salt_lint_files = re.compile(hooks["salt-lint"]["files"])
    assert sorted(f for f in tracked if salt_lint_files.search(f)) == formula_files()


def test_pre_commit_hooks_run_clean():
    """Each hook's command, run the way pre-commit runs it, passes on this tree."""
    hooks = pre_commit_hooks()
    for hook_id, files in (
        ("ruff", []),
        ("yamllint", []),
        ("salt-lint", formula_files()),
        ("shellcheck", []),
    ):
        rc, out = run(*hooks[hook_id]["entry"].split(), *files)
        assert rc == 0, f"{hook_id}: {out}"


def test_formula_file_is_valid_for_spm():
    formula = yaml.safe_load((REPO / "FORMULA").read_text())
    for field in (
        "name",
        "os",
        "os_family",
        "version",
        "release",
        "summary",
        "description",
        "top_level_dir",
    ):
        assert formula.get(field), field
    assert formula["name"] == formula["top_level_dir"] == "wireguard"
    families = {f.strip() for f in formula["os_family"].split(",")}
    assert families == {"Debian", "RedHat", "Arch", "Suse", "Alpine"}
    # every OS family FORMULA names has its parameters file, and no other
    have = {p.stem for p in (REPO / "wireguard" / "parameters" / "os_family").glob("*.yaml")}
    assert have == families
    for path in formula["files"]:
        assert (REPO / path).exists(), f"FORMULA lists {path}, which does not exist"
