"""RGSUD on data v2: unpaired training where there is rain to remove, stage 1 against stage 1 + 2, and the scorers.

Rainy training images come from one half of a domain's training scenes, clean training images from the other half
(strictly unpaired); the stage-2 plateau watches a validation split of training scenes, never the test photos.
Rows, scored on the data v2 test set (126 crops of four test-only photos, PSNR-Y / SSIM-Y with 95 % bootstrap CIs,
the clean-input column: the network fed the clean crops):

- rainy input;
- stage 1 (`--stage1` iterations), stage 1 + 2 (`--stage2` more), stage 1 alone for the same total iterations;
- the paired bound: the same rainy images with their clean partners, supervised, trained to a plateau;
- plug-in mode: stage 2 only on the shipped default de-rainer (`--plugin-domains`: its training domain
  `rain100H` and `storm`, which it never saw), beside the shipped network itself; one run per recipe in
  PLUGIN_RECIPES (`--part plugin:DOMAIN[:RECIPE]`), each testing one hypothesis for the damage plug-in mode did at
  first (the stage-2 learning rate; the untrained rain transfer, DEM and critic that plug-in mode starts from).

The scorers (NIQE fitted on the clean half, the rain CNN, their combination) are validated as the paper validates
its IQA: the outputs of every snapshot (stage 1, then stage 2) on the test crops of the training domain and of
`storm` are scored; the table gives the Spearman
correlation of each score with PSNR-Y within each image across snapshots (what recycling relies on) and, replaying
recycling over the snapshots in order, the share of reward replacements that raised PSNR-Y.
Writes `runs/benchmarks/reward_synthetic.{md,json}` (`--results`: benchmarks/results/) and `_scores.png`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from derain.data.io import read_image, to_tensor
from derain.data.pairing import paired_folder
from derain.data.scenes import paired_crops
from derain.data.synth import synthesize
from derain.machine import device_name
from derain.models import load_model
from derain.models.builtin import BUILTIN_WEIGHTS
from derain.models.registry import ModelSpec
from derain.quality.reports import dumps
from derain.quality.scorers import fit_scorer, spearman
from derain.train.continual import ContinualConfig, task_dir, train_stream
from derain.train.evaluation import evaluate_folder
from derain.train.rgsud import UnpairedConfig, train_unpaired
from derain.train.testset import CLEAN, batch_metrics, crop_scores, mean_ci, model_runner

log = logging.getLogger("reward_synthetic")


def split_unpaired(source: Path, work: Path) -> tuple[Path, Path]:
    """First half of the scenes: rainy images (+ their clean partners, for the paired bound only); second half:
    clean images."""
    pairs = paired_folder(source)
    half = len(pairs) // 2
    rainy_dir, clean_dir = work / "rainy_half", work / "clean_half"
    if clean_dir.is_dir() and len(list(clean_dir.iterdir())) == len(pairs) - half:
        return rainy_dir, clean_dir
    for folder in (rainy_dir / "rain", rainy_dir / "norain", clean_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for pair in pairs[:half]:
        shutil.copy(pair.rainy, rainy_dir / "rain" / pair.rainy.name)
        shutil.copy(pair.clean, rainy_dir / "norain" / pair.rainy.name)
    for pair in pairs[half:]:
        shutil.copy(pair.clean, clean_dir / pair.clean.name)
    return rainy_dir, clean_dir


def validate_scorers(snapshots: list[Path], domain: str, scorers: dict) -> dict:
    """Spearman of each scorer with PSNR-Y across the snapshots (pooled and within image) and the share
    of recycling's replacements that raised PSNR-Y, on the v2 test crops."""
    clean, rainy, _ = paired_crops(domain)
    outputs = [model_runner(load_model(path).eval())(rainy) for path in snapshots]  # [snapshot][image]
    quality = [batch_metrics(row, clean)["psnr_y"].tolist() for row in outputs]
    tensors = [[to_tensor(image)[None] for image in row] for row in outputs]
    table = {}
    for name, scorer in scorers.items():
        scores = [[float(scorer.score(t)[0]) for t in row] for row in tensors]
        flat_q = [q for row in quality for q in row]
        flat_s = [-s for row in scores for s in row]  # lower score = better, so correlate -score with PSNR
        within = [
            spearman([-scores[k][i] for k in range(len(snapshots))], [quality[k][i] for k in range(len(snapshots))])
            for i in range(len(clean))
        ]
        replaced = raised = 0
        for i in range(len(clean)):  # recycling replayed over the snapshots in training order
            best = 0
            for k in range(1, len(snapshots)):
                if scores[k][i] < scores[best][i]:
                    replaced += 1
                    raised += int(quality[k][i] > quality[best][i])
                    best = k
        table[name] = {
            "spearman_pooled": spearman(flat_s, flat_q),
            "spearman_within_image": float(np.nanmean(within)),
            "replacements": replaced,
            "replacements_raising_psnr": raised / replaced if replaced else float("nan"),
        }
    return table


