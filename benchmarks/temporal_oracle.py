"""How much the past can give a per-frame de-rainer, and what alignment is worth: a moving average of the shipped
per-frame network's outputs on rendered rainy clips, aligned by the clips' exact camera motion or not aligned.

    python benchmarks/temporal_oracle.py [--results]

Clips: one per seen domain and `real_like` (16 frames of 320x192, one shot, no dry stretch, the camera motion drawn
per clip), over the test-only photos. out_t = (1 - a) * per_frame_t + a * past_t, past_t = out_{t-1} warped onto
frame t by the exact motion (aligned) or as it is (unaligned); a in {0.5, 0.7}; PSNR-Y over frames 1.. . This is
what decided that the runtime aligns the temporal network's past (`derain/runtime/temporal.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from derain.data.rain import SEEN_DOMAINS
from derain.data.video import ClipConfig, render_clip
from derain.quality.video import frame_scores, warp
from derain.runtime import Derainer

RESULTS = Path(__file__).parent / "results"
VARIANTS = (("aligned, a=0.5", 0.5, True), ("aligned, a=0.7", 0.7, True), ("unaligned, a=0.5", 0.5, False))


def averaged(per_frame: np.ndarray, flow: np.ndarray, weight: float, aligned: bool) -> np.ndarray:
    out = [per_frame[0].astype(np.float32)]
    for t in range(1, len(per_frame)):
        past, share = out[-1], weight
        if aligned:
            past, inside = warp(out[-1], flow[t])
            share = weight * inside[..., None]
        out.append((1 - share) * per_frame[t] + share * past)
    return np.clip(np.round(np.stack(out)), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", action="store_true", help=f"write to {RESULTS} (else runs/benchmarks)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    started = time.perf_counter()
    derainer = Derainer(device="cpu")
    config = ClipConfig(frames=16, height=192, width=320, shots=(1, 1), dry_prob=0.0)
    rows = []
    for index, domain in enumerate((*SEEN_DOMAINS, "real_like")):
        clip = render_clip(domain, 1000 + index, config)
        per_frame = np.stack([derainer(np.ascontiguousarray(f[..., ::-1]))[..., ::-1] for f in clip.rainy])
        row = {"domain": domain, "motion": clip.motions[0],
               "per-frame": float(frame_scores(per_frame, clip.clean)["psnr_y"][1:].mean())}  # fmt: skip
        for name, weight, aligned in VARIANTS:
            row[name] = float(frame_scores(averaged(per_frame, clip.flow, weight, aligned), clip.clean)["psnr_y"][1:]
                              .mean())  # fmt: skip
        rows.append(row)
    names = ["per-frame", *(v[0] for v in VARIANTS)]
    means = {name: float(np.mean([r[name] for r in rows])) for name in names}
    out = RESULTS if args.results else Path("runs/benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/temporal_oracle.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows, "means": means,
              "seconds": time.perf_counter() - started}  # fmt: skip
    (out / "temporal_oracle.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# The past, aligned or not: a moving average of per-frame outputs on rendered rainy video", "",
             f"Command: `{command}` ({report['date']}, CPU, {report['seconds']:.0f} s). See the script's docstring.",
             "", "| clip (domain, camera) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             *[f"| {r['domain']}, {r['motion']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |" for r in rows],
             "| **mean** | " + " | ".join(f"**{means[n]:.2f}**" for n in names) + " |", "",
             "Gain over per-frame: " + ", ".join(f"{n} {means[n] - means['per-frame']:+.2f} dB" for n in names[1:])
             + "."]  # fmt: skip
    (out / "temporal_oracle.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
