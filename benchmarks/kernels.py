"""The pixel-path CUDA kernels (cpp_ext) against the device's copy bandwidth and the torch ops they replace.

Usage (a CUDA machine with cupy and torch): python benchmarks/kernels.py [--results]

Per kernel and size (1080p, 4K; batch 1): median GPU time by CUDA events over `--repeat` launches after warm-up,
bytes read + written, achieved bandwidth, its share of a device-to-device copy of the same bytes (the roofline of
a one-pass kernel), and the median time of the chain of torch ops it replaces (the PyTorch backend's FrameIO
pre/post-processing). Writes runs/benchmarks/kernels_<device>.{json,md} (benchmarks/results/ with --results).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SIZES = {"1080p": (1080, 1920), "4K": (2160, 3840)}


def event_ms(cp, fn, repeat: int) -> float:  # noqa: ANN001
    """Median milliseconds of `fn` on the current stream by CUDA events, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeat):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(cp.cuda.get_elapsed_time(start, end))
    return statistics.median(samples)


def torch_chain(torch, frame, multiple: int):  # noqa: ANN001
    """What the kernels replace: FrameIO's torch ops (permute, flip to RGB, float, /255, replicate pad)."""
    import torch.nn.functional as F

    height, width = frame.shape[1:3]
    image = frame.permute(0, 3, 1, 2).flip(1).float() / 255.0
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


def measure(repeat: int) -> list[dict]:
    import cupy as cp

    from derain.cpp_ext.device import FrameKernels

    kernels = FrameKernels()
    return [row for label, size in SIZES.items() for row in measure_size(cp, kernels, label, *size, repeat)]


def measure_size(cp, kernels, label: str, height: int, width: int, repeat: int) -> list[dict]:  # noqa: ANN001
    import torch

    frame = cp.random.randint(0, 256, (1, height, width, 3), dtype=cp.uint8)
    tensor32 = kernels.to_network(frame, multiple=8)
    tensor16 = kernels.to_network(frame, multiple=8, half=True)
    luma = cp.random.randint(0, 256, (1, height, width), dtype=cp.uint8)
    chroma = cp.random.randint(0, 256, (1, height // 2, width // 2, 2), dtype=cp.uint8)
    pixels = height * width
    cases = {
        "bgr8 -> nchw f32": (lambda: kernels.to_network(frame, multiple=8), pixels * (3 + 12)),
        "bgr8 -> nchw f16": (lambda: kernels.to_network(frame, multiple=8, half=True), pixels * (3 + 6)),
        "nchw f32 -> bgr8": (lambda: kernels.from_network(tensor32, height, width), pixels * (12 + 3)),
        "nchw f16 -> bgr8": (lambda: kernels.from_network(tensor16, height, width), pixels * (6 + 3)),
        "nv12 -> nchw f16": (lambda: kernels.nv12_to_network(luma, chroma, multiple=8, half=True), pixels * 7.5),
    }
    source, target = cp.empty(pixels * 15, cp.uint8), cp.empty(pixels * 15, cp.uint8)
    rows = []
    for name, (fn, nbytes) in cases.items():
        half_bytes = int(nbytes) // 2  # a copy reads and writes: half the bytes each way

        def copy(n: int = half_bytes) -> None:
            target[:n] = source[:n]

        milliseconds, copy_ms = event_ms(cp, fn, repeat), event_ms(cp, copy, repeat)
        row = {"kernel": name, "size": label, "ms": milliseconds, "bytes": nbytes,
               "gb_per_s": nbytes / milliseconds / 1e6, "copy_ms": copy_ms,
               "share_of_copy": copy_ms / milliseconds}  # fmt: skip
        if name == "bgr8 -> nchw f32":
            frame_torch = torch.as_tensor(frame, device="cuda")
            row["torch_ms"] = event_ms(cp, lambda f=frame_torch: torch_chain(torch, f, 8), repeat)
            row["speedup_vs_torch"] = row["torch_ms"] / milliseconds
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--results", action="store_true", help="write to benchmarks/results/ (committed)")
    args = parser.parse_args()
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no cupy, no driver, no device
        print(f"benchmarks/kernels.py needs a CUDA GPU with cupy: {error}", file=sys.stderr)
        return 2
    from derain.quality.reports import device_name

    rows = measure(args.repeat)
    device = device_name()
    out = Path(__file__).parent / "results" if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"kernels_{device.split(' ', 1)[-1].replace(' ', '_').lower()}"
    command = "python benchmarks/kernels.py" + (" --results" if args.results else "")
    lines = [f"# Pixel-path kernels on {device}", "", f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M')}); "
             "median of CUDA-event times; share of copy = a device copy of the same bytes / the kernel's time.", "",
             "| kernel | size | ms | GB/s | share of copy | torch chain ms | speed-up |", "|---" * 7 + "|"]  # fmt: skip
    for r in rows:
        torch_cells = f"{r['torch_ms']:.3f} | {r['speedup_vs_torch']:.1f}x" if "torch_ms" in r else " | "
        lines.append(f"| {r['kernel']} | {r['size']} | {r['ms']:.3f} | {r['gb_per_s']:.0f} | "
                     f"{r['share_of_copy']:.0%} | {torch_cells} |")  # fmt: skip
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    stem.with_suffix(".json").write_text(json.dumps({"device": device, "command": command, "rows": rows}, indent=2))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