# plug-in recipe -> (row label, UnpairedConfig overrides); "" is the recipe the first v2 run used
PLUGIN_RECIPES = {
    "": ("lr 2e-4, no warm-up", {"plugin_warmup": 0}),
    "lr5e-5": ("lr 5e-5, no warm-up", {"plugin_warmup": 0, "stage2_lr": 5e-5}),
    "warmup": ("lr 2e-4, auxiliaries warmed up", {"plugin_warmup": -1}),
    "warmup_lr5e-5": ("lr 5e-5, auxiliaries warmed up", {"plugin_warmup": -1, "stage2_lr": 5e-5}),
    "warmup_nopair": ("lr 2e-4, warmed up, no pseudo-pair loss", {"plugin_warmup": -1, "der_weight": 0.0}),
    "warmup_noselfrec": ("lr 2e-4, warmed up, no self-reconstruction loss", {"plugin_warmup": -1,
                                                                              "self_rec_weight": 0.0}),
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="runs/reward_synthetic")
    parser.add_argument("--domain", default="rain100H", help="the unpaired training domain (rain to remove)")
    parser.add_argument("--plugin-domains", default="rain100H,storm", help="plug-in mode on the shipped de-rainer")
    parser.add_argument("--model", default="realtime")
    parser.add_argument("--n-train", type=int, default=160, help="split in half: rainy scenes / clean scenes")
    parser.add_argument("--n-val", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--stage1", type=int, default=600)
    parser.add_argument("--stage2", type=int, default=300)
    parser.add_argument("--sweep-every", type=int, default=100)
    parser.add_argument("--bound-cap", type=int, default=3000, help="cap of the paired bound (trained to a plateau)")
    parser.add_argument("--scorer", default="niqe")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--part", default="all", help="all | main | plugin:DOMAIN[:RECIPE] | report")
    parser.add_argument(
        "--plugin-warmup", type=int, default=400, help="auxiliaries-only iterations of the warmed-up plug-in recipes"
    )
    parser.add_argument("--out", default="runs/benchmarks/reward_synthetic")
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    return parser


def render(args: argparse.Namespace, domain: str) -> dict[str, Path]:
    """A domain's training split (halved into rainy / clean scenes) and validation split, rendered once."""
    root = Path(args.work) / "data"
    if not (root / domain / "val").is_dir():
        synthesize([domain], root, args.n_train, 0, size=(args.size, args.size), n_val=args.n_val)
    rainy_dir, clean_dir = split_unpaired(root / domain / "train", Path(args.work) / f"unpaired_{domain}")
    return {"rainy": rainy_dir, "clean": clean_dir, "val": root / domain / "val"}


def rgsud_options(args: argparse.Namespace, folders: dict[str, Path], model: ModelSpec) -> dict:
    """The RGSUD recipe of this benchmark (small networks for a CPU; fixed stage-1 length so budgets compare)."""
    return dict(
        rain_data=str(folders["rainy"] / "rain"), clean_data=str(folders["clean"]), test_data=str(folders["val"]),
        model=model, transfer={"width": 16, "blocks": 2}, discriminator={"ndf": 16}, dem={"width": 8, "levels": 3},
        patch_size=64, batch_size=4, lr=5e-4, stage2_lr=2e-4, sweep_every=args.sweep_every,
        val_every=args.sweep_every, patience=3, scorer=args.scorer, niqe_block=32, device=args.device,
    )  # fmt: skip


def paired_bound(args: argparse.Namespace, folders: dict[str, Path]) -> Path:
    """The rainy half with its clean partners, supervised, to a plateau (the continual trainer, one task)."""
    root = Path(args.work) / "bound_data" / args.domain
    root.mkdir(parents=True, exist_ok=True)
    for split, target in (("train", folders["rainy"]), ("val", folders["val"]), ("test", folders["val"])):
        link = root / split
        if not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=True)
    config = ContinualConfig(
        data_root=str(root.parent), stream=(args.domain,), method="sequential", model=ModelSpec(args.model),
        out=str(Path(args.work) / "bound"), iterations=args.bound_cap, warmup_epochs=0.05 * 250, batch_size=8,
        lr=5e-4, plateau_window=400, validate_every=100, checkpoint_every=300, device=args.device,
    )  # fmt: skip
    train_stream(config, resume="auto")
    return task_dir(config, 0) / "final.pt"


