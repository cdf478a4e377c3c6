"""Per-frame vs temporal de-rainer on rendered rainy video: fidelity, steadiness, single frames, speed, a detector.

Usage:
    python benchmarks/video_derainer.py --temporal runs/temporal_realtime_steady/final.pt          # -> runs/benchmarks
    python benchmarks/video_derainer.py --temporal runs/temporal_realtime_steady/final.pt --install --results

Test video: `--clips` clips per rain domain (every dataset domain, `real_like`, and `storm`, which neither network
saw in training) of `--frames` frames at `--size`, over the four test-only photos (`derain.data.video.render_clip`:
camera pans, zooms and moves forward, cuts, rain that stops or starts), deterministic by seed. Both de-rainers run
through the runtime's `Derainer` frame by frame in order, as a stream would (the temporal one carries its state
and resets it on the cuts it detects). Scores (`derain.quality.video`): PSNR-Y / SSIM-Y per frame averaged per clip,
flicker (luma change on still pixels over the clean video's, grey levels), warping error (Lai et al., flow of the
clean video by DIS); PSNR / SSIM over the frames with rain (dry frames apart: their PSNR against the unchanged
frame); means over clips with 95 % bootstrap CIs over clips, and the temporal - per-frame difference paired per
clip. Rows: the rainy input, each de-rainer, and each de-rainer fed the clean video.

Also: single frames (the temporal network with no past on the data v2 test crops of `default_derainer.md`, paired
per crop against the per-frame network), latency at 1280x720 on this CPU (1 thread; both through `Derainer`) with
the FP16 roofline projection of `benchmarks/latency.py`, and detector F1 (`benchmarks/detect_opencv4.py`: OpenCV
4.x's Haar face / cat-face / upper-body cascades and HOG people detector, reference = its boxes on the clean
frames) on clips over the packaged photos with people and a cat (`astronaut`, `camera`, `chelsea`).
`--install` copies the temporal weights (with the per-frame network's shrink / bypass) into the package.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from derain.builtin import TEMPORAL_NAME, builtin_card, resolve_weights, weights_dir
from derain.data.photos import photo
from derain.data.rain import SEEN_DOMAINS
from derain.data.video import ClipConfig, SyntheticRainVideo, render_clip
from derain.models import build_model, read_checkpoint, save_checkpoint
from derain.models.cost import frame_cost
from derain.quality.detection import counts, f1, f1_ci
from derain.quality.video import CleanMotion, flicker, frame_scores, warping_error
from derain.runtime import Derainer
from derain.train.testset import CLEAN, bootstrap_ci, crop_scores

sys.path.insert(0, str(Path(__file__).parent))
from latency import PROJECTED  # noqa: E402  (the published FP16 peaks the latency benchmark projects with)

log = logging.getLogger("video_derainer")
RESULTS = Path(__file__).parent / "results"
DOMAINS = (*SEEN_DOMAINS, "real_like", "storm")
UNSEEN = ("storm",)
DETECTOR_SCENES = ("astronaut.png", "camera.png", "chelsea.png")
FPS = 30.0


def with_shrink(weights: Path, shrink: float, bypass: float) -> torch.nn.Module:
    """The checkpoint's network with the per-frame network's dry-frame settings."""
    state = read_checkpoint(weights)
    model = build_model(state["model"]["name"], **{**state["model"]["kwargs"], "shrink": shrink, "bypass": bypass})
    model.load_state_dict(state["weights"])
    return model.eval()


def run_clip(derainer: Derainer, frames: np.ndarray, resets: list | None = None) -> np.ndarray:
    """RGB (T, H, W, 3) through a Derainer as a stream (BGR, in order, 30 fps timestamps) -> RGB outputs."""
    derainer.reset()
    outputs = []
    for index, frame in enumerate(frames):
        bgr = np.ascontiguousarray(frame[..., ::-1])
        if resets is not None and derainer.state is not None:
            resets.append(derainer.state.why_not(bgr, index / FPS))
        outputs.append(derainer(bgr, timestamp=index / FPS)[..., ::-1])
    return np.stack(outputs)


def ci_entry(values: list[float]) -> dict:
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data)]
    return {"mean": float(data.mean()) if data.size else float("nan"), "ci": bootstrap_ci(data), "n": int(data.size)}


def video_scores(derainers: dict[str, Derainer], args: argparse.Namespace) -> dict:
    width, height = args.size
    config = ClipConfig(frames=args.frames, height=height, width=width, shots=(1, 2), dry_prob=0.2)
    rows: dict[str, dict[str, list]] = {}
    per_clip, reset_log, strips = [], [], {}
    for d_index, domain in enumerate(DOMAINS):
        for k in range(args.clips):
            seed = 1000 + 100 * d_index + k
            clip = render_clip(domain, seed, config, "test")
            motion = CleanMotion(clip.clean, clip.cuts)
            resets: list = []
            outputs = {"rainy input": clip.rainy, "clean video": clip.clean}
            for name, derainer in derainers.items():
                outputs[name] = run_clip(derainer, clip.rainy, resets if name == "temporal" else None)
                outputs[f"{name}, clean input"] = run_clip(derainer, clip.clean)
            dry = clip.rain <= 0
            entry = {"domain": domain, "seed": seed, "cuts": list(clip.cuts), "motions": list(clip.motions),
                     "dry_frames": int(dry.sum())}  # fmt: skip
            for name, frames in outputs.items():
                scores = frame_scores(frames, clip.clean)
                target = rows.setdefault(name, {"psnr_y": [], "ssim_y": [], "flicker": [], "warping_error": [],
                                                "dry_psnr_y": []})  # fmt: skip
                scored = np.ones_like(dry) if name.endswith(("clean input", "clean video")) else ~dry  # rain on
                values = {"psnr_y": float(scores["psnr_y"][scored].mean()) if scored.any() else float("nan"),
                          "ssim_y": float(scores["ssim_y"][scored].mean()) if scored.any() else float("nan"),
                          "flicker": flicker(frames, motion), "warping_error": warping_error(frames, motion),
                          "dry_psnr_y": float(scores["psnr_y"][dry].mean()) if dry.any() else float("nan")}  # fmt: skip
                for key, value in values.items():
                    target[key].append(value)
                entry[name] = values
            per_clip.append(entry)
            truth = set(clip.cuts[1:])
            found = sum(1 for t in truth if resets[t] == "cut")
            false = sum(1 for t, reason in enumerate(resets) if reason == "cut" and t not in truth)
            reset_log.append({"cuts": len(truth), "found": found, "false": false})
            if k == 0 and domain in ("rain100H", "rain1400", "storm"):
                strips[domain] = {name: outputs[name] for name in ("rainy input", *derainers, "clean video")}
            log.info("%s clip %d: per-frame %.2f, temporal %.2f dB", domain, k, entry["per-frame"]["psnr_y"],
                     entry["temporal"]["psnr_y"])  # fmt: skip
    summary = {name: {key: ci_entry(values) for key, values in metrics.items()} for name, metrics in rows.items()}
    paired = {}
    for key in ("psnr_y", "ssim_y", "flicker", "warping_error"):
        diffs = np.array(rows["temporal"][key]) - np.array(rows["per-frame"][key])
        paired[key] = ci_entry(list(diffs))
    seen = [e for e in per_clip if e["domain"] not in UNSEEN]
    for key in ("psnr_y",):
        paired[f"{key}_seen"] = ci_entry([e["temporal"][key] - e["per-frame"][key] for e in seen])
    by_domain = {d: {name: float(np.nanmean([e[name]["psnr_y"] for e in per_clip if e["domain"] == d] + [np.nan]))
                     for name in ("rainy input", *derainers)} for d in DOMAINS}  # fmt: skip (NaN: only dry clips)
    cuts = {key: int(sum(r[key] for r in reset_log)) for key in ("cuts", "found", "false")}
    return {"summary": summary, "paired": paired, "by_domain": by_domain, "clips": per_clip, "cut_detection": cuts,
            "strips": strips, "config": config.__dict__}  # fmt: skip


def single_frames(per_frame: torch.nn.Module, temporal: torch.nn.Module) -> dict:
    """The v2 test crops: the temporal network with no past against the per-frame network, paired per crop."""
    domains = [*DOMAINS, None]
    before, after = crop_scores(per_frame, domains), crop_scores(temporal, domains)
    rainy = crop_scores(None, domains[:-1])
    out = {}
    for domain in [*DOMAINS, CLEAN]:
        a, b = np.array(before[domain]["psnr_y"]), np.array(after[domain]["psnr_y"])
        out[domain] = {"per-frame": ci_entry(list(a)), "temporal": ci_entry(list(b)),
                       "difference": ci_entry(list(b - a)),
                       "input": ci_entry(rainy[domain]["psnr_y"]) if domain in rainy else None}  # fmt: skip
    return out


LUMA_BINS = (0, 64, 128, 176, 200, 220)  # Y' of BT.601 without its offset: 0..219


def clean_edits(models: dict[str, torch.nn.Module]) -> dict:
    """What each network (no past) changes in the four clean test photos at full size, by the input's luma: mean
    signed and absolute change (grey levels) per bin, and the share of all changed luma in each bin."""
    from derain.data.photos import TEST_PHOTOS
    from derain.quality.video import luma

    out = {}
    for name, model in models.items():
        signed, absolute, counts_ = np.zeros(len(LUMA_BINS) - 1), np.zeros(len(LUMA_BINS) - 1), np.zeros(
            len(LUMA_BINS) - 1)  # fmt: skip
        for photo_name in TEST_PHOTOS:
            image = np.array(photo(photo_name))
            height, width = image.shape[0] // 8 * 8, image.shape[1] // 8 * 8
            image = image[:height, :width]
            tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
            result = (model(tensor).clamp(0, 1)[0].permute(1, 2, 0) * 255).round().byte().numpy()
            before, change = luma(image), luma(result) - luma(image)
            index = np.digitize(before, LUMA_BINS[1:-1])
            for b in range(len(LUMA_BINS) - 1):
                mask = index == b
                signed[b] += change[mask].sum()
                absolute[b] += np.abs(change[mask]).sum()
                counts_[b] += mask.sum()
        out[name] = {"signed": (signed / np.maximum(counts_, 1)).tolist(),
                     "absolute": (absolute / np.maximum(counts_, 1)).tolist(),
                     "share": (absolute / max(absolute.sum(), 1e-9)).tolist(), "pixels": counts_.tolist()}  # fmt: skip
    return out


def latency(derainers: dict[str, Derainer], models: dict[str, torch.nn.Module], repeats: int) -> dict:
    """1280x720 frames of a rainy video through each Derainer (in turn, interleaved), and the FP16 projections."""
    video = SyntheticRainVideo(1280, 720, frames=None, seed=3)
    frames = [video.frame(i).rainy for i in range(repeats + 2)]
    times: dict[str, list[float]] = {name: [] for name in derainers}
    for derainer in derainers.values():
        derainer.reset()
    for index, frame in enumerate(frames):
        for name, derainer in derainers.items():
            started = time.perf_counter()
            derainer(frame, timestamp=index / FPS)
            if index >= 2:
                times[name].append((time.perf_counter() - started) * 1000)
    out = {name: {"p50_ms": float(np.median(t)), "p90_ms": float(np.percentile(t, 90))} for name, t in times.items()}
    for name, model in models.items():
        cost = frame_cost(model, 720, 1280)
        out[name].update({"gmac": cost.gmac, "fp16_traffic_mb": cost.conv_megabytes, "params": cost.params,
                          "floor_ms": {device: 1000 * max(2 * cost.macs / flops, cost.conv_bytes / bandwidth)
                                       for device, (flops, bandwidth) in PROJECTED.items()}})  # fmt: skip
    from derain.runtime.temporal import align, camera_motion

    aligning = []
    for index in range(1, len(frames)):  # the state's host-side work per frame: estimate the motion, warp the past
        started = time.perf_counter()
        align(frames[index], (frames[index - 1], frames[index - 1]), camera_motion(frames[index], frames[index - 1]))
        aligning.append((time.perf_counter() - started) * 1000)
    out["align_ms"] = float(np.median(aligning))
    out["ratio_cpu"] = out["temporal"]["p50_ms"] / out["per-frame"]["p50_ms"]
    out["ratio_projected"] = {d: out["temporal"]["floor_ms"][d] / out["per-frame"]["floor_ms"][d] for d in PROJECTED}
    return out


def detector_f1(derainers: dict[str, Derainer], args: argparse.Namespace, work: Path) -> dict:
    """F1 at IoU 0.5 of OpenCV 4's detectors on rainy and de-rained frames against their boxes on clean frames."""
    if not args.opencv4:
        return {"skipped": "no --opencv4 folder (pip install --target FOLDER --no-deps 'opencv-python-headless<5')"}
    scenes = [photo(name) for name in DETECTOR_SCENES]
    config = ClipConfig(frames=args.detector_frames, height=288, width=384, shots=(1, 1), dry_prob=0.0)
    variants: dict[str, list[np.ndarray]] = {"clean": [], "rainy": [], **{name: [] for name in derainers}}
    clips = []
    for index in range(args.detector_clips):
        domain = DOMAINS[index % len(DOMAINS)]
        clip = render_clip(domain, 5000 + index, config, scenes=scenes)
        clips.append(domain)
        variants["clean"].append(clip.clean)
        variants["rainy"].append(clip.rainy)
        for name, derainer in derainers.items():
            variants[name].append(run_clip(derainer, clip.rainy))
    frames = work / "detector_frames.npz"
    np.savez(frames, **{k: np.concatenate(v)[..., ::-1] for k, v in variants.items()})  # BGR, as cameras give
    boxes_file = work / "detector_boxes.json"
    env = dict(os.environ, PYTHONPATH=str(Path(args.opencv4).resolve()))
    subprocess.run([sys.executable, str(Path(__file__).parent / "detect_opencv4.py"), str(frames), str(boxes_file)],
                   env=env, check=True)  # fmt: skip
    boxes = json.loads(boxes_file.read_text())
    length = args.detector_frames
    out: dict = {"opencv": boxes.pop("opencv"), "clips": args.detector_clips, "frames": length, "domains": clips,
                 "scenes": list(DETECTOR_SCENES), "detectors": {}}  # fmt: skip
    pooled: dict[str, list[np.ndarray]] = {}
    for detector in boxes["clean"]:
        reference = boxes["clean"][detector]
        row = {"reference_boxes": int(sum(len(b) for b in reference))}
        for variant in ("rainy", *derainers):
            tally = counts(boxes[variant][detector], reference)
            groups = [tally[i * length : (i + 1) * length] for i in range(args.detector_clips)]
            row[variant] = {"f1": f1(tally), "ci": f1_ci(groups), "tp_fp_fn": tally.sum(axis=0).tolist()}
            pooled.setdefault(variant, []).append(tally)
        out["detectors"][detector] = row
    summed = {}
    for variant, tallies in pooled.items():
        total = np.sum(tallies, axis=0)  # (frames, 3) summed over detectors
        groups = [total[i * length : (i + 1) * length] for i in range(args.detector_clips)]
        summed[variant] = {"f1": f1(total), "ci": f1_ci(groups), "tp_fp_fn": total.sum(axis=0).tolist()}
    out["all"] = summed
    lost = 1 - summed["rainy"]["f1"]
    out["recovered"] = {name: (summed[name]["f1"] - summed["rainy"]["f1"]) / lost if lost > 0 else float("nan")
                        for name in derainers}  # fmt: skip
    return out


