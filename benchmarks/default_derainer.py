"""The shipped default de-rainer on the data v2 test set: every seen and unseen domain, and dry frames.

Usage:
    python benchmarks/default_derainer.py                         # the installed built-in weights
    python benchmarks/default_derainer.py --weights runs/shipped_realtime/best.pt --install
    python benchmarks/default_derainer.py --results               # write benchmarks/results/ (else runs/benchmarks)

Writes `default_derainer.{md,json,png}`: per domain the rainy input and the output (PSNR-Y, SSIM-Y, means with
bootstrap 95 % CIs over the 126 test crops, the paired gain with its CI, per-scene gains), the clean-input row
(the network fed the clean crops), and an image grid (rainy | de-rained | clean, 2x zoom) to look at.
`--install` copies the weights into the package (`derain/models/weights/`) with their card (data, iterations,
recipe, this table, the commands that reproduce it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from derain.data.rain import RAIN_DOMAINS, get_domain
from derain.models import build_model, load_model, read_checkpoint, save_checkpoint
from derain.models.builtin import BUILTIN_CARD, BUILTIN_WEIGHTS, resolve_weights
from derain.train.testset import CLEAN, image_grid, model_runner, score_domains, table_lines, worst_gain

log = logging.getLogger("default_derainer")
RESULTS = Path(__file__).parent / "results"


def write_markdown(report: dict, path: Path) -> None:
    summary = report["training"]
    dry = report["domains"][CLEAN]["output"]["psnr_y"]["mean"]
    lines = [
        "# The shipped default de-rainer on the data v2 test set",
        "",
        f"Command: `{report['command']}` ({report['date']}, {report['device']}, {report['seconds']:.0f} s).",
        f"Weights: `{report['weights']}` ({report['network']['name']}, {summary.get('iterations', '?')} iterations, "
        f"stopped: {summary.get('stopped', '?')}; trained on {', '.join(summary.get('domains', []))} + randomized "
        f"rain + dry frames; held out: {', '.join(summary.get('holdout', []))}); network arguments: "
        f"`{report['network']['kwargs']}`.",
        *([f"Note: {report['note']}"] if report.get("note") else []),
        "Test set: 126 non-overlapping 80x80 crops of scikit-image `coffee`, `rocket`, `chelsea`, `astronaut` "
        "(no training image comes from them), the same clean crops for every domain. PSNR-Y / SSIM-Y (MATLAB "
        "convention); [95 % bootstrap CI of the mean]; gain = output - input, paired per crop. Seen = in the "
        "de-rainer's training rain; unseen = never rendered during its training.",
        "",
        *table_lines(report["domains"], summary.get("domains", [])),
        f"Clean frames {'are' if dry >= 38 else 'are not'} kept at >= 38 dB PSNR-Y ({dry:.2f} dB).",
        "",
        f"![rainy | de-rained | clean per domain]({path.with_suffix('.png').name})",
    ]
    path.write_text("\n".join(lines) + "\n")


def install(weights: Path, model: torch.nn.Module, report: dict) -> None:
    """Copy the weights (network weights only, no optimizer) into the package, with the card."""
    state = read_checkpoint(weights)
    BUILTIN_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(BUILTIN_WEIGHTS, model, step=state.get("step"), config=state.get("config"))
    card = {k: report[k] for k in ("network", "training", "recipe", "domains", "worst_gain", "worst_domain", "note")}
    card["reproduce"] = [
        "derain-train --yaml train/configs/shipped_realtime.yaml --resume auto",
        f"python benchmarks/default_derainer.py --weights {weights} --install --results",
    ]
    card["source_checkpoint"] = str(weights)
    BUILTIN_CARD.write_text(json.dumps(card, indent=1) + "\n")
    log.info("installed %s (%.1f MB) and %s", BUILTIN_WEIGHTS, BUILTIN_WEIGHTS.stat().st_size / 1e6, BUILTIN_CARD)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="builtin", help="checkpoint, or 'builtin' (the installed weights)")
    parser.add_argument("--out", default="runs/benchmarks", help="report folder (default runs/benchmarks)")
    parser.add_argument("--results", action="store_true", help=f"write the report to {RESULTS} instead")
    parser.add_argument("--install", action="store_true", help="copy the weights and card into the package")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--note", help="a sentence about this run for the report and the card")
    parser.add_argument("--bypass", type=float, help="with --shrink: the frame bypass threshold (grey levels)")
    parser.add_argument("--shrink", type=float, help="grey levels of the dry-frame detector (realtime network's "
                        "`shrink`; see benchmarks/dry_frames.py)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    weights = resolve_weights(args.weights)
    state = read_checkpoint(weights)
    model = load_model(weights).to(args.device)
    if args.shrink is not None:
        spec = model.spec
        shrunk = build_model(spec["name"], **{**spec["kwargs"], "shrink": args.shrink, "bypass": args.bypass or 0.0})
        shrunk.load_state_dict(model.state_dict())
        model = shrunk.to(args.device).eval()
    run = model_runner(model, args.device)
    config = state.get("config") or {}
    summary_file = Path(config.get("out", "")) / "summary.json"
    training = json.loads(summary_file.read_text()) if config.get("out") and summary_file.is_file() else {}
    if not training and args.weights == "builtin" and BUILTIN_CARD.is_file():
        training = json.loads(BUILTIN_CARD.read_text()).get("training", {})
    domains = [d for d in RAIN_DOMAINS if get_domain(d).role != "training"]
    scores = score_domains(run, domains)
    worst, gain = worst_gain(scores)
    out = RESULTS if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/default_derainer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "device": args.device,
              "weights": str(weights), "network": model.spec, "training": training, "recipe": config,
              "domains": scores, "worst_gain": gain, "worst_domain": worst, "note": args.note}  # fmt: skip
    image_grid(run, [*domains, CLEAN], out / "default_derainer.png")
    report["seconds"] = time.perf_counter() - started
    (out / "default_derainer.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, out / "default_derainer.md")
    if args.install:
        install(Path(weights), model.cpu(), report)
    print((out / "default_derainer.md").read_text())
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
