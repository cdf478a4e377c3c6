"""How hard each built-in rain domain is: mean PSNR/SSIM of its rainy test inputs against the clean images.

Usage: python benchmarks/rain_domains.py [--n 100] [--size 256x256] [--out benchmarks/results]
Renders each domain's test split in memory exactly as `derain-data synth` writes it (same seeds, uint8).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from derain.data.io import read_image
from derain.data.pairing import paired_folder
from derain.data.rain import RAIN_DOMAINS
from derain.data.synth import synthesize_split
from derain.quality import uint8_metrics

# Rainy-input PSNR of the public sets as commonly reported (Y channel), for orientation only.
PUBLISHED_INPUT_PSNR = {"rain100L": 26.9, "rain100H": 13.6, "rain1400": 25.4}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="test images per domain")
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in RAIN_DOMAINS:
            start = time.perf_counter()
            folder = synthesize_split(name, "test", args.n, Path(tmp) / name, size=(height, width))
            seconds = time.perf_counter() - start
            scores = [uint8_metrics(read_image(p.rainy), read_image(p.clean)) for p in paired_folder(folder)]
            mean = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
            rows.append({"domain": name, **{k: round(v, 4) for k, v in mean.items()}, "render_s": round(seconds, 2)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rain_domains.json").write_text(json.dumps({"n": args.n, "size": args.size, "rows": rows}, indent=2))
    lines = [
        "# Built-in rain domains: rainy-input quality of the test split",
        "",
        f"Command: `python benchmarks/rain_domains.py --n {args.n} --size {args.size}` "
        "(test scenes: scikit-image `coffee`, `rocket`). Lower PSNR = harder.",
        "",
        "| domain | PSNR RGB | SSIM RGB | PSNR Y | SSIM Y | published input PSNR (Y) of the public set | "
        "render + write time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = PUBLISHED_INPUT_PSNR.get(r["domain"], "")
        lines.append(
            f"| {r['domain']} | {r['psnr_rgb']:.2f} | {r['ssim_rgb']:.4f} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} "
            f"| {ref} | {r['render_s']:.1f} |"
        )
    (out / "rain_domains.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
