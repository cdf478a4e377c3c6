"""`derain-adapt` on new cameras: the shipped de-rainer adapted to `storm` and `real_like` from unpaired footage.

Usage:
    python benchmarks/adapt.py --domains storm --minutes 12          # one new camera, every method (a worker)
    python benchmarks/adapt.py --domains storm real_like --minutes 12 --results   # reuses finished runs, writes

Per new camera (a rain domain), the footage a user would hand over: `--clips` rainy clips of `--frames` frames at
320x192 (`derain.data.video.write_footage`: the domain's rain over training scenes, camera motion, as PNG folders)
and `--dry-clips` dry clips of other scenes; the method never sees a clean twin of a rainy frame. Each method
(`render`, `reward`, `mix`) adapts the shipped de-rainer within `--minutes` (`derain.train.adapt.adapt`, the fit
included, one thread when run as a worker). Scored on the data v2 test crops (the four test-only photos, never in
the footage) of every domain: PSNR-Y of the adapted network against the start's, paired per crop, 95 % bootstrap
CI; the rainy input and the dry crops as rows. Runs are kept under `--out` and reused when finished.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from derain.builtin import resolve_weights
from derain.data.rain import SEEN_DOMAINS
from derain.data.scenes import SceneSampler
from derain.data.video import ClipConfig, write_footage
from derain.models import load_model
from derain.outputs import atomic_write_text
from derain.train.adapt import METHODS, AdaptConfig, adapt
from derain.train.testset import CLEAN, bootstrap_ci, crop_scores

log = logging.getLogger("adapt_benchmark")
RESULTS = Path(__file__).parent / "results"
DOMAINS = (*SEEN_DOMAINS, "real_like", "storm")
GOAL_GAIN, GOAL_SEEN, GOAL_DRY = 1.5, 0.3, 0.1


def footage(work: Path, domain: str, args: argparse.Namespace) -> tuple[Path, Path]:
    rainy, dry = work / domain / "footage" / "rainy", work / domain / "footage" / "dry"
    if not (work / domain / "footage" / "done").is_file():
        config = ClipConfig(frames=args.frames, dry_prob=0.0, shots=(1, 1))
        sampler = SceneSampler(0.5, pool=48, seed=1)
        write_footage(rainy, domain, args.clips, config, seed=args.seed, sampler=sampler)
        write_footage(dry, domain, args.dry_clips, config, seed=args.seed, dry=True, sampler=sampler)
        (work / domain / "footage" / "done").write_text("")
    return rainy, dry


def paired(after: list[float], before: list[float]) -> dict:
    diff = np.asarray(after) - np.asarray(before)
    low, high = bootstrap_ci(diff)
    return {"mean": float(diff.mean()), "ci": [low, high]}


def run_domain(work: Path, domain: str, args: argparse.Namespace) -> dict:
    rainy, dry = footage(work, domain, args)
    results = {}
    for method in args.methods:
        out = work / domain / method
        scored = out / "scores.json"
        if scored.is_file():
            results[method] = json.loads(scored.read_text())
            continue
        started = time.perf_counter()
        config = AdaptConfig(rainy=(str(rainy),), dry=(str(dry),), out=str(out), method=method, minutes=args.minutes,
                             iterations=args.iterations, seed=args.seed, device="cpu")  # fmt: skip
        summary = adapt(config, resume="auto")
        seconds = time.perf_counter() - started
        adapted = crop_scores(load_model(out / "adapted.pt"), [*DOMAINS, None])
        entry = {"summary": {k: summary[k] for k in ("kept", "best_step", "steps", "stopped", "seconds", "start",
                                                      "adapted", "fit", "rain", "footage", "replaced_rewards")},
                 "wall_seconds": seconds, "scores": adapted}  # fmt: skip
        atomic_write_text(scored, json.dumps(entry, indent=1))
        results[method] = entry
    return results


def table(domain: str, runs: dict, start: dict, rainy: dict) -> list[str]:
    seen = [d for d in DOMAINS if d != domain and d != "storm"]
    lines = [f"## New camera: `{domain}`", "",
             f"Start (shipped) on `{domain}`: {np.mean(start[domain]['psnr_y']):.2f} dB PSNR-Y; rainy input "
             f"{np.mean(rainy[domain]['psnr_y']):.2f} dB.", "",
             f"| method | kept | steps | seconds | {domain} vs start (dB) | worst seen domain vs start | "
             "seen mean vs start | dry crops vs start | held-out footage rain score (start -> kept) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for method, entry in runs.items():
        scores, summary = entry["scores"], entry["summary"]
        gain = paired(scores[domain]["psnr_y"], start[domain]["psnr_y"])
        changes = {d: paired(scores[d]["psnr_y"], start[d]["psnr_y"]) for d in seen}
        worst = min(changes, key=lambda d: changes[d]["mean"])
        seen_mean = paired(np.mean([scores[d]["psnr_y"] for d in seen], axis=0),
                           np.mean([start[d]["psnr_y"] for d in seen], axis=0))  # fmt: skip
        dry = paired(np.minimum(scores[CLEAN]["psnr_y"], 60), np.minimum(start[CLEAN]["psnr_y"], 60))
        fmt = lambda e: f"{e['mean']:+.2f} [{e['ci'][0]:+.2f}, {e['ci'][1]:+.2f}]"  # noqa: E731
        lines.append(f"| {method} | {summary['kept']} | {summary['steps']} | {summary['seconds']:.0f} | "
                     f"{fmt(gain)} | {worst} {fmt(changes[worst])} | {fmt(seen_mean)} | {fmt(dry)} | "
                     f"{summary['start']['footage_rain']:.3f} -> "
                     f"{summary['adapted']['footage_rain']:.3f} |")  # fmt: skip
    lines += ["", "Per domain, adapted - start PSNR-Y (dB), paired per crop:", "",
              "| method | " + " | ".join(DOMAINS) + " | dry |", "|---|" + "---|" * (len(DOMAINS) + 1)]  # fmt: skip
    for method, entry in runs.items():
        scores = entry["scores"]
        cells = [f"{paired(scores[d]['psnr_y'], start[d]['psnr_y'])['mean']:+.2f}" for d in DOMAINS]
        dry = paired(np.minimum(scores[CLEAN]["psnr_y"], 60), np.minimum(start[CLEAN]["psnr_y"], 60))
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {dry['mean']:+.2f} |")
    fits = [(m, e["summary"]) for m, e in runs.items() if e["summary"].get("rain")]
    if fits:
        lines += ["", "Fitted rain (the parametric memory of the footage; distance of the residual rain statistics, "
                  "fit / held-out clips):", ""]  # fmt: skip
        for method, summary in fits:
            fit = summary["fit"]
            rain = {k: round(v, 4) if isinstance(v, float) else v for k, v in summary["rain"].items()}
            lines.append(f"- {method}: {fit['objective']:.3f} / {fit['held_out_distance']['distance']:.3f} in "
                         f"{fit['seconds']:.0f} s: `{json.dumps(rain)}`")  # fmt: skip
    return lines + [""]


def figure(work: Path, everything: dict, path: Path) -> None:
    """The first held-out frame of each run's report (rainy | start | kept), one row per camera and method."""
    import cv2

    rows = []
    for domain, runs in everything.items():
        for method in runs:
            image = cv2.imread(str(work / domain / method / "report.jpg"))
            if image is not None:
                row = image[: image.shape[0] // 3]
                cv2.putText(row, f"{domain} {method}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
                rows.append(row)
    if rows:
        width = max(r.shape[1] for r in rows)
        cv2.imwrite(str(path), np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]),
                    [cv2.IMWRITE_JPEG_QUALITY, 85])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", default=["storm", "real_like"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--iterations", type=int, default=800, help="each adaptation's steps (a step budget, so "
                        "that the result does not depend on what else the machine runs; the seconds are reported)")
    parser.add_argument("--minutes", type=float, default=60.0, help="each adaptation's time cap")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--dry-clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/adapt_benchmark")
    parser.add_argument("--results", action="store_true", help=f"write adapt.md / adapt.json to {RESULTS}")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = Path(args.out)
    start = crop_scores(load_model(resolve_weights("builtin")), [*DOMAINS, None])
    rainy = crop_scores(None, DOMAINS)
    everything = {d: run_domain(work, d, args) for d in args.domains}
    lines = ["# derain-adapt: the shipped de-rainer adapted to new cameras from unpaired footage", "",
             f"Command: `python benchmarks/adapt.py --domains {' '.join(args.domains)} --methods "
             f"{' '.join(args.methods)} --iterations {args.iterations} --results` ({time.strftime('%Y-%m-%d %H:%M')}, "
             f"cpu, {args.threads} thread(s) per adaptation).", ""]  # fmt: skip
    if args.note:
        lines += [f"Note: {args.note}", ""]
    lines += [f"Footage per camera: {args.clips} rainy clips and {args.dry_clips} dry clips (other scenes) of "
              f"{args.frames} frames at 320x192 over training scenes; a quarter of the clips held out for the guard. "
              "Test: the data v2 test crops (126 crops of the four test-only photos); PSNR-Y, adapted - start "
              "paired per crop, [95 % bootstrap CI]; dry = the clean crops (PSNR capped at 60 dB).", "",
              f"Goals: new camera >= +{GOAL_GAIN} dB over the start with the CI above 0; every seen domain within "
              f"{GOAL_SEEN} dB; dry frames unchanged; within 30 minutes on 2 cores.", ""]  # fmt: skip
    for domain, runs in everything.items():
        lines += table(domain, runs, start, rainy)
    report = {"domains": everything, "start": start, "rainy": rainy, "args": vars(args)}
    target = RESULTS if args.results else work
    target.mkdir(parents=True, exist_ok=True)
    figure(work, everything, target / "adapt.jpg")
    lines += ["![per camera and method, a held-out footage frame: rainy | start | kept network](adapt.jpg)", ""]
    atomic_write_text(target / "adapt.md", "\n".join(lines))
    atomic_write_text(target / "adapt.json", json.dumps(report))
    print("\n".join(lines))
    log.info("done in %.0f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
