"""Continual de-raining on a 4-domain built-in stream: CLGID against sequential fine-tuning.

Stream with the character of the paper's default order 100H -> 100L -> 1400 -> 1200m, plus `real_like` as the
unseen domain. Writes `runs/benchmarks/continual_synthetic.{md,json}` (the command is at the top of the md).
Every stage's wall time is recorded; the generator bank is reused if it already exists under --work.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from derain.data.io import read_image, to_tensor
from derain.data.photos import background_sources
from derain.data.synth import SCENES_FILE, synthesize, synthesize_split
from derain.models.registry import ModelSpec, load_model
from derain.quality.evaluate import derain_image
from derain.quality.metrics import psnr
from derain.quality.reports import device_name, dumps, join_parts
from derain.train.continual import ContinualConfig, task_dir, task_names, train_stream, uses_generators
from derain.train.generator_bank import GeneratorBank, GeneratorConfig

STREAM = ("rain100H", "rain100L", "rain1400", "rain1200_medium")
UNSEEN = "real_like/test"
CLEAN_INPUT = "clean input"  # the by-scene table's column of networks fed clean images (of STREAM[1]'s test split)
# benchmark name -> ContinualConfig overrides; `clgid_released` is the released code's detached distillation,
# which gives no gradient and so is also "CLGID without KD"
VARIANTS = {
    "sequential": {"method": "sequential"},
    "clgid": {"method": "clgid"},
    "clgid_released": {"method": "clgid", "kd_mode": "released_code"},
    "joint": {"method": "joint"},
    "individual": {"method": "individual"},
    # diagnostic: replay rain drawn by the built-in renderer (a perfect generator); no GANs are trained for it
    "clgid_oracle": {"method": "clgid", "replay_source": "renderer"},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="runs/continual_synthetic")
    parser.add_argument("--model", default="realtime")
    parser.add_argument(
        "--model-kwargs", type=json.loads, default={}, help="network arguments as JSON, e.g. '{\"width\": 16}'"
    )
    parser.add_argument("--iterations", type=int, default=1200, help="de-rainer iterations per task")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--gan-iterations", type=int, default=1000, help="VRGNet critic steps per dataset")
    parser.add_argument("--gan-batch-size", type=int, default=8)
    parser.add_argument(
        "--gan-background", default="2x16", help="VRGNet background net STAGESxCHANNELS (released recipe: 6x32)"
    )
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--methods", default="sequential,clgid,clgid_released", help=f"from {sorted(VARIANTS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/benchmarks/continual_synthetic")
    parser.add_argument(
        "--part",
        default="all",
        help="all | data | generator:NAME | streams: one independent part, so that parts can run as parallel "
        "processes on one GPU (render `data` first); `all` (or `streams` once the parts are done) writes the report",
    )
    parser.add_argument(
        "--merge",
        default="",
        help="REPORT.json[,REPORT.json...]: write one report (to --out) from the reports of streams that ran as "
        "separate processes (`--part streams --methods M --out REPORT`), without their checkpoints; give the "
        "other options as those runs had them",
    )
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    return parser


def gan_config(args: argparse.Namespace) -> GeneratorConfig:
    """The VRGNet recipe of every bank entry, from the command line."""
    stages, channels = (int(v) for v in args.gan_background.split("x"))
    return GeneratorConfig(
        iterations=args.gan_iterations, batch_size=args.gan_batch_size, background_stages=stages,
        background_channels=channels, checkpoint_every=250, device=args.device, cache=True,
    )  # fmt: skip


def stream_config(method: str, args: argparse.Namespace, data: Path, work: Path, gan: GeneratorConfig
                  ) -> ContinualConfig:  # fmt: skip
    """One method's stream over the built-in datasets."""
    return ContinualConfig(
        data_root=str(data), stream=STREAM, unseen=(UNSEEN,), **VARIANTS[method],
        model=ModelSpec(args.model, args.model_kwargs), out=str(work / run_name(method, args)),
        bank=str(work / "bank"), generator=gan, iterations=args.iterations,
        warmup_epochs=0.05 * 250,  # 5% of the task, as 3/250 epochs is too short a warm-up for short tasks
        batch_size=args.batch_size, lr=args.lr, checkpoint_every=300, device=args.device, cache=True,
    )  # fmt: skip


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.results:
        args.out = str(Path(__file__).parent / "results" / "continual_synthetic")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(args.work)
    if args.merge:
        merge_reports(args, [Path(p) for p in args.merge.split(",")])
        return
    times: dict[str, float] = {}

    started = time.perf_counter()
    data = work / "data"
    if not (data / UNSEEN).is_dir():
        synthesize(list(STREAM), data, args.n_train, args.n_test, size=(256, 256), seed=0)
        synthesize_split("real_like", "test", args.n_test, data / UNSEEN, size=(256, 256), seed=1)
    times["render data"] = time.perf_counter() - started
    if args.part == "data":
        return

    gan = gan_config(args)
    methods = args.methods.split(",")
    for method in methods:
        if method not in VARIANTS:
            parser.error(f"unknown method {method!r}; choose from {sorted(VARIANTS)}")
    bank = GeneratorBank(work / "bank")
    if args.part.startswith("generator:"):
        name = args.part.split(":", 1)[1]
        if name not in STREAM[:-1]:
            parser.error(f"--part generator:NAME takes one of {STREAM[:-1]}")
        bank.ensure(name, data / name / "train", gan)
        return
    if args.part not in ("all", "streams"):
        parser.error(f"unknown --part {args.part!r}")
    configs = {method: stream_config(method, args, data, work, gan) for method in methods}
    if any(uses_generators(config) for config in configs.values()):
        for name in STREAM[:-1]:
            bank.ensure(name, data / name / "train", gan)
            times[f"generator {name}"] = json.loads((work / "bank" / name / "summary.json").read_text())[
                "seconds_this_run"
            ]

    results = {}
    for method, config in configs.items():
        results[method] = train_stream(config, resume="auto")
        tasks = sorted(Path(config.out).glob("task*/task.json"))
        times[f"{method} stream (training)"] = sum(json.loads(t.read_text())["seconds_this_run"] for t in tasks)
    times["this invocation (wall)"] = time.perf_counter() - started
    write_report(args, results, times, scene_scores(data, configs), device_name())


