"""Dry frames: what a cheap rain detector in front of the de-rainer costs and gains.

Usage: python benchmarks/dry_frames.py [--weights runs/shipped_realtime/best.pt] [--results]

The network's correction r = output - input is what it believes is rain. Two detectors, both free (elementwise on
r, no second network), are measured on the v2 test set against doing nothing:
- `frame bypass t`: a frame whose mean negative correction (streaks removed, grey levels) is below t is passed
  through unchanged (no rain seen in it);
- `shrink tau`: each pixel's correction is soft-thresholded by tau grey levels, sign(r) max(|r| - tau, 0): the
  small edits a network makes on dry texture vanish, streak removals (tens of grey levels) stay;
- both: shrink first, then the bypass on what is left.
Per setting: the clean-input PSNR-Y (dry frames) and the mean gain on every domain. Writes `dry_frames.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from derain.builtin import resolve_weights
from derain.data.rain import RAIN_DOMAINS, get_domain
from derain.data.scenes import paired_crops
from derain.models import load_model
from derain.train.testset import CLEAN, batch_metrics, model_runner

RESULTS = Path(__file__).parent / "results"
BYPASS = (0.5, 1.0, 1.5, 2.0)
SHRINK = (1.0, 2.0, 3.0, 4.0)


def apply(rainy: np.ndarray, out: np.ndarray, kind: str, value: float) -> np.ndarray:
    if kind == "none":
        return out
    r = out.astype(np.float32) - rainy.astype(np.float32)
    if kind == "bypass":
        return rainy if np.maximum(-r, 0).mean() < value else out
    if kind.startswith("bypass+shrink"):  # value = (bypass, shrink)
        bypass, shrink = value
        r = np.sign(r) * np.maximum(np.abs(r) - shrink, 0)
        return rainy if np.maximum(-r, 0).mean() < bypass else np.clip(np.rint(rainy + r), 0, 255).astype(np.uint8)
    shrunk = np.sign(r) * np.maximum(np.abs(r) - value, 0)
    return np.clip(np.rint(rainy + shrunk), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="builtin")
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--results", action="store_true", help=f"write to {RESULTS}")
    args = parser.parse_args(argv)
    run = model_runner(load_model(resolve_weights(args.weights)))
    settings = [("none", 0.0)] + [("bypass", t) for t in BYPASS] + [("shrink", t) for t in SHRINK]
    settings += [("bypass+shrink", (b, t)) for b in (0.5, 1.0, 1.5) for t in (2.0, 4.0)]
    domains = [d for d in RAIN_DOMAINS if get_domain(d).role != "training"]
    table: dict[str, dict[str, float]] = {}
    for domain in [*domains, None]:
        clean, rainy, _ = paired_crops(domain)
        outputs = run(rainy)
        before = batch_metrics(rainy, clean)["psnr_y"]
        for kind, value in settings:
            final = [apply(r, o, kind, value) for r, o in zip(rainy, outputs, strict=True)]
            after = batch_metrics(final, clean)["psnr_y"]
            name = (
                kind
                if kind == "none"
                else f"{kind} {value:g}"
                if kind != "bypass+shrink"
                else f"bypass {value[0]:g} + shrink {value[1]:g}"
            )
            table.setdefault(name, {})[domain or CLEAN] = float(
                after.mean() if domain is None else (after - before).mean()
            )
    out = RESULTS if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/dry_frames.py " + " ".join(argv if argv is not None else sys.argv[1:])
    (out / "dry_frames.json").write_text(json.dumps({"command": command, "table": table}, indent=1) + "\n")
    lines = [
        "# Dry frames: a free rain detector in front of the de-rainer",
        "",
        f"Command: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M')}). v2 test set (126 crops); the clean "
        "column is the network fed the clean crops (PSNR-Y against them, 100 = unchanged); the others are mean "
        "PSNR-Y gains over the rainy input.",
        "",
        "| detector | clean input PSNR-Y | " + " | ".join(f"{d} gain" for d in domains) + " | smallest gain |",
        "|---" * (3 + len(domains)) + "|",
    ]
    for name, row in table.items():
        gains = [row[d] for d in domains]
        lines.append(
            f"| {name} | {row[CLEAN]:.2f} | " + " | ".join(f"{g:+.2f}" for g in gains) + f" | {min(gains):+.2f} |"
        )
    (out / "dry_frames.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
