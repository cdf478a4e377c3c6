"""RGSUD on an unpaired built-in setting: stage 1, stage 1 + 2, a supervised upper bound, and the scorer table.

Rainy training images come from one half of a built-in domain's scenes, clean training images from the other
half (strictly unpaired); a paired test split measures PSNR/SSIM. The scorers (NIQE fitted on the clean
images, the rain CNN, their combination) are validated as the paper validates its IQA: on the paired test
split, outputs of every stage-1 snapshot are scored; we report the Spearman correlation of each score with
PSNR (pooled, and within each image across snapshots) and, replaying recycling over the snapshots in order,
the fraction of reward replacements that raised PSNR.
Writes `runs/benchmarks/reward_synthetic.{md,json}` and `reward_scores.png` (mean pool score per sweep).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from derain.data.io import read_image, to_tensor
from derain.data.pairing import paired_folder
from derain.data.synth import synthesize
from derain.models import load_model, run_padded
from derain.models.registry import ModelSpec
from derain.quality import psnr
from derain.quality.evaluate import evaluate_folder
from derain.quality.reports import device_name
from derain.quality.scorers import fit_scorer, spearman
from derain.train.rgsud import UnpairedConfig, train_unpaired
from derain.train.supervised import SupervisedConfig, train_supervised


def split_unpaired(source: Path, work: Path) -> tuple[Path, Path]:
    """First half of the scenes: rainy images (+ their clean partners for diagnostics only); second half: clean."""
    pairs = paired_folder(source)
    half = len(pairs) // 2
    rainy_dir, clean_dir = work / "rainy_half", work / "clean_half"
    for folder in (rainy_dir / "rain", rainy_dir / "norain", clean_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for pair in pairs[:half]:
        shutil.copy(pair.rainy, rainy_dir / "rain" / pair.rainy.name)
        shutil.copy(pair.clean, rainy_dir / "norain" / pair.rainy.name)
    for pair in pairs[half:]:
        shutil.copy(pair.clean, clean_dir / pair.clean.name)
    return rainy_dir, clean_dir


def validate_scorers(snapshots: list[Path], test: Path, scorers: dict, device: torch.device) -> dict:
    pairs = paired_folder(test)
    rainy = [to_tensor(read_image(p.rainy))[None] for p in pairs]
    clean = [to_tensor(read_image(p.clean))[None] for p in pairs]
    outputs = []  # [snapshot][image]
    for path in snapshots:
        model = load_model(path).to(device).eval()
        with torch.no_grad():
            outputs.append([run_padded(model, r.to(device)).clamp(0, 1).cpu() for r in rainy])
    quality = [[float(psnr(o, c)[0]) for o, c in zip(row, clean, strict=True)] for row in outputs]
    table = {}
    for name, scorer in scorers.items():
        scores = [[float(scorer.score(o)[0]) for o in row] for row in outputs]
        flat_q = [q for row in quality for q in row]
        flat_s = [-s for row in scores for s in row]  # lower score = better, so correlate -score with PSNR
        per_image = [
            spearman([-scores[k][i] for k in range(len(snapshots))], [quality[k][i] for k in range(len(snapshots))])
            for i in range(len(pairs))
        ]
        replaced = raised = 0
        for i in range(len(pairs)):  # recycling replayed over the snapshots in training order
            best = 0
            for k in range(1, len(snapshots)):
                if scores[k][i] < scores[best][i]:
                    replaced += 1
                    raised += int(quality[k][i] > quality[best][i])
                    best = k
        table[name] = {
            "spearman_pooled": spearman(flat_s, flat_q),
            "spearman_within_image": sum(per_image) / len(per_image),
            "replacements": replaced,
            "replacements_raising_psnr": raised / replaced if replaced else float("nan"),
        }
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="runs/reward_synthetic")
    parser.add_argument("--domain", default="rain100L")
    parser.add_argument("--model", default="realtime")
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--stage1", type=int, default=1200)
    parser.add_argument("--stage2", type=int, default=600)
    parser.add_argument("--sweep-every", type=int, default=200)
    parser.add_argument("--scorer", default="niqe")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/benchmarks/reward_synthetic")
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    return parser


def rgsud_options(args: argparse.Namespace, rainy_dir: Path, clean_dir: Path, test: Path) -> dict:
    """The RGSUD recipe of this benchmark (small networks, fixed stage lengths so budgets compare)."""
    return dict(
        rain_data=str(rainy_dir / "rain"), clean_data=str(clean_dir), test_data=str(test), model=ModelSpec(args.model),
        transfer={"width": 16, "blocks": 2}, discriminator={"ndf": 16}, dem={"width": 8, "levels": 3}, patch_size=64,
        batch_size=4, lr=5e-4, stage2_lr=2e-4, sweep_every=args.sweep_every, val_every=args.sweep_every,
        patience=100,  # fixed length here, so stage 1 vs 1+2 compare at known budgets
        scorer=args.scorer, niqe_block=32, device=args.device, snapshots=True,
    )  # fmt: skip


def main() -> None:
    """Render, train RGSUD (stage 1, 1 + 2), the paired bound and the same-budget stage 1, score, report. Long on
    purpose: the benchmark's steps in order; it is rewritten on data v2 by the CLGID/RGSUD issue."""
    parser = build_parser()
    args = parser.parse_args()
    if args.results:
        args.out = str(Path(__file__).parent / "results" / "reward_synthetic")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work, times = Path(args.work), {}
    started = time.perf_counter()
    folders = synthesize([args.domain], work / "data", args.n_train, args.n_test, size=(args.size, args.size))
    rainy_dir, clean_dir = split_unpaired(folders[args.domain] / "train", work / "unpaired")
    test = folders[args.domain] / "test"
    times["render data"] = time.perf_counter() - started

    common = rgsud_options(args, rainy_dir, clean_dir, test)
    started = time.perf_counter()
    config = UnpairedConfig(
        **common, out=str(work / "rgsud"), stage1_iterations=args.stage1, stage2_iterations=args.stage2
    )
    summary = train_unpaired(config, resume="auto")
    times["RGSUD stage 1 + 2 (train, sweeps, validation)"] = time.perf_counter() - started

    device = torch.device("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu")
    rows = {}
    for stage in ("stage1", "stage2"):
        model = load_model(work / "rgsud" / f"{stage}_final.pt")
        rows[stage] = evaluate_folder(model, test, device=device, progress=False)["mean"]

    started = time.perf_counter()
    stage1_only = UnpairedConfig(
        **{**common, "snapshots": False},
        out=str(work / "stage1_longer"),
        stage1_iterations=args.stage1 + args.stage2,
        stage2_iterations=0,
    )
    train_unpaired(stage1_only, resume="auto")
    rows["stage1 for the same total iterations"] = evaluate_folder(
        load_model(work / "stage1_longer" / "stage1_final.pt"), test, device=device, progress=False
    )["mean"]
    times["stage 1 only, same total iterations"] = time.perf_counter() - started

    started = time.perf_counter()
    supervised = SupervisedConfig(
        train_data=(str(rainy_dir),),
        model=ModelSpec(args.model),
        out=str(work / "supervised"),
        patch_size=64,
        batch_size=4,
        iterations=args.stage1 + args.stage2,
        lr=5e-4,
        warmup_iterations=50,
        checkpoint_every=500,
        device=args.device,
    )
    rows["supervised upper bound (paired)"] = evaluate_folder(
        load_model(train_supervised(supervised, resume="auto")), test, device=device, progress=False
    )["mean"]
    times["supervised upper bound"] = time.perf_counter() - started

    from derain.quality.evaluate import rainy_input_scores

    rows = {"rainy input": rainy_input_scores(test), **rows}

    started = time.perf_counter()
    clean_images = [to_tensor(read_image(p)) for p in sorted(clean_dir.iterdir())[:64]]
    rainy_images = [to_tensor(read_image(p)) for p in sorted((rainy_dir / "rain").iterdir())[:64]]
    scorers = {
        name: fit_scorer(name, clean_images, rainy_images, block=32) for name in ("niqe", "rain_cnn", "combined")
    }
    snapshots = sorted((work / "rgsud" / "snapshots").glob("stage1_*.pt"))
    table = validate_scorers(snapshots, test, scorers, device)
    times["scorer fitting + validation"] = time.perf_counter() - started
    write_report(args, rows, table, summary, times, len(snapshots))


