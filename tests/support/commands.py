"""Running a command from the tests: no shell, no stdin, its output captured as text,
by default in the repository."""

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(argv, timeout=300, cwd=REPO, **kwargs):
    """``argv`` run to its end (each item made a string): the completed process."""
    return subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )
