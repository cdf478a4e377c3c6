"""Frame sizes: does every backend give the network's own result at any frame size, and what does it cost?

Usage: python benchmarks/frame_sizes.py [--weights builtin] [--quick] [--results]

"Native" is the network run at the frame's own size (PyTorch FP32, padded only to the network's multiple). Frames are
v2 rain (`rain100H`, `rain1400`, `rain100L`, `real_like`) rendered over the four test photos resized to each size.

1. **Context.** The network's receptive field from its impulse response (`derain.models.receptive`: the gradient of
   the centre output pixel with respect to the input, gates open), and the deviation from native of 1080p frames
   tiled through a 480x640 static shape as a function of the context tiles keep (`derain.frames.tiled`).
2. **Padding into a static shape.** Frames smaller than the shape: PSNR-Y against the clean frame in the border band
   the padding reaches (the last 16 rows and columns), native vs padded by edge replication, reflection,
   repetition, and the contract's (edge to the multiple, then repetition), with paired bootstrap CIs of the
   difference.
3. **Backends x sizes** (smaller, equal, larger than a 480x640 static graph, 4K): max and p99.9 deviation from
   native (grey levels), the share of pixels off by more than 2, border-band PSNR-Y (and native's), median time per
   frame (every backend on all the cores) and peak resident memory, each row in a fresh process.
Writes `frame_sizes.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from derain import frames
from derain.builtin import resolve_weights
from derain.data.photos import TEST_PHOTOS, photo
from derain.data.rain import render_rain
from derain.export.onnx_export import export_onnx
from derain.export.pipeline import network_context
from derain.machine import device_name
from derain.models import load_model
from derain.models.padding import pad_multiple
from derain.models.receptive import receptive_radius
from derain.quality.reports import dumps
from derain.runtime import Derainer
from derain.train.testset import bootstrap_ci

RESULTS = Path(__file__).parent / "results"
DOMAINS = ("rain100H", "rain1400", "rain100L", "real_like")
STATIC = (480, 640)
BAND = 16
PAD_MODES = {"edge": "edge", "reflect": "reflect", "repeat": "wrap", "contract": None}


def rainy_scene(name: str, size: tuple[int, int], domain: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(clean, rainy) uint8 BGR frames of `size`: the photo resized, rain rendered at the frame's scale."""
    rgb = cv2.resize(photo(name), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    clean = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    rainy = render_rain(clean, domain, seed=seed, scale=None)
    to_bgr = lambda t: np.ascontiguousarray((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1])  # noqa: E731
    return to_bgr(clean), to_bgr(rainy)


def luma(bgr: np.ndarray) -> np.ndarray:
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    return 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255


def band_psnr(out: np.ndarray, clean: np.ndarray, band: int = BAND) -> float:
    """PSNR-Y over the last `band` rows and columns (where bottom/right padding reaches)."""
    mask = np.zeros(out.shape[:2], bool)
    mask[-band:], mask[:, -band:] = True, True
    mse = float(np.mean((luma(out) - luma(clean))[mask] ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-10))


def deviation(out: np.ndarray, native: np.ndarray) -> dict[str, float]:
    difference = np.abs(out.astype(np.int16) - native)
    return {"max": int(difference.max()), "p99_9": float(np.percentile(difference, 99.9)),
            "over_2_percent": float(100 * np.mean(difference > 2))}  # fmt: skip


def timed_run(path: Path, options: dict, frame: np.ndarray, repeats: int) -> tuple[np.ndarray, list[float], float]:
    """In a fresh process: load, warm up, run `repeats` times; (output, seconds per run, peak resident MB above the
    process's level before loading)."""
    def resident(field: str) -> float:  # MB; VmHWM is this process's peak (not inherited across exec, ru_maxrss is)
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) for line in handle if line.startswith(field)) / 1024

    before = resident("VmRSS:")
    derainer = Derainer(path, device="cpu", **options)
    derainer(frame)  # warm-up (graph optimisation, allocations)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = derainer(frame)
        times.append(time.perf_counter() - start)
    derainer.close()
    return out, times, resident("VmHWM:") - before


def context_study(model: torch.nn.Module, net: Any, sizes: list[tuple[int, int]], contexts: list[int]) -> dict:
    radii = {}
    for name in TEST_PHOTOS:
        _, rainy = rainy_scene(name, (256, 256), "rain100H", seed=0)
        image = torch.from_numpy(frames.to_network(rainy, pad_multiple(model)))
        radii[name] = {str(mass): receptive_radius(model, image, mass) for mass in (0.99, 0.999)}
    rows = []
    static_run = lambda batch: frames.from_network(net(frames.to_network(batch, 8, size=STATIC)), *batch.shape[1:3])  # noqa: E731
    for size in sizes:
        scenes = [rainy_scene(name, size, domain, seed=1)[1] for name, domain in zip(TEST_PHOTOS[:2], DOMAINS[:2])]
        natives = [frames.reference(net, rainy, 8) for rainy in scenes]
        for context in contexts:
            start = time.perf_counter()
            outs = [frames.tiled(static_run, rainy, STATIC, context, 8) for rainy in scenes]
            seconds = (time.perf_counter() - start) / len(scenes)
            tiles = len(frames.tile_origins(size[0], STATIC[0], context, 8)) * len(
                frames.tile_origins(size[1], STATIC[1], context, 8))
            merged = deviation(np.stack(outs), np.stack(natives))
            rows.append({"size": list(size), "context": context, "tiles": tiles, "seconds": seconds, **merged})
            print(f"context {size} {context}: {rows[-1]}", file=sys.stderr)
    return {"radius": radii, "tiling": rows}


