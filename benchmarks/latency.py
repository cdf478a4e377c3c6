"""Latency of every backend and precision this machine can run, for the real-time network, NAFNet-w16 and MPRNet.

Usage:
  python benchmarks/latency.py            # everything available here: runs/benchmarks/latency_<device>.*
  python benchmarks/latency.py --results  # the same, written to benchmarks/results/ (the committed report)
  python benchmarks/latency.py --quick    # CI size: realtime net, one small frame, fp32; writes under runs/

Per row (warm-up excluded): p50/p90/p99 of the network alone (a ready tensor on its device) and of frame-in ->
frame-out (uint8 BGR frame in, pre-processing, network, post-processing, uint8 frame out, as `Derainer` runs it),
throughput, peak memory, the network's MACs and FP16 conv traffic per frame, this machine's measured ceilings (a
large copy's bandwidth, a large matmul's rate) and the time over that roofline floor; then a projection for Jetson
Orin NX 16GB, AGX Orin 64GB and RTX 4090 from published peaks (a floor, not a measurement). ONNX graphs and
checkpoints are exported once into a cache folder (random weights: latency does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from derain.machine import libraries, machine
from derain.models import build_model, save_checkpoint
from derain.models.cost import frame_cost
from derain.runtime import BackendError, Derainer
from derain.runtime.stats import percentiles
from derain.timing import cuda_event_ms, wall_seconds

log = logging.getLogger("latency")
RESULTS = Path(__file__).parent / "results"

NETWORKS = {  # label -> (registry name, arguments, frame sizes on CPU)
    "realtime": ("realtime", {}, None),
    "nafnet-w16": ("nafnet", {"width": 16}, None),
    "mprnet": ("mprnet", {}, [(480, 640)]),  # 661 GMAC at 640x480: larger frames take minutes a frame on a CPU
}
SIZES = [(480, 640), (720, 1280), (1080, 1920)]
# Published peaks (shared notes PERF.md section 3: dense FP16 tensor TFLOPS, DRAM GB/s).
PROJECTED = {"Jetson Orin NX 16GB": (15.0e12, 102.4e9), "Jetson AGX Orin 64GB": (42.5e12, 204.8e9),
             "RTX 4090": (165.2e12, 1008e9)}  # fmt: skip
ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class Variant:
    """One way of running a network: a backend, a precision and its options."""

    backend: str
    precision: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)
    graph: str | None = None  # ONNX I/O: "uint8" (pre/post in the graph) or "float" (pre/post on the host)
    networks: tuple[str, ...] | None = None  # only these networks (None: all)


def variants(cuda: bool, quick: bool) -> list[Variant]:
    if quick:
        return [Variant("pytorch", "fp32", "pytorch fp32", {"device": "cpu"}),
                Variant("onnxruntime", "fp32", "onnxruntime fp32 uint8-graph", {"device": "cpu"}, "uint8")]  # fmt: skip
    if cuda:  # torch ops on the pixel path (kernels off) against the fused kernels of derain.cpp_ext
        off = {"kernels": "off"}
        return [
            Variant("pytorch", "fp32", "pytorch fp32", {"channels_last": False, "cuda_graphs": False, **off}),
            Variant("pytorch", "fp16", "pytorch fp16", {"channels_last": False, "cuda_graphs": False, **off}),
            Variant(
                "pytorch", "fp16", "pytorch fp16 channels_last", {"channels_last": True, "cuda_graphs": False, **off}
            ),
            Variant(
                "pytorch",
                "fp16",
                "pytorch fp16 channels_last cuda-graph",
                {"channels_last": True, "cuda_graphs": True, **off},
            ),
            Variant(
                "pytorch",
                "fp16",
                "pytorch fp16 channels_last compile",
                {"channels_last": True, "cuda_graphs": False, "compile": True, **off},
            ),
            Variant(
                "pytorch",
                "fp16",
                "pytorch fp16 channels_last cuda-graph + fused kernels",
                {"channels_last": True, "cuda_graphs": True, "kernels": "on"},
            ),
            Variant(
                "pytorch",
                "fp16",
                "pytorch fp16 channels_last compile + cuda-graph + fused kernels",
                {"channels_last": True, "cuda_graphs": True, "compile": True, "kernels": "on"},
            ),
            Variant("onnxruntime", "fp32", "onnxruntime-gpu fp32 uint8-graph", {"device": "cuda"}, "uint8"),
            Variant("tensorrt", "fp16", "tensorrt fp16"),
            Variant("tensorrt", "int8", "tensorrt int8"),
        ]
    return [
        Variant("pytorch", "fp32", "pytorch fp32", {"device": "cpu"}),
        Variant("pytorch", "fp32", "pytorch fp32 channels_last", {"device": "cpu", "channels_last": True}),
        Variant("pytorch", "fp32", "pytorch fp32 compile", {"device": "cpu", "compile": True}, networks=("realtime",)),
        Variant("onnxruntime", "fp32", "onnxruntime fp32 uint8-graph", {"device": "cpu"}, "uint8"),
        Variant("onnxruntime", "fp32", "onnxruntime fp32", {"device": "cpu"}, "float"),
        Variant("onnxruntime", "fp16", "onnxruntime fp16", {"device": "cpu"}, "float"),
        Variant("onnxruntime", "int8", "onnxruntime int8", {"device": "cpu"}, "float"),
        Variant("tensorrt", "fp16", "tensorrt fp16"),
    ]


# --------------------------------------------------------------------------------------------- machine facts


def device_facts(cuda: bool) -> dict[str, Any]:
    """The machine (`derain.machine`), with the tag results are filed under."""
    facts = machine()
    if not cuda:
        facts = {k: v for k, v in facts.items() if k not in ("gpu", "compute_capability")}
    facts["tag"] = device_tag(facts)
    return facts


def device_tag(facts: dict[str, Any]) -> str:
    if "gpu" in facts:
        return "".join(ch for ch in facts["gpu"].split()[-1].lower() if ch.isalnum()) or "gpu"
    return f"cpu{facts['cores']}"


def ceilings(cuda: bool, quick: bool) -> dict[str, float]:
    """Measured: copy bandwidth (bytes read + written per second) and matmul rate (FLOP/s), best of several."""
    if cuda:
        source = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
        target = torch.empty_like(source)
        copy = min(_cuda_ms(lambda: target.copy_(source)) for _ in range(10)) / 1000
        rates = {}
        for name, dtype in (("fp32", torch.float32), ("fp16", torch.float16)):
            a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
            rates[name] = 2 * 8192**3 / (min(_cuda_ms(lambda a=a: a @ a) for _ in range(5)) / 1000)
        return {"copy_bytes_per_s": 2 * source.numel() / copy, "matmul_flops_fp32": rates["fp32"],
                "matmul_flops_fp16": rates["fp16"]}  # fmt: skip
    size = (64 if quick else 256) << 20
    source, target = np.ones(size, np.uint8), np.zeros(size, np.uint8)
    copy = min(_wall_s(lambda: np.copyto(target, source)) for _ in range(5))
    n = 1024 if quick else 2048
    a = torch.randn(n, n)
    matmul = min(_wall_s(lambda: a @ a) for _ in range(5))
    return {"copy_bytes_per_s": 2 * size / copy, "matmul_flops_fp32": 2 * n**3 / matmul}


_wall_s = wall_seconds  # the shared helpers (derain.timing)
_cuda_ms = cuda_event_ms


# ------------------------------------------------------------------------------------------------- artifacts


def artifact(network: str, variant: Variant, size: tuple[int, int], cache: Path) -> Path:
    """The checkpoint, ONNX graph or engine a variant loads, exported into `cache` on first use."""
    from derain.export.pipeline import ExportRequest, export

    name, kwargs, _ = NETWORKS[network]
    weights = cache / f"{network}.pt"
    if not weights.exists():
        torch.manual_seed(0)
        save_checkpoint(weights, build_model(name, **kwargs))
    if variant.backend == "pytorch":
        return weights
    if variant.backend == "tensorrt":  # one static engine per frame size, built here for this GPU
        library, targets = tensorrt_library()
        folder = cache / f"{network}_{library}_{variant.precision}_{size[0]}x{size[1]}"
        engines = sorted(folder.glob("*.engine"))
        if not engines:
            log.info("building a %s %s engine of %s at %dx%d", library, variant.precision, network, *size)
            export(ExportRequest(weights=str(weights), out=str(folder), precision=variant.precision, io="uint8",
                                 shapes=(size,), builder=library, targets=targets, calib_count=8, test_count=2,
                                 max_drop_db=1e9))  # fmt: skip
            engines = sorted(folder.glob("*.engine"))
        return engines[0]
    folder = cache / f"{network}_{variant.graph}_{variant.precision}"
    path = folder / f"model_{variant.precision}.onnx"
    if not path.exists():
        log.info("exporting %s %s (%s I/O) into %s", network, variant.precision, variant.graph, folder)
        export(ExportRequest(weights=str(weights), out=str(folder), precision=variant.precision, io=variant.graph,
                             shapes=((480, 640),), dynamic=((64, 64), (1088, 1920)), builder="onnx-only",
                             sample_size=(256, 256), calib_count=8, test_count=2, max_drop_db=1e9))  # fmt: skip
    return path


def tensorrt_library() -> tuple[str, tuple[tuple[int, ...], ...]]:
    """The engine builder usable on this GPU and its targets, or a BackendError saying why there is none."""
    from derain.gpus import RTX_SUPPORTED

    if not torch.cuda.is_available():
        raise BackendError("no CUDA GPU visible: TensorRT engines run on a GPU (TensorRT-RTX builds them here, "
                           "ahead of time)")  # fmt: skip
    major, minor = torch.cuda.get_device_capability(0)
    capability = major * 10 + minor
    try:
        __import__("tensorrt")
        return "tensorrt", ((),)
    except ImportError:
        pass
    try:
        __import__("tensorrt_rtx")
    except ImportError:
        raise BackendError("neither tensorrt nor tensorrt_rtx is installed here") from None
    if capability not in RTX_SUPPORTED:
        raise BackendError(f"tensorrt_rtx does not support SM{capability} and tensorrt is not installed here")
    return "tensorrt_rtx", ((capability,),)


# -------------------------------------------------------------------------------------------------- timing


def rainy_frame(height: int, width: int) -> np.ndarray:
    from derain.data.video import SyntheticRainVideo

    return SyntheticRainVideo(width, height, frames=1, seed=0).frame(0).rainy


def time_calls(fn: Any, label: str, budget_s: float, cuda: bool, minimum: int = 3, maximum: int = 50) -> list[float]:
    """Milliseconds per call after one warm-up call; as many calls as fit in `budget_s` (within min..max; two
    for calls over 3 s, so a CPU run of the large networks stays within minutes)."""
    first = _wall_s(fn)  # warm-up: allocation, compilation, graph capture
    second = _cuda_ms(fn) if cuda else _wall_s(fn) * 1000
    minimum = 2 if second > 3000 else minimum
    count = int(min(max(budget_s * 1000 / max(second, 1e-3), minimum), maximum))
    times = [second]
    for _ in tqdm(range(count - 1), desc=label, leave=False, disable=None):
        times.append(_cuda_ms(fn) if cuda else _wall_s(fn) * 1000)
    log.debug("%s: warm-up %.1f ms", label, first * 1000)
    return times


def network_alone(derainer: Derainer, frame: np.ndarray) -> Any:
    """A function running only the network on a ready tensor on its device, or None when the artifact has its
    pre/post-processing inside (uint8 frame graphs, `torch.compile`d frame modules)."""
    from derain.frames import to_network

    backend = derainer.backend
    if backend.name == "pytorch" and not hasattr(backend.module, "_orig_mod"):  # compiled: one fused frame module
        module = backend.module  # FrameIO, or _FusedFrames (its .network: NetworkOnly) with the fused kernels
        dtype = torch.float16 if backend.spec.precision == "fp16" else torch.float32
        tensor = torch.from_numpy(to_network(frame, backend.spec.multiple)).to(backend.spec.device, dtype)
        if module.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)

        def run() -> Any:
            with torch.inference_mode():
                return module.network(tensor)

        return run
    if backend.name == "onnxruntime" and backend.layout == "tensor":
        tensor = to_network(frame, backend.spec.multiple, backend.input_dtype)
        return lambda: backend.session.run(None, {backend.input_name: tensor})
    return None


def peak_reset(cuda: bool) -> None:
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM)
    except OSError:
        pass


def peak_mb(cuda: bool) -> float:
    if cuda:
        return torch.cuda.max_memory_allocated() / 2**20
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def measure(network: str, variant: Variant, size: tuple[int, int], cache: Path, cuda: bool, budget_s: float
            ) -> dict[str, Any]:  # fmt: skip
    frame = rainy_frame(*size)
    label = f"{network} {size[1]}x{size[0]} {variant.label}"
    peak_reset(cuda)
    threads = {} if cuda else {"threads": machine()["cores"]}  # every core, for every CPU backend, as stated
    derainer = Derainer(artifact(network, variant, size, cache), backend=variant.backend,
                        **({"precision": variant.precision} if variant.backend == "pytorch" else {}),
                        **{**threads, **variant.options})  # fmt: skip
    row: dict[str, Any] = {
        "network": network,
        "frame": f"{size[1]}x{size[0]}",
        "variant": variant.label,
        "backend": variant.backend,
        "precision": variant.precision,
        **derainer.backend.describe(),
    }
    frame_times = time_calls(lambda: derainer(frame), f"{label} frame", budget_s, cuda=False)
    row["frame_ms"] = percentiles(frame_times)
    alone = network_alone(derainer, frame)
    row["network_ms"] = percentiles(time_calls(alone, f"{label} net", budget_s, cuda)) if alone else None
    if cuda and variant.backend == "pytorch":  # uint8 frame already in device memory -> uint8 frame out
        device_frame = torch.from_numpy(frame).cuda()
        row["device_frame_ms"] = percentiles(time_calls(lambda: derainer(device_frame), f"{label} dev", budget_s,
                                                        cuda=True))  # fmt: skip
    row["fps"] = 1000 / float(np.mean(frame_times))
    row["iterations"] = len(frame_times)
    row["peak_mb"] = peak_mb(cuda)
    derainer.close()
    return row


# ------------------------------------------------------------------------------------------------ roofline


def add_costs(row: dict[str, Any], machine: dict[str, float], cuda: bool) -> None:
    """MACs, FP16 conv traffic, this machine's floor for the row's precision and the time over it."""
    name, kwargs, _ = NETWORKS[row["network"]]
    width, height = (int(side) for side in row["frame"].split("x"))
    cost = frame_cost(build_model(name, **kwargs), height, width, bytes_per_element=2)
    row["gmac"] = cost.gmac
    row["fp16_traffic_mb"] = cost.conv_megabytes
    traffic = cost.conv_bytes / 2 * ELEMENT_BYTES[row["precision"]]
    rate = machine.get(f"matmul_flops_{row['precision']}", machine["matmul_flops_fp32"])
    floor_s = max(2 * cost.macs / rate, traffic / machine["copy_bytes_per_s"])
    row["floor_ms"] = floor_s * 1000
    element = ELEMENT_BYTES[row["precision"]]
    row["layer_floor_ms"] = cost.layer_floor_s(rate, machine["copy_bytes_per_s"], element) * 1000
    measured = (row["network_ms"] or row["frame_ms"])["p50"]
    row["over_floor"] = measured / row["floor_ms"]
    row["over_layer_floor"] = measured / row["layer_floor_ms"]


def projection(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FP16 roofline floors on other devices from published peaks, one per (network, frame)."""
    seen, out = set(), []
    for row in rows:
        key = (row["network"], row["frame"])
        if key in seen or "gmac" not in row:
            continue
        seen.add(key)
        floors = {device: 1000 * max(2 * row["gmac"] * 1e9 / flops, row["fp16_traffic_mb"] * 1e6 / bandwidth)
                  for device, (flops, bandwidth) in PROJECTED.items()}  # fmt: skip
        out.append({"network": row["network"], "frame": row["frame"], "gmac": row["gmac"],
                    "fp16_traffic_mb": row["fp16_traffic_mb"], "floor_ms": floors})  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------------- reports


