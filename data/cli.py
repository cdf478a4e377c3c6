"""`derain-data`: built-in rain data. `derain-data synth` writes rain domains to disk in the seeds' layout;
`derain-data domains` lists the domains."""

from __future__ import annotations

import argparse

from derain.cli import Problems, UsageError, number_problems, run_main, setup_logging
from derain.data.rain import RAIN_DOMAINS
from derain.data.synth import synthesize
from derain.frames import MIN_SIDE
from derain.outputs import output_problems


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
    synth.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    commands.add_parser("domains", help="list the rain domains")
    return parser


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError([f"--size must look like 256x256, found {text!r}"]) from None
    return height, width


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    return run_main("derain-data", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    if args.command == "domains":
        for name in RAIN_DOMAINS:
            print(f"{name:16s} {RAIN_DOMAINS.get(name).description}")
        return 0
    problems = Problems()
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    if not domains:
        problems.add("--domains names no domain")
    for domain in domains:
        if domain not in RAIN_DOMAINS:
            problems.add(f"unknown rain domain {domain!r}; known: {', '.join(RAIN_DOMAINS.names())}")
    size = problems.attempt(lambda: parse_size(args.size))
    if size is not None:
        problems.extend(number_problems({"--size height": size[0], "--size width": size[1]}, minimum=MIN_SIDE))
    problems.extend(number_problems({"--n-train": args.n_train, "--n-test": args.n_test}, minimum=0))
    problems.extend(output_problems(args.out, overwrite=args.overwrite))
    problems.raise_if_any()
    folders = synthesize(domains, args.out, args.n_train, args.n_test, size=size, seed=args.seed)
    for domain, folder in folders.items():
        print(f"{domain}: {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
