"""Cost of scoring one image pair (PSNR + SSIM, both conventions, float64) on this machine.

Compares `derain.quality.uint8_metrics` (SSIM window applied as two 1-D passes) with the direct 11x11 window it
replaced, and checks that both give the same values. Writes `runs/benchmarks/metrics_speed.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from derain.quality import metrics, uint8_metrics
from derain.timing import median_seconds


def ssim_direct(pred: torch.Tensor, target: torch.Tensor, convention: str) -> torch.Tensor:
    """SSIM with the 2-D Gaussian window as one 11x11 grouped convolution (the definition, unfactored)."""
    return metrics.ssim(pred, target, convention, separable=False)


def direct_metrics(pred_rgb: np.ndarray, target_rgb: np.ndarray, device: str) -> dict[str, float]:
    def as_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(image).to(device).permute(2, 0, 1)[None].double() / 255.0

    pred, target = as_tensor(pred_rgb), as_tensor(target_rgb)
    out = {}
    for conv in metrics.CONVENTIONS:
        out[f"psnr_{conv}"] = float(metrics.psnr(pred, target, conv)[0])
        out[f"ssim_{conv}"] = float(ssim_direct(pred, target, conv)[0])
    return out


def timed(fn, repeat: int, device: str) -> float:  # noqa: ANN001
    return median_seconds(fn, repeat, warmup=1, cuda=device == "cuda")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="runs/benchmarks/metrics_speed")
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    args = parser.parse_args()
    if args.results:
        args.out = str(Path(__file__).parent / "results" / "metrics_speed")
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, (*args.size, 3), dtype=np.uint8)
    noisy = np.clip(clean.astype(int) + rng.integers(-40, 41, clean.shape), 0, 255).astype(np.uint8)
    new = uint8_metrics(noisy, clean, args.device)
    old = direct_metrics(noisy, clean, args.device)
    rows = {
        "two 1-D passes (uint8_metrics)": timed(
            lambda: uint8_metrics(noisy, clean, args.device), args.repeat, args.device
        ),
        "one 11x11 window": timed(lambda: direct_metrics(noisy, clean, args.device), args.repeat, args.device),
    }
    diff = max(abs(new[k] - old[k]) for k in new)
    where = f"{args.device}, {torch.get_num_threads()} threads" if args.device == "cpu" else args.device
    lines = [
        "# Scoring cost per image pair (PSNR + SSIM, RGB and Y conventions, float64)",
        "",
        f"Command: `python benchmarks/metrics_speed.py --size {args.size[0]} {args.size[1]} --repeat {args.repeat} "
        f"--device {args.device} --out {args.out}`",
        "",
        f"{args.size[0]}x{args.size[1]} RGB pair on {where}; median of {args.repeat} runs after one warm-up. "
        f"Largest difference between the two implementations over the four metrics: {diff:.1e}.",
        "",
        "| SSIM filtering | ms per pair |",
        "|---|---|",
        *[f"| {name} | {seconds * 1e3:.1f} |" for name, seconds in rows.items()],
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps({"seconds": rows, "max_abs_difference": diff, "size": args.size, "device": where}, indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
