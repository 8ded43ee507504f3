"""`python -m llmlens.demo ...` behaves like `llmlens demo ...` (useful before or without the CLI)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmlens.demo.commands import register


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmlens")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