def padding_study(net: Any, sizes: list[tuple[int, int]], seeds: int) -> dict:
    values: dict[str, list[float]] = {"native": [], **{mode: [] for mode in PAD_MODES}, "rainy": [], "dry_native": [],
                                      "dry_contract": []}  # fmt: skip
    per_size: dict[str, dict[str, list[float]]] = {}
    for size in sizes:
        for name in TEST_PHOTOS:
            for domain in DOMAINS:
                for seed in range(seeds):
                    clean, rainy = rainy_scene(name, size, domain, seed=10 + seed)
                    scores = {"native": band_psnr(frames.reference(net, rainy, 8), clean),
                              "rainy": band_psnr(rainy, clean),  # the input itself
                              "dry_native": band_psnr(frames.reference(net, clean, 8), clean),  # fed clean frames
                              "dry_contract": band_psnr(frames.from_network(net(frames.to_network(
                                  frames.pad_frames(clean[None], *STATIC, 8))), *size)[0], clean)}  # fmt: skip
                    for mode, numpy_mode in PAD_MODES.items():
                        if numpy_mode is None:
                            padded = frames.pad_frames(rainy[None], *STATIC, 8)
                        else:
                            padded = np.pad(rainy[None], ((0, 0), (0, STATIC[0] - size[0]), (0, STATIC[1] - size[1]),
                                                          (0, 0)), mode=numpy_mode)  # fmt: skip
                        out = frames.from_network(net(frames.to_network(padded)), *size)[0]
                        scores[mode] = band_psnr(out, clean)
                    for key, value in scores.items():
                        values[key].append(value)
                        per_size.setdefault("x".join(map(str, size)), {}).setdefault(key, []).append(value)
    summary = {}
    for mode in PAD_MODES:
        difference = np.subtract(values[mode], values["native"])
        summary[mode] = {"band_psnr_y": float(np.mean(values[mode])), "minus_native": float(difference.mean()),
                         "ci": bootstrap_ci(difference),
                         "per_size": {size: float(np.mean(np.subtract(v[mode], v["native"])))
                                      for size, v in per_size.items()}}  # fmt: skip
    return {"native_band_psnr_y": float(np.mean(values["native"])), "frames": len(values["native"]),
            "rainy_band_psnr_y": float(np.mean(values["rainy"])), "dry_native_band_psnr_y":
            float(np.mean(values["dry_native"])), "dry_contract_band_psnr_y": float(np.mean(values["dry_contract"])),
            "modes": summary}  # fmt: skip


def backend_study(weights: Path, net: Any, model: torch.nn.Module, sizes: list[tuple[int, int]], folder: Path,
                  repeats: int) -> list[dict]:  # fmt: skip
    context = network_context(model)
    meta = {"io": "uint8", "pad_multiple": pad_multiple(model), "context": context}
    threads = {"threads": len(os.sched_getaffinity(0))}  # every core, for every backend: comparable times
    artifacts = {
        "pytorch (dynamic)": (weights, threads),
        "onnxruntime dynamic graph": (export_onnx(model, folder / "dynamic.onnx", *STATIC, dynamic=True, io="uint8",
                                                  metadata=meta), threads),  # fmt: skip
        f"onnxruntime static {STATIC[0]}x{STATIC[1]} graph": (
            export_onnx(model, folder / "static.onnx", *STATIC, dynamic=False, io="uint8", metadata=meta), threads),
    }
    rows = []
    for size in sizes:
        clean, rainy = rainy_scene(TEST_PHOTOS[2], size, DOMAINS[1], seed=2)
        native = frames.reference(net, rainy, 8)
        native_band, rainy_band = band_psnr(native, clean), band_psnr(rainy, clean)
        dry_band = band_psnr(frames.reference(net, clean, 8), clean)  # the network fed the clean frame
        for backend, (path, options) in artifacts.items():
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:  # a fresh process:
                out, times, peak = pool.submit(timed_run, path, options, rainy, repeats).result()  # its own peak
            rows.append({"backend": backend, "size": list(size), **deviation(out, native),
                         "band_psnr_y": band_psnr(out, clean), "native_band_psnr_y": native_band,
                         "rainy_band_psnr_y": rainy_band, "dry_band_psnr_y": dry_band,
                         "ms": 1000 * float(np.median(times)), "peak_mb": peak,
                         "path": "tiled" if size[0] > STATIC[0] and "static" in backend else
                         "padded" if size != STATIC and "static" in backend else "native size"})  # fmt: skip
            print(f"backend {rows[-1]}", file=sys.stderr)
    return rows