def run_main(args: argparse.Namespace) -> dict:
    """Stage 1, stage 1 + 2 (with snapshots), stage 1 for the same total, the paired bound; their seconds."""
    folders = render(args, args.domain)
    common = rgsud_options(args, folders, ModelSpec(args.model))
    work, times = Path(args.work), {}
    runs = {
        "rgsud": {**common, "stage1_iterations": args.stage1, "stage2_iterations": args.stage2, "snapshots": True},
        "stage1_longer": {**common, "stage1_iterations": args.stage1 + args.stage2, "stage2_iterations": 0},
    }
    for name, options in runs.items():
        started = time.perf_counter()
        train_unpaired(UnpairedConfig(**options, out=str(work / name)), resume="auto")
        times[name] = time.perf_counter() - started
    started = time.perf_counter()
    paired_bound(args, folders)
    times["paired bound"] = time.perf_counter() - started
    return times


def plugin_dir(args: argparse.Namespace, domain: str, recipe: str) -> Path:
    return Path(args.work) / (f"plugin_{domain}_{recipe}" if recipe else f"plugin_{domain}")


def run_plugin(args: argparse.Namespace, domain: str, recipe: str = "") -> float:
    """Stage 2 only, from the shipped de-rainer, on unpaired `domain` with one PLUGIN_RECIPES entry; its seconds."""
    folders = render(args, domain)
    shipped = load_model(BUILTIN_WEIGHTS)
    spec = ModelSpec(shipped.spec["name"], shipped.spec.get("kwargs", {}))
    options = {**rgsud_options(args, folders, spec), "init": str(BUILTIN_WEIGHTS), "stage2_iterations": args.stage2}
    options.update(PLUGIN_RECIPES[recipe][1])
    if options.get("plugin_warmup") == -1:
        options["plugin_warmup"] = args.plugin_warmup
    started = time.perf_counter()
    train_unpaired(UnpairedConfig(**options, out=str(plugin_dir(args, domain, recipe))), resume="auto")
    return time.perf_counter() - started


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.results:
        args.out = str(Path(__file__).parent / "results" / "reward_synthetic")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    plugins = [d for d in args.plugin_domains.split(",") if d]
    if args.part in ("all", "main"):
        times.update(run_main(args))
    for domain in plugins:
        if args.part in ("all", f"plugin:{domain}"):
            times[f"plug-in {domain}"] = run_plugin(args, domain)
    if args.part.startswith("plugin:") and args.part.count(":") == 2:
        _, domain, recipe = args.part.split(":")
        if recipe not in PLUGIN_RECIPES or not recipe:
            parser.error(f"unknown plug-in recipe {recipe!r}; choose from {sorted(k for k in PLUGIN_RECIPES if k)}")
        times[f"plug-in {domain} {recipe}"] = run_plugin(args, domain, recipe)
    times_path = work / "times.json"  # re-read: parts run side by side write their own entries
    times = {**(json.loads(times_path.read_text()) if times_path.is_file() else {}), **times}
    times_path.write_text(json.dumps(times, indent=2))
    if args.part in ("all", "report"):
        write_report(args, score(args, plugins), times)
    elif args.part not in ("main", *(f"plugin:{d}" for d in plugins)) and args.part.count(":") != 2:
        parser.error(f"unknown --part {args.part!r}")


