"""`derain-train`: train a de-raining network from a YAML experiment file with `key.sub=value` overrides."""

from __future__ import annotations

import argparse
import logging
import sys

from derain.config import ConfigError, load_config
from derain.data.pairing import DatasetError
from derain.train.supervised import SupervisedConfig, train_supervised


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derain-train",
        description="Train a de-raining network. Example: "
        "derain-train --yaml train/configs/supervised_synthetic.yaml model.name=nafnet iterations=500",
    )
    parser.add_argument("--yaml", required=False, help="experiment file (YAML)")
    parser.add_argument(
        "--resume", default=None, help="'auto' (newest checkpoint in the run folder) or a checkpoint path"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, key.sub=value (e.g. model.name=nafnet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = load_config(SupervisedConfig, args.yaml, args.overrides)
        final = train_supervised(config, resume=args.resume)
    except (ConfigError, DatasetError, FileNotFoundError) as error:
        print(f"derain-train: error: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