def write_report(args, rows, table, summary, times, snapshot_count) -> None:
    """`<out>.md` / `.json` (+ the pool-score plot). Long on purpose: the report's text reads in order; this
    benchmark is rewritten on data v2 by the CLGID/RGSUD issue, which splits it with the new tables."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        f"python benchmarks/reward_synthetic.py --domain {args.domain} --model {args.model} --n-train {args.n_train} "
        f"--n-test {args.n_test} --size {args.size} --stage1 {args.stage1} --stage2 {args.stage2} "
        f"--sweep-every {args.sweep_every} --scorer {args.scorer}"
    )
    device = device_name()
    lines = [
        f"# RGSUD on unpaired built-in rain ({args.domain})",
        "",
        f"Command: `{command}`",
        "",
        f"Rainy training images: {args.n_train // 2} scenes of `{args.domain}`; clean training images: "
        f"{args.n_train - args.n_train // 2} other scenes; test: {args.n_test} paired images, {args.size}x{args.size}. "
        f"De-rainer `{args.model}`; rain transfer width 16 / 2 blocks, PatchGAN ndf 16, DEM width 8 (narrowed "
        f"for CPU; paper: 64 / 6 / 64); 64x64 crops, batch 4. Reward scorer `{args.scorer}`. Device: {device}. "
        "No VGG perceptual loss (no ImageNet weights offline).",
        "",
        "| model | PSNR RGB | SSIM RGB | PSNR Y | SSIM Y |",
        "|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        label = {
            "stage1": f"stage 1 ({args.stage1} it)",
            "stage2": f"stage 1 + 2 ({args.stage1} + {args.stage2} it)",
        }
        lines.append(
            f"| {label.get(name, name)} | {m['psnr_rgb']:.2f} | {m['ssim_rgb']:.4f} | "
            f"{m['psnr_y']:.2f} | {m['ssim_y']:.4f} |"
        )
    lines += [
        "",
        f"## Reward scorers (outputs of {snapshot_count} stage-1 snapshots on the paired test split)",
        "",
        "| scorer | Spearman with PSNR (pooled) | Spearman within image | replacements | replacements raising PSNR |",
        "|---|---|---|---|---|",
    ]
    for name, t in table.items():
        lines.append(
            f"| {name} | {t['spearman_pooled']:.3f} | {t['spearman_within_image']:.3f} | {t['replacements']} | "
            f"{t['replacements_raising_psnr']:.2%} |"
        )
    lines += ["", "## Reward pool across sweeps (training images; lower score is better)", ""]
    lines += [
        "| stage | step | mean score | replaced | rejected (colour) | replacements raising PSNR |",
        "|---|---|---|---|---|---|",
    ]
    for h in summary["reward_history"]:
        lines.append(
            f"| {h.get('stage', 'seed')} | {h['step']} | {h['mean_score']:.4f} | {h['replaced']} | "
            f"{h['rejected_colour']} | {h.get('replacements_raising_psnr', '')} |"
        )
    lines += ["", f"Plot: `{out.name}_scores.png`.", "", "## Wall time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "rows": rows,
                "scorers": table,
                "reward_history": summary["reward_history"],
                "times_s": times,
                "command": command,
            },
            indent=2,
        )
    )
    plot = Path(args.work) / "rgsud" / "reward_scores.png"
    if plot.is_file():
        shutil.copy(plot, out.parent / f"{out.name}_scores.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