def merge_reports(args: argparse.Namespace, paths: list[Path]) -> None:
    """One report from the JSON reports of methods that trained in separate processes (the parts of one run)."""
    results, times, by_scene, device = join_parts(paths)
    args.methods = ",".join(results)
    write_report(args, results, times, by_scene, device)


def run_name(method: str, args: argparse.Namespace) -> str:
    """Folder of one method's stream under --work; network arguments are part of it, so sizes never mix."""
    return f"{method}_{args.model}" + "".join(f"-{k}{v}" for k, v in args.model_kwargs.items())


def model_args(kwargs: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else ""


def scenes_of(folder: Path) -> dict[str, str]:
    """File name -> source photo of a built-in test split (`scenes.json`; folders rendered before it existed
    follow the same rule, `background_sources`, by file order)."""
    path = folder / SCENES_FILE
    if path.is_file():
        return json.loads(path.read_text())
    names = sorted(p.name for p in (folder / "norain").iterdir())
    return dict(zip(names, background_sources("test", len(names)), strict=True))


def dark_channel(folder: Path, scenes: dict[str, str]) -> dict[str, float]:
    """Per scene: mean over its clean images of the 5th percentile of the per-pixel channel minimum. Haze lifts
    it (O = B t + A (1 - t)), so a scene that is high here looks hazy to a network that learned to remove haze."""
    values: dict[str, list[float]] = {}
    for name, scene in scenes.items():
        clean = read_image(folder / "norain" / name).min(axis=2)
        values.setdefault(scene, []).append(float(np.percentile(clean, 5)) / 255)
    return {scene: sum(v) / len(v) for scene, v in values.items()}


def scene_networks(config: ContinualConfig, device: torch.device) -> dict[str, list[torch.nn.Module]]:
    """The final network(s) that score each split of the by-scene table: the last task's for every split; for
    `individual`, each dataset's own network, and all of them (averaged) on the unseen split."""
    if config.method != "individual":
        last = load_model(task_dir(config, len(task_names(config)) - 1) / "final.pt", map_location=device)
        return {split: [last] for split in (*STREAM, "unseen", CLEAN_INPUT)}
    own = {name: load_model(task_dir(config, i) / "final.pt", map_location=device) for i, name in enumerate(STREAM)}
    return {name: [own[name]] for name in STREAM} | {"unseen": list(own.values()), CLEAN_INPUT: [own[STREAM[1]]]}


def scene_scores(data: Path, configs: dict[str, ContinualConfig]) -> dict:
    """PSNR RGB of each method's final network (and of the rainy input) per test split and source scene."""
    splits = {name: data / name / "test" for name in STREAM} | {"unseen": data / UNSEEN}
    scenes = {split: scenes_of(folder) for split, folder in splits.items()}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = {"rainy input": None} | {method: scene_networks(config, device) for method, config in configs.items()}
    table: dict = {method: {} for method in models}
    inputs = {split: "rain" for split in splits} | {CLEAN_INPUT: "norain"}
    splits[CLEAN_INPUT], scenes[CLEAN_INPUT] = splits[STREAM[1]], scenes[STREAM[1]]
    for split, folder in splits.items():
        pairs = [
            (read_image(folder / inputs[split] / n), read_image(folder / "norain" / n), s)
            for n, s in scenes[split].items()
        ]
        for method, networks in models.items():
            if networks is None and split == CLEAN_INPUT:
                continue  # the clean input is its own target
            grouped: dict[str, list[float]] = {}
            for rainy, clean, scene in pairs:
                for model in [None] if networks is None else networks[split]:
                    restored = rainy if model is None else derain_image(model, rainy, device)
                    score = float(psnr(to_tensor(restored)[None], to_tensor(clean)[None]))
                    grouped.setdefault(scene, []).append(score)
            table[method][split] = {scene: sum(v) / len(v) for scene, v in grouped.items()}
    return {"psnr_rgb": table, "dark_channel": dark_channel(splits[STREAM[1]], scenes[STREAM[1]])}


def write_report(args: argparse.Namespace, results: dict, times: dict, scenes: dict, device: str) -> None:
    """`<out>.md` (summary table, accuracy matrices, per-scene PSNR, time) and `<out>.json`; prints the markdown."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        f"python benchmarks/continual_synthetic.py --model {args.model} "
        + (f"--model-kwargs '{json.dumps(args.model_kwargs)}' " if args.model_kwargs else "")
        + f"--iterations {args.iterations} "
        f"--batch-size {args.batch_size} --lr {args.lr} --gan-iterations {args.gan_iterations} "
        f"--gan-batch-size {args.gan_batch_size} --gan-background {args.gan_background} "
        f"--n-train {args.n_train} --n-test {args.n_test} --methods {args.methods} --work {args.work} --out {args.out}"
    )
    lines = [*summary_lines(args, results, command, device), *matrix_lines(args, results),
             *scene_lines(results, scenes), *time_lines(times)]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    report = {"results": results, "times_s": times, "command": command, "device": device, "by_scene": scenes}
    out.with_suffix(".json").write_text(dumps(report))
    print("\n".join(lines))


def summary_lines(args: argparse.Namespace, results: dict, command: str, device: str) -> list[str]:
    """Title, recipe and one row per method (PSNR per split after the last task, averages, BWT, unseen) plus the
    rainy input's row."""
    from derain.quality.evaluate import rainy_input_scores

    lines = [
        "# Continual de-raining on the built-in stream rain100H -> rain100L -> rain1400 -> rain1200_medium",
        "",
        f"Command: `{command}`",
        "",
        f"Network `{args.model}`{model_args(args.model_kwargs)}, {args.iterations} iterations per task, "
        f"batch {args.batch_size}, 64x64 patches, "
        f"Adam {args.lr} with warm-up + cosine restarted per task; VRGNet generators {args.gan_iterations} critic "
        f"steps each (batch {args.gan_batch_size}, background net {args.gan_background.replace('x', ' stages x ')} "
        f"ch); {args.n_train} train / {args.n_test} test images of 256x256 per domain; "
        f"unseen domain `real_like`. Device: {device}.",
        "PSNR (dB, RGB as the CLGID code computes it) on each test split after the last task.",
        "",
        "| method | " + " | ".join(STREAM) + " | avg seen | BWT | unseen real_like | avg seen (Y) | unseen (Y) |",
        "|---" * (len(STREAM) + 6) + "|",
    ]
    for method, summary in results.items():
        final = summary["final"]
        cells = [f"{final[name]['psnr_rgb']:.2f}" for name in STREAM]
        bwt = f"{summary['bwt_psnr_rgb']:+.2f}" if "bwt_psnr_rgb" in summary else "n/a"
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {summary['avg_seen_psnr_rgb']:.2f} | {bwt} | "
            f"{summary[f'unseen_{UNSEEN}_psnr_rgb']:.2f} | {summary['avg_seen_psnr_y']:.2f} | "
            f"{summary[f'unseen_{UNSEEN}_psnr_y']:.2f} |"
        )
    data = Path(args.work) / "data"
    rainy = {name: rainy_input_scores(data / name / "test")["psnr_rgb"] for name in STREAM}
    rainy["unseen"] = rainy_input_scores(data / UNSEEN)["psnr_rgb"]
    lines.append(
        "| rainy input | "
        + " | ".join(f"{rainy[n]:.2f}" for n in STREAM)
        + f" | {sum(rainy[n] for n in STREAM) / 4:.2f}"
        f" | | {rainy['unseen']:.2f} | | |"
    )
    return [*lines, ""]