def markdown(report: dict) -> str:
    lines = ["# Frame sizes: the network's own result at any size", "",
             f"Command: `{report['command']}`. Device: {report['device']}. Weights: {report['weights']}. Native = the "
             "network run at the frame's own size (PyTorch FP32, padded only to its multiple of 8).", ""]  # fmt: skip
    context = report["context"]
    radii = ", ".join(f"{name.split('.')[0]} {r['0.99']} / {r['0.999']}" for name, r in context["radius"].items())
    lines += ["## 1. Receptive field and tile context", "",
              f"Impulse-response radius holding 99 % / 99.9 % of the mass, per test photo under rain100H: {radii} px. "
              f"The context recorded at export (`network_context`: the largest 99 % radius, rounded up to the "
              f"multiple): **{report['chosen_context']} px**.", "",
              "Frames tiled through a 480x640 static shape vs native (two rainy frames per size; time per frame):", "",
              "| frame | context (px) | tiles | max | p99.9 | > 2 levels | s / frame |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in context["tiling"]:
        lines.append(f"| {row['size'][1]}x{row['size'][0]} | {row['context']} | {row['tiles']} | {row['max']} | "
                     f"{row['p99_9']:.0f} | {row['over_2_percent']:.3f} % | {row['seconds']:.2f} |")  # fmt: skip
    padding = report["padding"]
    sizes = list(next(iter(padding["modes"].values()))["per_size"])
    lines += ["", "## 2. Padding a smaller frame into a static shape", "",
              f"PSNR-Y in the border band (last {BAND} rows and columns) against the clean frame, {padding['frames']} "
              f"frames (4 photos x 4 domains x seeds x sizes {', '.join(sizes)}), padded into {STATIC[1]}x{STATIC[0]}. "
              f"Native: {padding['native_band_psnr_y']:.2f} dB; the rainy input itself "
              f"{padding['rainy_band_psnr_y']:.2f} dB; clean frames through the network natively "
              f"{padding['dry_native_band_psnr_y']:.2f} dB and padded by the contract "
              f"{padding['dry_contract_band_psnr_y']:.2f} dB.", "",
              "| padding | band PSNR-Y | minus native [95 % CI] | " + " | ".join(sizes) + " |",
              "|---|---|---|" + "---|" * len(sizes)]  # fmt: skip
    for mode, row in padding["modes"].items():
        low, high = row["ci"]
        label = "edge to the multiple, then repeat (the contract)" if mode == "contract" else mode
        lines.append(f"| {label} | {row['band_psnr_y']:.2f} | {row['minus_native']:+.2f} [{low:+.2f}, {high:+.2f}] | "
                     + " | ".join(f"{row['per_size'][s]:+.2f}" for s in sizes) + " |")  # fmt: skip
    lines += ["", "## 3. Backends x frame sizes", "",
              "Deviation from native in grey levels; band PSNR-Y against clean (native's beside it); median time per "
              "frame; peak resident memory of a fresh process from loading the artifact to the last frame, above "
              "its level before loading (imports excluded).", "",
              "| backend | frame | path | max | p99.9 | > 2 levels | band PSNR-Y (native) | rainy input | "
              "native on the clean frame | ms / frame | peak MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in report["backends"]:
        lines.append(f"| {row['backend']} | {row['size'][1]}x{row['size'][0]} | {row['path']} | {row['max']} | "
                     f"{row['p99_9']:.0f} | {row['over_2_percent']:.3f} % | {row['band_psnr_y']:.2f} "
                     f"({row['native_band_psnr_y']:.2f}) | {row['rainy_band_psnr_y']:.2f} | "
                     f"{row['dry_band_psnr_y']:.2f} | {row['ms']:.0f} | {row['peak_mb']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="builtin")
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and frames (a smoke run)")
    parser.add_argument("--results", action="store_true", help=f"write to {RESULTS}")
    args = parser.parse_args(argv)
    weights = resolve_weights(args.weights)
    model = load_model(weights)

    def net(tensor: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(tensor))).numpy()

    out = RESULTS if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.out) / "frame_sizes_work"
    work.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    report = {
        "command": " ".join(["python benchmarks/frame_sizes.py", *(["--quick"] if quick else []),
                             *(["--results"] if args.results else [])]),
        "device": device_name(),
        "weights": str(args.weights),
        "chosen_context": network_context(model),
        "context": context_study(model, net, [(1080, 1920)] if quick else [(1080, 1920), (2160, 3840)],
                                 [32, 88] if quick else [32, 48, 64, 80, 88, 96]),
        "padding": padding_study(net, [(236, 316)] if quick else [(200, 280), (236, 316), (300, 500), (360, 600),
                                                                  (420, 560)], 1 if quick else 2),  # fmt: skip
        "backends": backend_study(weights, net, model, [(240, 320), (480, 640)] if quick else
                                  [(240, 320), (480, 640), (1080, 1920), (2160, 3840)], work, 1 if quick else 3),
    }  # fmt: skip
    (out / "frame_sizes.json").write_text(dumps(report) + "\n")
    (out / "frame_sizes.md").write_text(markdown(report))
    print(json.dumps({"written": str(out / "frame_sizes.md")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
