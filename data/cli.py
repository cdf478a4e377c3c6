"""`derain-data`: built-in rain data. `derain-data synth` writes rain domains to disk in the seeds' layout;
`derain-data domains` lists the domains."""

from __future__ import annotations

import argparse
import logging
import sys

from derain.data.rain import RAIN_DOMAINS
from derain.data.synth import synthesize
from derain.registry import UnknownNameError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="derain-data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser(
        "synth", help="render built-in rain domains to <out>/<domain>/{train,test}/{rain,norain}"
    )
    synth.add_argument(
        "--domains", required=True, help=f"comma-separated domain names ({', '.join(RAIN_DOMAINS.names())})"
    )
    synth.add_argument("--out", required=True, help="output root, e.g. Derain/syn")
    synth.add_argument("--n-train", type=int, default=200, help="training pairs per domain")
    synth.add_argument("--n-test", type=int, default=50, help="test pairs per domain")
    synth.add_argument("--size", default="256x256", help="image size HxW (default 256x256)")
    synth.add_argument("--seed", type=int, default=0)
    commands.add_parser("domains", help="list the rain domains")
    return parser


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x256, found {text!r}") from None
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "domains":
        for name in RAIN_DOMAINS:
            print(f"{name:16s} {RAIN_DOMAINS.get(name).description}")
        return 0
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    try:
        size = parse_size(args.size)
        folders = synthesize(domains, args.out, args.n_train, args.n_test, size=size, seed=args.seed)
    except (UnknownNameError, argparse.ArgumentTypeError) as error:
        print(f"derain-data: error: {error}", file=sys.stderr)
        return 2
    for domain, folder in folders.items():
        print(f"{domain}: {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