def matrix_lines(args: argparse.Namespace, results: dict) -> list[str]:
    """One accuracy matrix per method (rows: after task; columns: test split)."""
    lines = ["## Accuracy matrices (PSNR RGB; rows: after task, columns: test split)", ""]
    for method in results:
        matrix = json.loads((Path(args.work) / run_name(method, args) / "matrix.json").read_text())["rows"]
        columns = [*STREAM, f"unseen:{UNSEEN}"]
        lines += [f"### {method}", ""]
        if VARIANTS[method]["method"] == "individual":
            lines += ["Rows: the network trained on that dataset alone (its row is not a stage of a stream).", ""]
        lines += ["| after | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for task, row in matrix.items():
            lines.append(f"| {task} | " + " | ".join(f"{row[c]['psnr_rgb']:.2f}" for c in columns) + " |")
        lines.append("")
    return lines


def scene_lines(results: dict, scenes: dict) -> list[str]:
    """PSNR per source photo of the test splits, and the clean-input column."""
    photos = list(next(iter(scenes["psnr_rgb"]["rainy input"].values())))
    columns = [*STREAM, "unseen", CLEAN_INPUT]
    lines = [
        "## By test scene",
        "",
        "PSNR RGB after the last task on each source photo of the test splits, as "
        + " / ".join(f"`{p}`" for p in photos)
        + ". Dark channel of the clean test images (5th percentile of the per-pixel channel minimum; haze lifts "
        "it): " + ", ".join(f"`{p}` {v:.3f}" for p, v in scenes["dark_channel"].items()) + ". "
        f"`{CLEAN_INPUT}`: the network fed the clean images of {STREAM[1]}'s test split (a network that learned to "
        "remove haze and sees haze where there is none lowers it)."
        + (
            " `individual`: each split by its own dataset's network, the unseen split averaged over all four."
            if "individual" in results
            else ""
        ),
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for method, row in scenes["psnr_rgb"].items():
        cells = [" / ".join(f"{row[c][p]:.2f}" for p in photos) if c in row else "" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def time_lines(times: dict) -> list[str]:
    lines = [
        "## Time",
        "",
        "Seconds each stage took when it ran (generators and training tasks record their own time, so a stage "
        "reused from an earlier invocation keeps its cost); evaluation is outside the training time.",
        "",
        "| stage | seconds |",
        "|---|---|",
    ]
    return lines + [f"| {stage} | {seconds:.0f} |" for stage, seconds in times.items()]


if __name__ == "__main__":
    main()
