"""Continual de-raining on a 4-domain built-in stream: CLGID against sequential fine-tuning.

Stream with the character of the paper's default order 100H -> 100L -> 1400 -> 1200m, plus `real_like` as the
unseen domain. Writes `benchmarks/results/continual_synthetic.{md,json}` (the command is at the top of the md).
Every stage's wall time is recorded; the generator bank is reused if it already exists under --work.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from derain.data.synth import synthesize, synthesize_split
from derain.train.continual import ContinualConfig, train_stream
from derain.train.memorize import GeneratorBank, GeneratorConfig
from derain.train.supervised import ModelConfig

STREAM = ("rain100H", "rain100L", "rain1400", "rain1200_medium")
UNSEEN = "real_like/test"
# benchmark name -> ContinualConfig overrides; `clgid_released` is the released code's detached distillation,
# which gives no gradient and so is also "CLGID without KD"
VARIANTS = {
    "sequential": {"method": "sequential"},
    "clgid": {"method": "clgid"},
    "clgid_released": {"method": "clgid", "kd_mode": "released_code"},
    "joint": {"method": "joint"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="runs/continual_synthetic")
    parser.add_argument("--model", default="realtime")
    parser.add_argument("--iterations", type=int, default=1200, help="de-rainer iterations per task")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--gan-iterations", type=int, default=1000, help="VRGNet critic steps per dataset")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--methods", default="sequential,clgid,clgid_released", help=f"from {sorted(VARIANTS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="benchmarks/results/continual_synthetic")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(args.work)
    times: dict[str, float] = {}

    started = time.perf_counter()
    data = work / "data"
    if not (data / UNSEEN).is_dir():
        synthesize(list(STREAM), data, args.n_train, args.n_test, size=(256, 256), seed=0)
        synthesize_split("real_like", "test", args.n_test, data / UNSEEN, size=(256, 256), seed=1)
    times["render data"] = time.perf_counter() - started

    gan = GeneratorConfig(
        iterations=args.gan_iterations,
        batch_size=8,
        background_stages=2,
        background_channels=16,
        checkpoint_every=250,
        device=args.device,
    )
    bank = GeneratorBank(work / "bank")
    for name in STREAM[:-1]:
        started = time.perf_counter()
        bank.ensure(name, data / name / "train", gan)
        times[f"generator {name}"] = time.perf_counter() - started

    results = {}
    for method in args.methods.split(","):
        if method not in VARIANTS:
            parser.error(f"unknown method {method!r}; choose from {sorted(VARIANTS)}")
        config = ContinualConfig(
            data_root=str(data),
            stream=STREAM,
            unseen=(UNSEEN,),
            **VARIANTS[method],
            model=ModelConfig(args.model),
            out=str(work / f"{method}_{args.model}"),
            bank=str(work / "bank"),
            generator=gan,
            iterations=args.iterations,
            warmup_epochs=0.05 * 250,  # 5% of the task, as 3/250 epochs is too short a warm-up for short tasks
            batch_size=args.batch_size,
            lr=args.lr,
            checkpoint_every=300,
            device=args.device,
        )
        started = time.perf_counter()
        summary = train_stream(config, resume="auto")
        times[f"{method} stream (train + eval)"] = time.perf_counter() - started
        results[method] = summary
    write_report(args, results, times)


def write_report(args: argparse.Namespace, results: dict, times: dict) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        f"python benchmarks/continual_synthetic.py --model {args.model} --iterations {args.iterations} "
        f"--batch-size {args.batch_size} --lr {args.lr} --gan-iterations {args.gan_iterations} "
        f"--n-train {args.n_train} --n-test {args.n_test} --methods {args.methods}"
    )
    device = (
        "CUDA " + torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else f"CPU ({torch.get_num_threads()} threads)"
    )
    lines = [
        "# Continual de-raining on the built-in stream rain100H -> rain100L -> rain1400 -> rain1200_medium",
        "",
        f"Command: `{command}`",
        "",
        f"Network `{args.model}`, {args.iterations} iterations per task, batch {args.batch_size}, 64x64 patches, "
        f"Adam {args.lr} with warm-up + cosine restarted per task; VRGNet generators {args.gan_iterations} critic "
        f"steps each (batch 8, background net 2 stages x 16 ch); {args.n_train} train / {args.n_test} test "
        f"images of 256x256 per domain; unseen domain `real_like`. Device: {device}.",
        "PSNR (dB, RGB as the CLGID code computes it) on each test split after the last task.",
        "",
        "| method | " + " | ".join(STREAM) + " | avg seen | BWT | unseen real_like | avg seen (Y) | unseen (Y) |",
        "|---" * (len(STREAM) + 6) + "|",
    ]
    for method, summary in results.items():
        final = summary["final"]
        cells = [f"{final[name]['psnr_rgb']:.2f}" for name in STREAM]
        lines.append(
            f"| {method} | "
            + " | ".join(cells)
            + f" | {summary['avg_seen_psnr_rgb']:.2f} | {summary['bwt_psnr_rgb']:+.2f} | "
            f"{summary[f'unseen_{UNSEEN}_psnr_rgb']:.2f} | {summary['avg_seen_psnr_y']:.2f} | "
            f"{summary[f'unseen_{UNSEEN}_psnr_y']:.2f} |"
        )
    from derain.train.demo import rainy_input_scores

    data = Path(args.work) / "data"
    rainy = {name: rainy_input_scores(data / name / "test")["psnr_rgb"] for name in STREAM}
    rainy["unseen"] = rainy_input_scores(data / UNSEEN)["psnr_rgb"]
    lines.append(
        "| rainy input | "
        + " | ".join(f"{rainy[n]:.2f}" for n in STREAM)
        + f" | {sum(rainy[n] for n in STREAM) / 4:.2f}"
        f" | | {rainy['unseen']:.2f} | | |"
    )
    lines.append("")
    lines += ["## Accuracy matrices (PSNR RGB; rows: after task, columns: test split)", ""]
    for method in results:
        matrix = json.loads((Path(args.work) / f"{method}_{args.model}" / "matrix.json").read_text())["rows"]
        columns = [*STREAM, f"unseen:{UNSEEN}"]
        lines += [f"### {method}", "", "| after | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for task, row in matrix.items():
            lines.append(f"| {task} | " + " | ".join(f"{row[c]['psnr_rgb']:.2f}" for c in columns) + " |")
        lines.append("")
    lines += ["## Wall time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.0f} |" for stage, seconds in times.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps({"results": results, "times_s": times, "command": command}, indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
