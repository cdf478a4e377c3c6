"""The pixel-path CUDA kernels (cpp_ext) against the device's copy bandwidth and the torch ops they replace.

Usage (a CUDA machine with torch and cuda-python): python benchmarks/kernels.py [--results]

Per kernel and size (1080p, 4K; batch 1): median GPU time by CUDA events over `--repeat` launches after warm-up,
bytes read + written, achieved bandwidth, its share of a device-to-device copy of the same bytes (the roofline of
a one-pass kernel), and the median time of the chain of torch ops it replaces (the PyTorch backend's FrameIO
pre/post-processing; OpenCV-style NV12 conversion in torch for NV12). Writes runs/benchmarks/kernels_<device>.{json,md}
(benchmarks/results/ with --results).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SIZES = {"1080p": (1080, 1920), "4K": (2160, 3840)}


def event_ms(torch, fn, repeat: int) -> float:  # noqa: ANN001
    """Median milliseconds of `fn` on the current stream by CUDA events, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def torch_nv12_to_network(torch, luma, chroma):  # noqa: ANN001
    """What `nv12_to_network` replaces: upsample chroma, BT.601 limited-range matrix, clamp, stack (float32)."""
    y = (luma.float() - 16.0) / 219.0
    up = chroma.float().repeat_interleave(2, 1).repeat_interleave(2, 2)
    cb, cr = (up[..., 0] - 128.0) / 224.0, (up[..., 1] - 128.0) / 224.0
    r, b = y + 1.402 * cr, y + 1.772 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], 1).clamp(0, 1)


def measure(repeat: int) -> list[dict]:
    import torch

    from derain.cpp_ext.device import FrameKernels

    kernels = FrameKernels(torch.cuda.current_device())
    return [row for label, size in SIZES.items() for row in measure_size(torch, kernels, label, *size, repeat)]


def measure_size(torch, kernels, label: str, height: int, width: int, repeat: int) -> list[dict]:  # noqa: ANN001
    """Each kernel against a device copy of its bytes and the torch ops it replaces (FrameIO's `frames_to_tensor` /
    `tensor_to_frames`, an NV12 decode in torch)."""
    from derain.models.frame_io import frames_to_tensor, tensor_to_frames

    stream = lambda: torch.cuda.current_stream().cuda_stream  # noqa: E731
    cuda = {"device": "cuda"}
    frame = torch.randint(0, 256, (1, height, width, 3), dtype=torch.uint8, **cuda)
    dtypes = (torch.float32, torch.float16)
    tensors = {dtype: torch.rand((1, 3, height, width), dtype=dtype, **cuda) for dtype in dtypes}
    out_frame = torch.empty_like(frame)
    luma = torch.randint(0, 256, (1, height, width), dtype=torch.uint8, **cuda)
    chroma = torch.randint(0, 256, (1, height // 2, width // 2, 2), dtype=torch.uint8, **cuda)
    pixels = height * width
    cases = {}
    for dtype, bits in ((torch.float32, "f32"), (torch.float16, "f16")):
        size = tensors[dtype].element_size()
        cases[f"bgr8 -> nchw {bits}"] = (
            lambda d=dtype: kernels.to_network(frame, tensors[d], stream()), pixels * (3 + 3 * size),
            lambda d=dtype: frames_to_tensor(frame, 8, d))  # fmt: skip
        cases[f"nchw {bits} -> bgr8"] = (
            lambda d=dtype: kernels.from_network(tensors[d], out_frame, stream()), pixels * (3 * size + 3),
            lambda d=dtype: tensor_to_frames(tensors[d], height, width))  # fmt: skip
    cases["nv12 -> nchw f32"] = (
        lambda: kernels.nv12_to_network(luma, chroma, tensors[torch.float32], stream=stream()), pixels * (1.5 + 12),
        lambda: torch_nv12_to_network(torch, luma, chroma))  # fmt: skip
    cases["nchw f32 -> nv12"] = (
        lambda: kernels.network_to_nv12(tensors[torch.float32], luma, chroma, stream=stream()), pixels * (12 + 1.5),
        None)  # fmt: skip
    source, target = (torch.empty(pixels * 15, dtype=torch.uint8, **cuda) for _ in range(2))
    rows = []
    for name, (fn, nbytes, reference) in cases.items():
        half_bytes = int(nbytes) // 2  # a copy reads and writes: half the bytes each way

        def copy(n: int = half_bytes) -> None:
            target[:n].copy_(source[:n])

        milliseconds, copy_ms = event_ms(torch, fn, repeat), event_ms(torch, copy, repeat)
        row = {"kernel": name, "size": label, "ms": milliseconds, "bytes": nbytes,
               "gb_per_s": nbytes / milliseconds / 1e6, "copy_ms": copy_ms,
               "share_of_copy": copy_ms / milliseconds}  # fmt: skip
        if reference is not None:
            row["torch_ms"] = event_ms(torch, reference, repeat)
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
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
    except Exception as error:  # no torch, no driver, no device
        print(f"benchmarks/kernels.py needs a CUDA GPU with torch: {error}", file=sys.stderr)
        return 2
    from derain.machine import device_name

    rows = measure(args.repeat)
    device = device_name()
    out = Path(__file__).parent / "results" if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"kernels_{''.join(ch for ch in device.split()[-1].lower() if ch.isalnum())}"  # as latency.py
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