def _ms(stats: dict[str, float] | None, key: str = "p50") -> str:
    return "–" if not stats or math.isnan(stats[key]) else f"{stats[key]:.1f}"


def _floor(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "–"  # rows measured before the layer floor existed


def write_markdown(report: dict[str, Any], path: Path) -> None:
    device, machine = report["device"], report["ceilings"]
    lines = [
        f"# Latency on {device.get('gpu', device['cpu'])} ({device['cores']} cores)",
        "",
        f"Command: `{report['command']}` ({report['date']}, {report['seconds']:.0f} s). Libraries: "
        + ", ".join(f"{k} {v}" for k, v in report["libraries"].items())
        + ".",
        "",
        f"Measured ceilings: copy {machine['copy_bytes_per_s'] / 1e9:.1f} GB/s (read + write), matmul "
        + ", ".join(f"{k.split('_')[-1]} {v / 1e12:.2f} TFLOP/s" for k, v in machine.items() if "matmul" in k)
        + ". Floor = max(2 x MACs / matmul rate, conv traffic at the row's element size / copy bandwidth); layer "
        "floor = the sum of that max over each convolution / matrix product (never lower); x floor = network p50 "
        "(frame p50 where the graph holds the pre/post-processing) / floor.",
        "",
        "Frame = uint8 BGR frame in -> uint8 frame out through `Derainer` (host memory); network = the network "
        "alone on a ready tensor; ms are p50 unless stated; warm-up excluded.",
        "",
        "| network | frame | variant | network ms | frame ms p50 / p90 / p99 | device frame ms | fps | peak MB "
        "| GMAC | FP16 MB | floor ms | x floor | layer floor ms | x layer floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        frame = row["frame_ms"]
        lines.append(
            f"| {row['network']} | {row['frame']} | {row['variant']} | {_ms(row['network_ms'])} | "
            f"{_ms(frame)} / {_ms(frame, 'p90')} / {_ms(frame, 'p99')} | {_ms(row.get('device_frame_ms'))} | "
            f"{row['fps']:.2f} | {row['peak_mb']:.0f} | {row['gmac']:.1f} | {row['fp16_traffic_mb']:.0f} | "
            f"{row['floor_ms']:.2f} | {row['over_floor']:.1f} | {_floor(row, 'layer_floor_ms', '.2f')} | "
            f"{_floor(row, 'over_layer_floor', '.1f')} |"
        )
    if report["skipped"]:
        lines += ["", "Not run here:", ""]
        lines += [f"- {s['network']} {s['frame']} {s['variant']}: {s['reason']}" for s in report["skipped"]]
    lines += ["", "## Projection (FP16 roofline floor from published peaks; not a measurement, real engines land "
              "above it)", "", "| network | frame | GMAC | FP16 MB | " + " | ".join(PROJECTED) + " |",
              "|---|---|---|---|" + "---|" * len(PROJECTED)]  # fmt: skip
    for row in report["projection"]:
        floors = " | ".join(f"{row['floor_ms'][device]:.2f} ms" for device in PROJECTED)
        lines.append(f"| {row['network']} | {row['frame']} | {row['gmac']:.1f} | {row['fp16_traffic_mb']:.0f} | "
                     f"{floors} |")  # fmt: skip
    peaks = ", ".join(f"{d} {f / 1e12:.1f} TFLOPS FP16 dense, {b / 1e9:.1f} GB/s" for d, (f, b) in PROJECTED.items())
    lines += ["", f"Peaks: {peaks} (shared notes PERF.md section 3)."]
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Horizontal bars of frame-in -> frame-out p50 (log scale), one per row."""
    bar, margin, width = 22, 380, 1100
    image = np.full((bar * len(rows) + 70, width, 3), 255, np.uint8)
    values = [row["frame_ms"]["p50"] for row in rows]
    low, high = math.log10(max(min(values) / 2, 1e-3)), math.log10(max(values) * 2)
    palette = {"pytorch": (180, 110, 30), "onnxruntime": (40, 140, 40), "tensorrt": (30, 60, 200)}
    for index, (row, value) in enumerate(zip(rows, values)):
        top = 40 + index * bar
        length = int((math.log10(value) - low) / (high - low) * (width - margin - 90))
        cv2.rectangle(image, (margin, top), (margin + length, top + bar - 5), palette[row["backend"]], -1)
        text = f"{row['network']} {row['frame']} {row['variant']}"
        cv2.putText(image, text[:52], (6, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(image, f"{value:.1f} ms", (margin + length + 5, top + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)  # fmt: skip
    cv2.putText(image, "frame-in -> frame-out p50 (log scale)", (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                cv2.LINE_AA)  # fmt: skip
    cv2.imwrite(str(path), image)


# ---------------------------------------------------------------------------------------------------- main


def plan(args: argparse.Namespace, cuda: bool) -> list[tuple[str, Variant, tuple[int, int]]]:
    """Every (network, variant, frame size) to run, in order."""
    networks = args.networks.split(",") if args.networks else (["realtime"] if args.quick else list(NETWORKS))
    sizes = [tuple(int(s) for s in text.split("x")) for text in args.sizes.split(",")] if args.sizes else None
    jobs = []
    for network in networks:
        if network not in NETWORKS:
            raise SystemExit(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")
        own = NETWORKS[network][2] if not cuda else None
        for size in sizes or ([(240, 320)] if args.quick else own or SIZES):
            for variant in variants(cuda, args.quick):
                wanted = not args.skip or not any(word in variant.label for word in args.skip.split(","))
                if wanted and (variant.networks is None or network in variant.networks):
                    jobs.append((network, variant, size))
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI size: realtime net, 320x240, fp32, short runs")
    parser.add_argument("--networks", help=f"comma list of {', '.join(NETWORKS)}")
    parser.add_argument("--sizes", help="comma list of HxW (default 480x640,720x1280,1080x1920)")
    parser.add_argument("--skip", help="comma list of words: variants whose label holds one are not run (e.g. compile)")
    parser.add_argument("--budget", type=float, help="seconds of timed calls per row and measure (default 5, quick 1)")
    parser.add_argument("--resume", action="store_true", help="keep the rows of an earlier report in --out and run "
                        "only the missing ones (the report is rewritten after every row)")  # fmt: skip
    parser.add_argument("--out", default="runs/benchmarks", help="folder for latency_<device>.{json,md,png}")
    parser.add_argument("--results", action="store_true", help="write to benchmarks/results/ (the committed "
                        "results) instead of --out")  # fmt: skip
    parser.add_argument("--cache", default="runs/latency_cache", help="exported checkpoints and graphs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("derain").setLevel(logging.WARNING)
    cuda = torch.cuda.is_available()
    out = RESULTS if args.results else Path(args.out)
    cache = Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    budget = args.budget or (1.0 if args.quick else 5.0)
    started = time.perf_counter()
    device = device_facts(cuda)
    stem = out / f"latency_{device['tag']}"
    earlier = (
        json.loads(stem.with_suffix(".json").read_text()) if args.resume and stem.with_suffix(".json").exists() else {}
    )
    machine = earlier.get("ceilings") or ceilings(cuda, args.quick)
    rows, skipped = list(earlier.get("rows", [])), list(earlier.get("skipped", []))
    done = {(r["network"], r["frame"], r["variant"]) for r in rows + skipped}
    jobs = [job for job in plan(args, cuda) if (job[0], f"{job[2][1]}x{job[2][0]}", job[1].label) not in done]
    command = "python benchmarks/latency.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for index, (network, variant, size) in enumerate(jobs, 1):
        label = f"[{index}/{len(jobs)}] {network} {size[1]}x{size[0]} {variant.label}"
        try:
            row = measure(network, variant, size, cache, cuda, budget)
        except (BackendError, RuntimeError, ValueError) as error:
            reason = str(error).strip().splitlines()[0][:300]
            skipped.append({"network": network, "frame": f"{size[1]}x{size[0]}", "variant": variant.label,
                            "reason": reason})  # fmt: skip
            log.info("%s: not run (%s)", label, reason)
        else:
            add_costs(row, machine, cuda)
            rows.append(row)
            log.info("%s: frame p50 %.1f ms, network p50 %s ms", label, row["frame_ms"]["p50"],
                     _ms(row["network_ms"]))  # fmt: skip
        seconds = earlier.get("seconds", 0.0) + time.perf_counter() - started
        write_reports(stem, command, device, machine, rows, skipped, seconds)
    if not jobs:
        write_reports(stem, command, device, machine, rows, skipped, earlier.get("seconds", 0.0))
    log.info("wrote %s.{json,md,png} (%d rows, %d not run)", stem, len(rows), len(skipped))
    return 0


def write_reports(stem: Path, command: str, device: dict[str, Any], machine: dict[str, float],
                  rows: list[dict[str, Any]], skipped: list[dict[str, Any]], seconds: float) -> None:  # fmt: skip
    """JSON, Markdown and the plot, rewritten after every row (a killed run keeps what it measured)."""
    report = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"), "seconds": seconds, "device": device,
              "libraries": libraries(), "ceilings": machine, "rows": rows, "skipped": skipped,
              "projection": projection(rows)}  # fmt: skip
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
    os.replace(tmp, stem.with_suffix(".json"))
    write_markdown(report, stem.with_suffix(".md"))
    if rows:
        plot(rows, stem.with_suffix(".png"))


if __name__ == "__main__":
    sys.exit(main())
