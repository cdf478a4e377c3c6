"""How much the past can give a per-frame de-rainer, and what alignment is worth: a moving average of the shipped
per-frame network's outputs on rendered rainy clips, aligned by the clips' exact camera motion or not aligned.

    python benchmarks/temporal_oracle.py [--results]

Clips: one per seen domain and `real_like` (16 frames of 320x192, one shot, no dry stretch, the camera motion drawn
per clip), over the test-only photos. out_t = (1 - a) * per_frame_t + a * past_t, past_t = out_{t-1} warped onto
frame t by the exact motion (aligned) or as it is (unaligned); a in {0.5, 0.7}; PSNR-Y over frames 1.. . This is
what decided that the runtime aligns the temporal network's past (`derain/runtime/temporal.py`).

Second table: the runtime's camera-motion estimate (`derain.runtime.temporal.camera_motion`, the rainy frame against
the clean previous frame, which stands in for the previous output) against the exact motion, on 60 clips (3 seeds x
5 domains x 4 camera motions), median pixel error per frame, beside the error of assuming no motion.

Third table: the runtime's cut detector (`derain.runtime.temporal.scene_change`) on 72 clips of every rain domain
with 2-3 shots: its value between consecutive rainy frames within a shot and across a cut, against `CUT_LEVELS`.
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
    from derain.runtime.temporal import camera_motion

    errors, still, seconds = [], [], []
    ys, xs = np.mgrid[0:192, 0:320]
    for seed in range(3):
        for domain in ("rain100H", "rain1200_heavy", "rain100L", "real_like", "rain1400"):
            for motion in ("pan", "zoom", "forward", "static"):
                clip = render_clip(domain, 7 + seed, ClipConfig(frames=6, height=192, width=320, shots=(1, 1),
                                                                motions=(motion,), dry_prob=0.0))  # fmt: skip
                clock = time.perf_counter()
                m = camera_motion(np.ascontiguousarray(clip.rainy[4][..., ::-1]),
                                  np.ascontiguousarray(clip.clean[3][..., ::-1]))  # fmt: skip
                seconds.append(time.perf_counter() - clock)
                dx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs - clip.flow[4][..., 0]
                dy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys - clip.flow[4][..., 1]
                errors.append(float(np.median(np.hypot(dx, dy))))
                still.append(float(np.median(np.hypot(clip.flow[4][..., 0], clip.flow[4][..., 1]))))
    errors_, still_ = np.array(errors), np.array(still)
    alignment = {"clips": len(errors), "median_px": float(np.median(errors_)), "p90_px": float(np.percentile(
        errors_, 90)), "no_motion_median_px": float(np.median(still_)), "no_motion_p90_px": float(np.percentile(
        still_, 90)), "worse_than_no_motion": float(np.mean(errors_ > still_ + 0.1)),
        "ms_320x192": 1000 * float(np.median(seconds))}  # fmt: skip
    from derain.runtime.temporal import CUT_LEVELS, scene_change

    within, across = [], []
    cut_domains = ("rain100H", "rain100L", "rain1200_heavy", "real_like", "storm", "rain1400", "randomized",
                   "rain1200_medium")  # fmt: skip
    for index in range(72):
        clip = render_clip(cut_domains[index % 8], 200 + index, ClipConfig(frames=24, height=192, width=320,
                                                                           shots=(2, 3)))  # fmt: skip
        bgr = clip.rainy[..., ::-1]
        for t in range(1, 24):
            (across if t in clip.cuts else within).append(scene_change(bgr[t], bgr[t - 1]))
    within_, across_ = np.array(within), np.array(across)
    cuts = {"frames_within": len(within), "cuts": len(across), "within_median": float(np.median(within_)),
            "within_p99": float(np.percentile(within_, 99)), "within_max": float(within_.max()),
            "cuts_min": float(across_.min()), "cuts_p5": float(np.percentile(across_, 5)), "threshold": CUT_LEVELS,
            "false_resets": float(np.mean(within_ > CUT_LEVELS)),
            "found": float(np.mean(across_ > CUT_LEVELS))}  # fmt: skip
    names = ["per-frame", *(v[0] for v in VARIANTS)]
    means = {name: float(np.mean([r[name] for r in rows])) for name in names}
    out = RESULTS if args.results else Path("runs/benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/temporal_oracle.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows, "means": means,
              "alignment": alignment, "cuts": cuts, "seconds": time.perf_counter() - started}  # fmt: skip
    (out / "temporal_oracle.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = ["# The past, aligned or not: a moving average of per-frame outputs on rendered rainy video", "",
             f"Command: `{command}` ({report['date']}, CPU, {report['seconds']:.0f} s). See the script's docstring.",
             "", "| clip (domain, camera) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             *[f"| {r['domain']}, {r['motion']} | " + " | ".join(f"{r[n]:.2f}" for n in names) + " |" for r in rows],
             "| **mean** | " + " | ".join(f"**{means[n]:.2f}**" for n in names) + " |", "",
             "Gain over per-frame: " + ", ".join(f"{n} {means[n] - means['per-frame']:+.2f} dB" for n in names[1:])
             + ".", "", "## The runtime's camera-motion estimate", "",
             "| clips | median error px | p90 px | no motion: median px | p90 px | worse than no motion | ms at "
             "320x192 |", "|---|---|---|---|---|---|---|",
             f"| {alignment['clips']} | {alignment['median_px']:.2f} | {alignment['p90_px']:.2f} | "
             f"{alignment['no_motion_median_px']:.2f} | {alignment['no_motion_p90_px']:.2f} | "
             f"{alignment['worse_than_no_motion']:.0%} | {alignment['ms_320x192']:.1f} |", "",
             "## The runtime's cut detector (grey levels of eroded block-luma change)", "",
             "| frames within shots | median | p99 | max | cuts | min | p5 | threshold | within above it | cuts "
             "found |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| {cuts['frames_within']} | {cuts['within_median']:.1f} | {cuts['within_p99']:.1f} | "
             f"{cuts['within_max']:.1f} | {cuts['cuts']} | {cuts['cuts_min']:.1f} | {cuts['cuts_p5']:.1f} | "
             f"{cuts['threshold']:.0f} | {cuts['false_resets']:.1%} | {cuts['found']:.0%} |"]  # fmt: skip
    (out / "temporal_oracle.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
