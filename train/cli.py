"""`derain-train`: run a training recipe from a YAML experiment file with `key.sub=value` overrides.

The YAML's top-level `trainer:` key (or `--trainer`) picks the recipe from the trainer registry:
`supervised` (default), `continual` (CLGID and its baselines), `generator` (one VRGNet rain
generator), `unpaired` (RGSUD: reward-guided unpaired de-raining), `shipped` (the shipped default de-rainer:
data v2 rendered on the fly, trained to a plateau).
Multi-GPU / multi-process: `torchrun --nproc_per_node N -m derain.train.cli --yaml ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from derain.config import ConfigError, load_config, read_yaml
from derain.data.pairing import DatasetError
from derain.models.registry import CheckpointError
from derain.registry import Registry, UnknownNameError


@dataclass(frozen=True)
class Trainer:
    config: type
    run: Callable[[Any, str | None], Any]


TRAINERS: Registry[Trainer] = Registry("trainer")


def _supervised(config: Any, resume: str | None) -> Any:
    from derain.train.supervised import train_supervised

    return {"checkpoint": str(train_supervised(config, resume=resume))}


def _continual(config: Any, resume: str | None) -> Any:
    from derain.train.continual import train_stream

    summary = train_stream(config, resume=resume)
    return {k: v for k, v in summary.items() if k != "final"}


def _generator(config: Any, resume: str | None) -> Any:
    from derain.train.memorize import train_rain_generator

    return {"generator": str(train_rain_generator(config.train_data, config.out, config.generator))}


def _unpaired(config: Any, resume: str | None) -> Any:
    from derain.train.unpaired import train_unpaired

    summary = train_unpaired(config, resume=resume)
    return {"stages": {k: {"iterations": v.get("iterations")} for k, v in summary["stages"].items()}}


def _shipped(config: Any, resume: str | None) -> Any:
    from derain.train.shipped import train_shipped

    return train_shipped(config, resume=resume)


def _register() -> None:
    from derain.train.continual import ContinualConfig
    from derain.train.memorize import GeneratorRunConfig
    from derain.train.shipped import ShippedConfig
    from derain.train.supervised import SupervisedConfig
    from derain.train.unpaired import UnpairedConfig

    TRAINERS.add("supervised", Trainer(SupervisedConfig, _supervised))
    TRAINERS.add("continual", Trainer(ContinualConfig, _continual))
    TRAINERS.add("generator", Trainer(GeneratorRunConfig, _generator))
    TRAINERS.add("unpaired", Trainer(UnpairedConfig, _unpaired))
    TRAINERS.add("shipped", Trainer(ShippedConfig, _shipped))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derain-train",
        description=__doc__ + "\nExamples:\n"
        "  derain-train --yaml train/configs/supervised_synthetic.yaml model.name=nafnet iterations=500\n"
        "  derain-train --yaml train/configs/clgid_synthetic.yaml --resume auto",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--yaml", required=False, help="experiment file (YAML)")
    parser.add_argument(
        "--trainer", default=None, help="recipe: supervised, continual, generator, unpaired, shipped (default: YAML)"
    )
    parser.add_argument(
        "--resume", default=None, help="'auto' (continue from the run folder's last checkpoint) or a checkpoint path"
    )
    parser.add_argument("overrides", nargs="*", help="config overrides, key.sub=value (e.g. model.name=nafnet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not TRAINERS.names():
        _register()
    try:
        name = args.trainer or read_yaml(args.yaml).get("trainer", "supervised")
        trainer = TRAINERS.get(name)
        config = load_config(trainer.config, args.yaml, args.overrides, drop=("trainer",))
        result = trainer.run(config, args.resume)
    except (ConfigError, DatasetError, CheckpointError, UnknownNameError, FileNotFoundError, FileExistsError) as error:
        print(f"derain-train: error: {error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"derain-train: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
