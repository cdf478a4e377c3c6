"""Recipe fingerprints: every training recipe, run short with a fixed seed, and the weights it ends with.

Usage:
  python benchmarks/recipe_fingerprints.py --record DIR     # run every recipe, keep its final weights in DIR
  python benchmarks/recipe_fingerprints.py --compare DIR    # run again, compare with DIR (max |difference|)

A refactor of the training code that keeps behaviour gives the same weights (to 1e-6) for every recipe: supervised,
the continual methods (CLGID with GAN replay, with renderer replay to a plateau, sequential, joint, individual),
one rain generator, RGSUD (two stages; plug-in with its warm-up) and the shipped recipe. One CPU thread, so the
numbers do not depend on how work is split between threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

TINY = {"widths": [8, 16, 16], "blocks": [1, 1, 1], "decoder_blocks": [1, 1]}
TINY_GAN = {"iterations": 6, "batch_size": 4, "checkpoint_every": 3, "background_stages": 1, "background_channels": 8,
            "milestones": [0.5]}  # fmt: skip


def weights(path: Path) -> dict[str, torch.Tensor]:
    from derain.models.registry import read_checkpoint

    return {key: value.float() for key, value in read_checkpoint(path)["weights"].items()}


def data(root: Path) -> Path:
    from derain.data.synth import synthesize, synthesize_split

    synthesize(["rain100H", "rain100L"], root, n_train=8, n_test=2, size=(64, 64), seed=3)
    for name in ("rain100H", "rain100L"):
        synthesize_split(name, "val", 2, root / name / "val", size=(64, 64), seed=4)
    return root


def supervised(root: Path, out: Path) -> dict[str, dict]:
    from derain.models.registry import ModelSpec
    from derain.train.supervised import SupervisedConfig, train_supervised

    config = SupervisedConfig(train_data=(str(root / "rain100L" / "train"),), model=ModelSpec("realtime", TINY),
                              out=str(out), patch_size=32, batch_size=4, iterations=6, lr=1e-3, warmup_iterations=2,
                              checkpoint_every=3, log_every=2, device="cpu", seed=5)  # fmt: skip
    return {"final": weights(train_supervised(config))}


def continual(root: Path, out: Path, **changes: object) -> dict[str, dict]:
    from derain.models.registry import ModelSpec
    from derain.train.continual import ContinualConfig, task_dir, task_names, train_stream
    from derain.train.generator_bank import GeneratorConfig

    values = dict(data_root=str(root), stream=("rain100H", "rain100L"), model=ModelSpec("realtime", TINY),
                  out=str(out / "run"), bank=str(out / "bank"), generator=GeneratorConfig(**TINY_GAN), iterations=6,
                  batch_size=4, patch_size=32, checkpoint_every=3, log_every=2, device="cpu", seed=11)  # fmt: skip
    values.update(changes)
    config = ContinualConfig(**values)
    train_stream(config)
    return {f"task{i + 1}": weights(task_dir(config, i) / "final.pt") for i in range(len(task_names(config)))}


def generator(root: Path, out: Path) -> dict[str, dict]:
    from derain.train.generator_bank import GeneratorConfig, train_rain_generator

    config = GeneratorConfig(**{**TINY_GAN, "similarity_every": 3, "similarity_samples": 8})
    return {"generator": weights(train_rain_generator(root / "rain100H" / "train", out, config))}


def unpaired(root: Path, out: Path, init: str = "") -> dict[str, dict]:
    from derain.models.registry import ModelSpec
    from derain.train.rgsud import UnpairedConfig, train_unpaired

    config = UnpairedConfig(rain_data=str(root / "rain100H" / "train" / "rain"),
                            clean_data=str(root / "rain100L" / "train" / "norain"),
                            test_data=str(root / "rain100H" / "test"), model=ModelSpec("realtime", TINY),
                            transfer={"width": 8, "blocks": 1}, discriminator={"ndf": 8}, dem={"width": 8},
                            out=str(out), init=init, plugin_warmup=2 if init else 0, patch_size=32, batch_size=2,
                            stage1_iterations=4, stage2_iterations=4, scorer="niqe", niqe_block=16, sweep_every=2,
                            val_every=2, checkpoint_every=2, log_every=1, device="cpu")  # fmt: skip
    train_unpaired(config)
    stages = ["stage2"] if init else ["stage1", "stage2"]
    return {stage: weights(out / f"{stage}_final.pt") for stage in stages}


def shipped(out: Path) -> dict[str, dict]:
    from derain.models.registry import ModelSpec
    from derain.train.shipped import ShippedConfig, train_shipped

    config = ShippedConfig(model=ModelSpec("realtime", TINY), out=str(out), pool=4, batch_size=4, patch_size=32,
                           val_every=3, val_images=4, max_iterations=6, lr=2e-3, warmup_iterations=2,
                           device="cpu")  # fmt: skip
    train_shipped(config)
    return {"best": weights(out / "best.pt")}


def run_all(work: Path) -> dict[str, dict[str, dict]]:
    root = data(work / "data")
    results = {"supervised": supervised(root, work / "supervised")}
    results["generator"] = generator(root, work / "generator")
    for method in ("clgid", "sequential", "joint", "individual"):
        results[f"continual_{method}"] = continual(root, work / f"continual_{method}", method=method)
    results["continual_clgid_renderer_plateau"] = continual(
        root, work / "continual_oracle", replay_source="renderer", render_size=64, plateau_window=4,
        validate_every=2, iterations=8, kd_weight=0.3)  # fmt: skip
    results["rgsud"] = unpaired(root, work / "rgsud")
    init = str(work / "supervised" / "final.pt")
    results["rgsud_plugin"] = unpaired(root, work / "rgsud_plugin", init=init)
    results["shipped"] = shipped(work / "shipped")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", help="folder to keep the weights in")
    mode.add_argument("--compare", help="folder of recorded weights to compare with")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        results = run_all(Path(scratch))
    if args.record:
        folder = Path(args.record)
        folder.mkdir(parents=True, exist_ok=True)
        for recipe, parts in results.items():
            torch.save(parts, folder / f"{recipe}.pt")
        print(json.dumps({"recorded": sorted(results)}))
        return 0
    report, worst = {}, 0.0
    for recipe, parts in results.items():
        before = torch.load(Path(args.compare) / f"{recipe}.pt", weights_only=True)
        if set(before) != set(parts) or any(set(before[p]) != set(parts[p]) for p in parts):
            report[recipe] = "different parts or tensors"
            worst = float("inf")
            continue
        difference = max(float((parts[p][k] - before[p][k]).abs().max()) for p in parts for k in parts[p])
        report[recipe] = difference
        worst = max(worst, difference)
    print(json.dumps(report, indent=2))
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
