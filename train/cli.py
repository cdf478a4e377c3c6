"""`derain-train`: run a training recipe from a YAML experiment file with `key.sub=value` overrides.

The YAML's top-level `trainer:` key (or `--trainer`) picks the recipe from the trainer registry:
`supervised` (default), `continual` (CLGID and its baselines), `generator` (one VRGNet rain
generator), `unpaired` (RGSUD: reward-guided unpaired de-raining), `shipped` (the shipped default de-rainer:
data v2 rendered on the fly, trained to a plateau), `temporal` (the video de-rainer: the shipped network given its
previous frame and output, trained on rendered rainy clips).
Multi-GPU / multi-process: `torchrun --nproc_per_node N -m derain.train.cli --yaml ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derain.cli import EXIT_OK, Problems, UsageError, run_main, setup_logging
from derain.config import load_config, read_yaml
from derain.outputs import output_problems, overlap_problem
from derain.registry import Registry

log = logging.getLogger("derain.train.cli")


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
    from derain.train.generator_bank import train_rain_generator

    return {"generator": str(train_rain_generator(config.train_data, config.out, config.generator))}


def _unpaired(config: Any, resume: str | None) -> Any:
    from derain.train.rgsud import train_unpaired

    summary = train_unpaired(config, resume=resume)
    return {"stages": {k: {"iterations": v.get("iterations")} for k, v in summary["stages"].items()}}


def _shipped(config: Any, resume: str | None) -> Any:
    from derain.train.shipped import train_shipped

    return train_shipped(config, resume=resume)


def _temporal(config: Any, resume: str | None) -> Any:
    from derain.train.temporal import train_temporal

    return train_temporal(config, resume=resume)


def _register() -> None:
    from derain.train.continual import ContinualConfig
    from derain.train.generator_bank import GeneratorRunConfig
    from derain.train.rgsud import UnpairedConfig
    from derain.train.shipped import ShippedConfig
    from derain.train.supervised import SupervisedConfig
    from derain.train.temporal import TemporalConfig

    TRAINERS.add("supervised", Trainer(SupervisedConfig, _supervised))
    TRAINERS.add("continual", Trainer(ContinualConfig, _continual))
    TRAINERS.add("generator", Trainer(GeneratorRunConfig, _generator))
    TRAINERS.add("unpaired", Trainer(UnpairedConfig, _unpaired))
    TRAINERS.add("shipped", Trainer(ShippedConfig, _shipped))
    TRAINERS.add("temporal", Trainer(TemporalConfig, _temporal))


INPUT_FIELDS = ("train_data", "test_data", "rain_data", "clean_data", "data_root", "init", "scorer_path")


def input_paths(config: Any) -> list[tuple[str, str]]:
    """(field, path) of every input a config names (datasets, starting weights, saved scorers)."""
    found = []
    for name in INPUT_FIELDS:
        value = getattr(config, name, None)
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and item and item not in ("synthetic", "builtin"):
                found.append((name, item))
    return found


def check_run(config: Any, resume: str | None, overwrite: bool) -> None:
    """Every problem with a run's inputs and output folder, before anything is built or written."""
    problems = Problems()
    inputs = input_paths(config)
    for name, path in inputs:
        if not Path(path).exists():
            problems.add(f"{name}: {path} does not exist")
    out = getattr(config, "out", None)
    if out:
        overlap = overlap_problem(out, [path for _, path in inputs], flag="out")
        if overlap:
            problems.add(overlap)
        if resume and resume != "auto":
            if not Path(resume).is_file():
                problems.add(f"--resume {resume}: no such checkpoint file (give 'auto' or a .pt path)")
            else:
                from derain.models.registry import read_training_state

                problems.attempt(lambda: read_training_state(resume))
        if resume is None and not overwrite:
            if Path(out).is_dir() and any(Path(out).iterdir()):
                problems.add(f"out {out} holds an earlier run; give --resume auto to continue it, --overwrite to set "
                             "it aside and start again, or another out=...")  # fmt: skip
            else:
                problems.extend(output_problems(out, flag="out", kind="folder"))
    problems.raise_if_any()


def set_aside(out: Path) -> Path:
    """Move an earlier run folder to `<out>.replaced-<time>` (nothing is deleted); returns where it went."""
    target = out.with_name(f"{out.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    out.rename(target)
    return target


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
        "--trainer",
        default=None,
        help="recipe: supervised, continual, generator, unpaired, shipped, temporal (default: YAML)",
    )
    parser.add_argument(
        "--resume", default=None, help="'auto' (continue from the run folder's last checkpoint) or a checkpoint path"
    )
    parser.add_argument("--overwrite", action="store_true", help="the run folder holds an earlier run: move it to "
                        "<out>.replaced-<time> and start again (nothing is deleted)")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="config overrides, key.sub=value (e.g. model.name=nafnet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if not TRAINERS.names():
        _register()

    def body() -> int:
        if args.yaml is None and not args.overrides:
            raise UsageError(["give --yaml EXPERIMENT.yaml and/or key=value overrides (see --help)"])
        if args.resume and args.overwrite:
            raise UsageError(["--resume continues an earlier run and --overwrite sets it aside: give one of them"])
        name = args.trainer or read_yaml(args.yaml).get("trainer", "supervised")
        trainer = TRAINERS.get(str(name))
        config = load_config(trainer.config, args.yaml, args.overrides, drop=("trainer",))
        check_run(config, args.resume, args.overwrite)
        out = Path(getattr(config, "out", "") or ".")
        if args.overwrite and getattr(config, "out", None) and out.is_dir() and any(out.iterdir()):
            log.info("the earlier run in %s moved to %s", out, set_aside(out))
        result = trainer.run(config, args.resume)
        print(json.dumps(result, indent=2))
        return EXIT_OK

    return run_main("derain-train", body)


if __name__ == "__main__":
    raise SystemExit(main())