def score(args: argparse.Namespace, plugins: list[str]) -> dict:
    """Every row on the v2 test set, the scorer table, the reward history."""
    work = Path(args.work)
    rows = {"rainy input": crop_scores(None, [args.domain, None])}
    models = {
        "stage 1": work / "rgsud" / "stage1_final.pt",
        "stage 1 + 2": work / "rgsud" / "stage2_final.pt",
        "stage 1, same total iterations": work / "stage1_longer" / "stage1_final.pt",
        "paired bound (supervised, to a plateau)": work / "bound" / f"task1_{args.domain}" / "final.pt",
    }
    for name, path in models.items():
        if path.is_file():
            rows[name] = crop_scores(load_model(path), [args.domain, None])
    plugin, plugin_runs, plugin_start, shipped = {}, {}, {}, load_model(BUILTIN_WEIGHTS)
    for domain in plugins:
        for recipe, (label, _) in PLUGIN_RECIPES.items():
            run = plugin_dir(args, domain, recipe)
            if not (run / "stage2_final.pt").is_file():
                continue
            if domain not in plugin:
                plugin[domain] = {
                    "rainy input": crop_scores(None, [domain, None]),
                    "shipped de-rainer": crop_scores(shipped, [domain, None]),
                }
                val = render(args, domain)["val"]  # what stage 2 validates on; the shipped network is its start
                plugin_start[domain] = evaluate_folder(shipped, val, device="cpu", progress=False)["mean"]["psnr_rgb"]
            name = f"shipped + stage 2 ({label})"
            for row, checkpoint in ((name, "stage2_final.pt"), (f"{name}, best validated", "stage2_best.pt")):
                if (run / checkpoint).is_file():  # best validated: the start counts, so it may be the shipped one
                    plugin[domain][row] = crop_scores(load_model(run / checkpoint), [domain, None])
            stage2 = json.loads((run / "summary.json").read_text())["stages"]["stage2"]
            plugin_runs.setdefault(domain, {})[name] = {
                "warmup": stage2.get("warmup_iterations", 0),
                "iterations": stage2["iterations"],
                "validation_psnr_rgb": [  # by the de-rainer's stage-2 iterations (it is held still in the warm-up)
                    (v["step"] - stage2.get("warmup_iterations", 0), v["psnr_rgb"]) for v in stage2["validation"]
                ],
            }
    folders = render(args, args.domain)
    clean_images = [to_tensor(read_image(p)) for p in sorted(folders["clean"].iterdir())[:64]]
    rainy_images = [to_tensor(read_image(p)) for p in sorted((folders["rainy"] / "rain").iterdir())[:64]]
    scorers = {
        name: fit_scorer(name, clean_images, rainy_images, block=32) for name in ("niqe", "rain_cnn", "combined")
    }
    snapshots = sorted((work / "rgsud" / "snapshots").glob("stage*.pt"))  # stage 1 then stage 2, in order
    summary_path = work / "rgsud" / "summary.json"
    history = json.loads(summary_path.read_text()).get("reward_history", []) if summary_path.is_file() else []
    return {
        "rows": rows,
        "plugin": plugin,
        "plugin_runs": plugin_runs,
        "plugin_start_val_psnr_rgb": plugin_start,
        "scorers": {
            domain: validate_scorers(snapshots, domain, scorers) for domain in dict.fromkeys([args.domain, "storm"])
        }
        if len(snapshots) > 1
        else {},
        "snapshots": len(snapshots),
        "reward_history": history,
    }


def row_table(rows: dict, domain: str, reference: str | None = None) -> list[str]:
    """PSNR-Y / SSIM-Y with CIs, the paired gain over the rainy input (and over `reference`), the clean column."""
    lines = [
        f"| model | PSNR-Y | SSIM-Y | gain over the input | {'gain over ' + reference + ' | ' if reference else ''}"
        "clean input PSNR-Y |",
        "|---|---|---|---|---|" + ("---|" if reference else ""),
    ]
    inputs = rows["rainy input"][domain]["psnr_y"]
    for name, scores in rows.items():
        psnr_y = scores[domain]["psnr_y"]
        gain = mean_ci(np.subtract(psnr_y, inputs)) if name != "rainy input" else ""
        versus = ""
        if reference:
            versus = (mean_ci(np.subtract(psnr_y, rows[reference][domain]["psnr_y"])) if reference in rows
                      and name not in ("rainy input", reference) else "") + " | "  # fmt: skip
        clean = mean_ci(scores[CLEAN]["psnr_y"]) if name != "rainy input" else "100 (by definition)"
        lines.append(f"| {name} | {mean_ci(psnr_y)} | {mean_ci(scores[domain]['ssim_y'])} | {gain} | {versus}{clean} |")
    return lines