def write_figures(strips: dict, out: Path) -> list[str]:
    """A still (rainy | per-frame | temporal | clean, three frames of each strip clip) and a side-by-side video."""
    rows = []
    for outputs in strips.values():
        frames = len(outputs["rainy input"])
        for t in (frames // 4, frames // 2, 3 * frames // 4):
            rows.append(np.concatenate([outputs[name][t] for name in outputs], axis=1))
    still = cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(out / "video_derainer.jpg"), still, [cv2.IMWRITE_JPEG_QUALITY, 92])  # a PNG of it is 4 MB
    names = ["video_derainer.jpg"]
    first = next(iter(strips.values()))
    height, width = first["rainy input"].shape[1:3]
    writer = cv2.VideoWriter(str(out / "video_derainer.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10,
                             (3 * width, height))  # fmt: skip
    if writer.isOpened():
        for outputs in strips.values():
            for t in range(len(outputs["rainy input"])):
                panel = np.concatenate([outputs[n][t] for n in ("rainy input", "per-frame", "temporal")], axis=1)
                writer.write(cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
        writer.release()
        names.append("video_derainer.mp4")
    return names


def fmt(entry: dict | None, digits: int = 2) -> str:
    if not entry or not np.isfinite(entry["mean"]):
        return "–"
    low, high = entry["ci"]
    return f"{entry['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def write_markdown(report: dict, path: Path) -> None:
    video, single, speed, detect = report["video"], report["single_frames"], report["latency"], report["detector"]
    summary, paired = video["summary"], video["paired"]
    floor = summary["clean video"]["warping_error"]["mean"]
    lines = [
        "# Video de-rainer: per-frame vs temporal on rendered rainy video",
        "",
        f"Command: `{report['command']}` ({report['date']}, CPU, {report['seconds']:.0f} s).",
        f"Per-frame: `{report['per_frame']}`; temporal: `{report['temporal']}` ({report['temporal_training']}).",
        f"Test video: {report['args']['clips']} clips per domain x {len(DOMAINS)} domains ({', '.join(DOMAINS)}; "
        f"storm unseen by both), {report['args']['frames']} frames of {report['args']['size'][0]}x"
        f"{report['args']['size'][1]} each, over the four test-only photos; camera pans / zooms / moves forward, "
        "cuts, rain that stops or starts (`derain.data.video.render_clip`). PSNR-Y / SSIM-Y over the frames with "
        "rain (clean rows: every frame), dry frames apart. Means over clips [95 % bootstrap CI over clips]. "
        "Flicker: luma change on pixels that do not move over the clean video's, grey levels. Warping "
        "error: Lai et al., x1000, flow of the clean video (DIS), occlusions masked; the clean video's own is its "
        "floor.",
        "",
        "| frames | PSNR-Y | SSIM-Y | flicker (grey levels) | warping error (x1000) | dry frames PSNR-Y |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        we = {**row["warping_error"], "mean": row["warping_error"]["mean"] * 1000,
              "ci": tuple(x * 1000 for x in row["warping_error"]["ci"])}  # fmt: skip
        lines.append(f"| {name} | {fmt(row['psnr_y'])} | {fmt(row['ssim_y'], 4)} | {fmt(row['flicker'])} | "
                     f"{fmt(we, 3)} | {fmt(row['dry_psnr_y'])} |")  # fmt: skip
    t_we = summary["temporal"]["warping_error"]["mean"]
    lines += [
        "",
        f"Temporal - per-frame, paired per clip: PSNR-Y **{fmt(paired['psnr_y'])} dB** (seen domains "
        f"{fmt(paired['psnr_y_seen'])}), SSIM-Y {fmt(paired['ssim_y'], 4)}, flicker {fmt(paired['flicker'])}, "
        f"warping error x1000 {paired['warping_error']['mean'] * 1000:+.3f}. Temporal warping error = "
        f"{t_we / floor:.2f}x the clean video's; per-frame "
        f"{summary['per-frame']['warping_error']['mean'] / floor:.2f}x.",
        f"Cuts: {video['cut_detection']['found']} of {video['cut_detection']['cuts']} detected by the runtime's "
        f"state, {video['cut_detection']['false']} false resets (frames within a shot).",
        "",
        "PSNR-Y per domain (mean over its clips):",
        "",
        "| domain | rainy input | per-frame | temporal |",
        "|---|---|---|---|",
        *[f"| {d} | {v['rainy input']:.2f} | {v['per-frame']:.2f} | {v['temporal']:.2f} |".replace("nan", "– (dry)")
          for d, v in video["by_domain"].items()],  # fmt: skip
        "",
        "## Single frames (data v2 test crops, the temporal network with no past)",
        "",
        "| domain | rainy input | per-frame | temporal, no past | difference (paired per crop) |",
        "|---|---|---|---|---|",
        *[f"| {d} | {fmt(v['input'])} | {fmt(v['per-frame'])} | {fmt(v['temporal'])} | {fmt(v['difference'])} |"
          for d, v in single.items()],  # fmt: skip
        "",
        "What each network (no past) changes in the clean test photos at full size, by the input's luma (grey "
        "levels; mean signed change / mean absolute change / share of all changes):",
        "",
        "| network | " + " | ".join(f"luma {a}-{b - 1}" for a, b in zip(LUMA_BINS[:-1], LUMA_BINS[1:])) + " |",
        "|---|" + "---|" * (len(LUMA_BINS) - 1),
        *[f"| {n} | " + " | ".join(f"{s:+.2f} / {a:.2f} / {sh:.0%}" for s, a, sh in zip(e["signed"], e["absolute"],
                                                                                      e["share"])) + " |"
          for n, e in report["clean_edits"].items()],  # fmt: skip
        "",
        "## Latency (1280x720, this CPU, 1 thread, through `Derainer`) and FP16 roofline projection",
        "",
        "| network | p50 ms | p90 ms | GMAC | FP16 conv traffic MB | " + " | ".join(f"{d} floor ms" for d in PROJECTED)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(PROJECTED),
        *[f"| {n} | {speed[n]['p50_ms']:.0f} | {speed[n]['p90_ms']:.0f} | {speed[n]['gmac']:.2f} | "
          f"{speed[n]['fp16_traffic_mb']:.0f} | " + " | ".join(f"{speed[n]['floor_ms'][d]:.2f}" for d in PROJECTED)
          + " |" for n in ("per-frame", "temporal")],  # fmt: skip
        "",
        f"Temporal / per-frame: {speed['ratio_cpu']:.3f}x on this CPU (the temporal time includes aligning its past: "
        f"{speed['align_ms']:.1f} ms of host work per 1280x720 frame, motion estimate and two warps); network floors "
        "projected " + ", ".join(f"{d} {r:.3f}x" for d, r in speed["ratio_projected"].items())
        + f" (the alignment is host work on top: {speed['align_ms']:.1f} ms on this CPU, not in the floors).",
        "",
        "## Detector F1 (IoU 0.5; reference: the same detector on the clean frames)",
        "",
    ]
    if "skipped" in detect:
        lines.append(f"Skipped: {detect['skipped']}.")
    else:
        names = [n for n in ("rainy", "per-frame", "temporal")]
        lines += [
            f"OpenCV {detect['opencv']}; {detect['clips']} clips x {detect['frames']} frames of 384x288 over "
            f"{', '.join(detect['scenes'])} (rain cycling over the test domains).",
            "",
            "| detector | boxes on clean | " + " | ".join(f"F1 {n}" for n in names) + " |",
            "|---|---|" + "---|" * len(names),
            *[f"| {d} | {row['reference_boxes']} | " + " | ".join(
                f"{row[n]['f1']:.3f} [{row[n]['ci'][0]:.3f}, {row[n]['ci'][1]:.3f}]" for n in names) + " |"
              for d, row in detect["detectors"].items()],  # fmt: skip
            "| all | | " + " | ".join(f"{detect['all'][n]['f1']:.3f} [{detect['all'][n]['ci'][0]:.3f}, "
                                      f"{detect['all'][n]['ci'][1]:.3f}]" for n in names) + " |",  # fmt: skip
            "",
            "Share of the F1 that rain takes away recovered by de-raining: "
            + ", ".join(f"{n} {v:.0%}" for n, v in detect["recovered"].items()) + ".",
        ]
    lines += ["", "![rainy | per-frame | temporal | clean](video_derainer.jpg)", "",
              "Side by side (rainy | per-frame | temporal): [video_derainer.mp4](video_derainer.mp4)."]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def install(weights: Path, model: torch.nn.Module, report: dict) -> None:
    target = weights_dir() / TEMPORAL_NAME
    state = read_checkpoint(weights)
    save_checkpoint(target, model, step=state.get("step"), config=state.get("config"))
    card = {"network": model.spec, "training": report["temporal_training"], "source_checkpoint": str(weights),
            "video": {k: report["video"][k] for k in ("paired", "cut_detection")},
            "reproduce": ["derain-train --yaml train/configs/temporal_realtime.yaml --resume auto",
                          f"python benchmarks/video_derainer.py --temporal {weights} --install --results"]}  # fmt: skip
    target.with_suffix(".json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    log.info("installed %s", target)


def parse_size(text: str) -> tuple[int, int]:
    width, height = (int(x) for x in text.lower().split("x"))
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--temporal", required=True, help="the temporal checkpoint (derain-train trainer: temporal)")
    parser.add_argument("--per-frame", default="builtin", help="the per-frame checkpoint (default: the shipped one)")
    parser.add_argument("--clips", type=int, default=3, help="test clips per domain")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=parse_size, default=(320, 192), help="WxH of the test video")
    parser.add_argument("--latency-repeats", type=int, default=8)
    parser.add_argument("--opencv4", default=".detector/opencv4", help="folder holding an OpenCV 4.x wheel's cv2 "
                        "(empty: skip the detector)")  # fmt: skip
    parser.add_argument("--detector-clips", type=int, default=12)
    parser.add_argument("--detector-frames", type=int, default=12)
    parser.add_argument("--note", help="how the temporal checkpoint was chosen, for the report and the card")
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--results", action="store_true", help=f"write to {RESULTS}")
    parser.add_argument("--install", action="store_true", help="copy the temporal weights into the package")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    started = time.perf_counter()
    if args.opencv4 and not Path(args.opencv4, "cv2").is_dir():
        parser.error(f"--opencv4 {args.opencv4}: no cv2 there; pip install --target {args.opencv4} --no-deps "
                     "'opencv-python-headless<5' (or --opencv4 '' to skip the detector)")  # fmt: skip
    card = json.loads(builtin_card().read_text()) if builtin_card().is_file() else {}
    kwargs = card.get("network", {}).get("kwargs", {})
    shrink, bypass = float(kwargs.get("shrink", 0.0)), float(kwargs.get("bypass", 0.0))
    per_frame_path = resolve_weights(args.per_frame)
    temporal_path = Path(args.temporal)
    from derain.models import CheckpointError

    try:
        models = {"per-frame": with_shrink(per_frame_path, shrink, bypass),
                  "temporal": with_shrink(temporal_path, shrink, bypass)}  # fmt: skip
    except CheckpointError as error:
        parser.error(str(error))
    if not getattr(models["temporal"], "temporal", False) or getattr(models["per-frame"], "temporal", False):
        parser.error(f"--temporal must be a temporal checkpoint (realtime_temporal) and --per-frame a per-frame one; "
                     f"got {models['temporal'].spec['name']} and {models['per-frame'].spec['name']}")  # fmt: skip
    out = RESULTS if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        paths = {}
        for name, model in models.items():
            paths[name] = save_checkpoint(work / f"{name}.pt", model)
        derainers = {name: Derainer(str(path), device="cpu") for name, path in paths.items()}
        video = video_scores(derainers, args)
        log.info("video scored (%.0f s)", time.perf_counter() - started)
        single = single_frames(models["per-frame"], models["temporal"])
        edits = clean_edits(models)
        speed = latency(derainers, models, args.latency_repeats)
        detect = detector_f1(derainers, args, work)
    figures = write_figures(video.pop("strips"), out)
    training_file = temporal_path.parent / "summary.json"
    training = json.loads(training_file.read_text()) if training_file.is_file() else {}
    described = args.note or "no summary.json beside it"
    if training and not args.note:
        best, start = training.get("best", {}).get("metric", float("nan")), training["start"]["val_psnr"]
        described = (f"{training.get('iterations')} iterations, stopped: {training.get('stopped')}, best validation "
                     f"{best:.2f} dB against its start's {start:.2f}")  # fmt: skip
    command = "python benchmarks/video_derainer.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "per_frame": str(per_frame_path),
              "temporal": str(temporal_path), "temporal_training": described, "dry_settings": [shrink, bypass],
              "args": {k: v for k, v in vars(args).items()}, "video": video, "single_frames": single,
              "latency": speed, "detector": detect, "figures": figures, "clean_edits": edits,
              "seconds": time.perf_counter() - started}  # fmt: skip
    (out / "video_derainer.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    write_markdown(report, out / "video_derainer.md")
    if args.install:
        install(temporal_path, models["temporal"], report)
    print((out / "video_derainer.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
