"""`python -m llmlens.pricing`: refresh the price file, or price one call from the command line."""

from __future__ import annotations

import argparse
import sys

from . import PriceBook, update_price_file


def token_count(text: str) -> int:
    """argparse type of a token count: a whole number >= 0 (also used by `llmlens pricing cost`)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmlens.pricing", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    upd = sub.add_parser("update", help="rewrite a price file from LiteLLM's JSON or a litellm-*.whl")
    upd.add_argument("source")
    upd.add_argument("--dest", help="default: the price file bundled with llmlens")
    upd.add_argument("--litellm-version", help="recorded in the file (read from a wheel's name otherwise)")
    cost = sub.add_parser("cost", help="price one call with the default price book")
    cost.add_argument("model")
    cost.add_argument("--provider")
    for flag in ("--input", "--output", "--cached", "--reasoning"):
        cost.add_argument(flag, type=token_count, default=0, metavar="N")
    args = parser.parse_args(argv)

    try:
        if args.command == "update":
            n = update_price_file(args.source, args.dest, litellm_version=args.litellm_version)
            print(f"wrote {n} models")
            return 0
        usd = PriceBook.default().cost(
            args.model,
            args.provider,
            input_tokens=args.input,
            output_tokens=args.output,
            cached_input_tokens=args.cached,
            reasoning_tokens=args.reasoning,
        )
    except ValueError as exc:  # a bad source file, or bad overrides in $LLMLENS_PRICES_FILE
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the destination of `update`
        print(f"error: cannot write {args.dest or 'the bundled price file'}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if usd is None:
        print(f"unpriced: no price for {args.model!r}", file=sys.stderr)
        return 1
    print(f"{usd:.10f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