def write_report(args: argparse.Namespace, results: dict, times: dict) -> None:
    """`<out>.md` / `.json` and the pool-score plot."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        f"python benchmarks/reward_synthetic.py --domain {args.domain} --plugin-domains {args.plugin_domains} "
        f"--model {args.model} --n-train {args.n_train} --n-val {args.n_val} --size {args.size} --stage1 "
        f"{args.stage1} --stage2 {args.stage2} --sweep-every {args.sweep_every} --bound-cap {args.bound_cap} "
        f"--scorer {args.scorer} --work {args.work}" + (" --results" if args.results else f" --out {args.out}")
    )
    lines = [
        f"# RGSUD on data v2: unpaired `{args.domain}`, and plug-in mode on the shipped de-rainer",
        "",
        f"Command: `{command}` (parts: `--part main`, `--part plugin:DOMAIN`, then `--part report`).",
        "",
        f"Training: {args.n_train // 2} rainy scenes of `{args.domain}` and {args.n_train - args.n_train // 2} other, "
        f"clean scenes (data v2 training scenes, {args.size}x{args.size}); the stage-2 plateau watches "
        f"{args.n_val} validation images of training scenes. De-rainer `{args.model}`; rain transfer width 16 / 2 "
        "blocks, PatchGAN ndf 16, DEM width 8 (narrowed for a CPU; paper: 64 / 6 / 64); 64x64 crops, batch 4; "
        f"reward scorer `{args.scorer}`, sweeps every {args.sweep_every} iterations. No VGG perceptual loss (no "
        f"ImageNet weights offline). Device: {device_name()}.",
        "Scores: the data v2 test set (126 80x80 crops of four test-only photos), PSNR-Y / SSIM-Y, [95 % bootstrap "
        "CI over the crops]; gains are paired per crop. `clean input`: the network fed the clean crops.",
        "",
        f"## Unpaired `{args.domain}`",
        "",
        *row_table(results["rows"], args.domain, reference="stage 1"),
        "",
    ]
    if results["plugin"]:
        lines += ["## Plug-in mode: stage 2 only, on the shipped default de-rainer", ""]
        for domain, rows in results["plugin"].items():
            seen = "one of its training domains" if domain != "storm" else "held out of its training"
            lines += [f"### `{domain}` ({seen})", "", *row_table(rows, domain, reference="shipped de-rainer"), ""]
            runs = results["plugin_runs"].get(domain, {})
            if runs:
                start = results["plugin_start_val_psnr_rgb"][domain]
                lines += ["| plug-in run | warm-up iterations | stage-2 iterations | validation PSNR-RGB by stage-2 "
                          f"iteration (shipped de-rainer: {start:.2f}) |",
                          "|---|---|---|---|"]  # fmt: skip
                for name, run in runs.items():
                    trace = ", ".join(f"{step}: {value:.2f}" for step, value in run["validation_psnr_rgb"])
                    lines.append(f"| {name} | {run['warmup']} | {run['iterations']} | {trace} |")
                lines.append("")
    if results["scorers"]:
        lines += [
            f"## Reward scorers ({results['snapshots']} snapshots of the `{args.domain}` run, stage 1 then stage 2, "
            "scored on the test crops of its domain and of the unseen `storm`)",
            "",
            "| test crops | scorer | Spearman with PSNR-Y (pooled) | Spearman within image | replacements | "
            "raising PSNR-Y |",
            "|---|---|---|---|---|---|",
        ]
        for domain, table in results["scorers"].items():
            for name, t in table.items():
                lines.append(
                    f"| {domain} | {name} | {t['spearman_pooled']:.3f} | {t['spearman_within_image']:.3f} | "
                    f"{t['replacements']} | {t['replacements_raising_psnr']:.2%} |"
                )
        lines.append("")
    if results["reward_history"]:
        lines += ["## Reward pool across sweeps (training images; lower score is better)", "",
                  "| stage | step | mean score | replaced | rejected (colour) | replacements raising PSNR |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for h in results["reward_history"]:
            lines.append(
                f"| {h.get('stage', 'seed')} | {h['step']} | {h['mean_score']:.4f} | {h['replaced']} | "
                f"{h['rejected_colour']} | {h.get('replacements_raising_psnr', '')} |"
            )
        lines += ["", f"Plot: `{out.name}_scores.png`.", ""]
    lines += ["## Wall time", "", "| part | seconds |", "|---|---|", *[f"| {k} | {v:.0f} |" for k, v in times.items()]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(
        dumps({"command": command, "device": device_name(), "times_s": times, **results})
    )
    plot = Path(args.work) / "rgsud" / "reward_scores.png"
    if plot.is_file():
        shutil.copy(plot, out.parent / f"{out.name}_scores.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
