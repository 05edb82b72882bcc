"""Entry point of ./lab: python -m tests.lab.cli {test,demo,clean,rootfs} ARGS."""

from __future__ import annotations

import argparse
import sys

from . import rootfs
from .util import LabError, log, require_root


def cmd_rootfs(args) -> int:
    require_root()
    path = rootfs.ensure_rootfs(rebuild=args.rebuild)
    log(f"root file system: {path}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="./lab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rootfs", help="build (or reuse) the cached root file system")
    p.add_argument("--rebuild", action="store_true")
    p.set_defaults(func=cmd_rootfs)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
