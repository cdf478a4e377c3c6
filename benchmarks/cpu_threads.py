"""CPU threads: how many intra-op threads the PyTorch and ONNX Runtime backends should use on a CPU, idle and loaded.

Usage: python benchmarks/cpu_threads.py [--frames 30] [--results]

A 640x480 rainy frame through `Derainer` (the shipped de-rainer, FP32) `--frames` times, per backend and thread
count (1, 2, ..., the cores this process may use, and the backend's default), with the machine idle and with
busy processes spinning on some of its cores (another process of the perception stack, a video decoder).
p50 / p90 / p99 per frame, warm-up excluded. Writes `cpu_threads.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

from derain.builtin import resolve_weights
from derain.runtime import Derainer
from derain.runtime.backends.base import default_cpu_threads
from derain.runtime.stats import percentiles

RESULTS = Path(__file__).parent / "results"


def spin(stop: multiprocessing.Event) -> None:  # a busy process: pure Python arithmetic until told to stop
    value = 0
    while not stop.is_set():
        for _ in range(100_000):
            value += 1


def measure(model: str | Path, backend: str, threads: int | None, frames: int) -> dict[str, float]:
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    options = {"threads": threads} if threads else {}
    with Derainer(model, backend=backend, device="cpu", **options) as derainer:
        for _ in range(3):
            derainer(frame)
        times = []
        for _ in range(frames):
            start = time.perf_counter()
            derainer(frame)
            times.append(1000 * (time.perf_counter() - start))
    return percentiles(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument("--results", action="store_true", help=f"write to {RESULTS}")
    args = parser.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    weights = resolve_weights("builtin")
    work = Path(args.out) / "cpu_threads_work"
    work.mkdir(parents=True, exist_ok=True)
    onnx = work / "realtime_dynamic.onnx"
    if not onnx.is_file():
        from derain.export.onnx_export import export_onnx
        from derain.models import load_model, pad_multiple

        model = load_model(weights)
        export_onnx(model, onnx, 480, 640, dynamic=True, io="uint8", metadata={"io": "uint8",
                    "pad_multiple": pad_multiple(model)})  # fmt: skip
    rows = []
    for busy in range(cores):  # 0 .. cores - 1 busy processes
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(busy)]
        for process in spinners:
            process.start()
        try:
            for backend, model in (("pytorch", weights), ("onnxruntime", onnx)):
                for threads in range(1, cores + 1):
                    result = measure(model, backend, threads, args.frames)
                    rows.append({"busy_processes": busy, "backend": backend, "threads": threads, **result})
                    print(rows[-1], file=sys.stderr)
        finally:
            stop.set()
            for process in spinners:
                process.join()
    report = {"command": "python benchmarks/cpu_threads.py" + (" --results" if args.results else ""),
              "cores": cores, "default_cpu_threads": default_cpu_threads(), "frames": args.frames, "rows": rows}
    lines = ["# CPU threads: idle and loaded", "",
             f"Command: `{report['command']}`. {cores} cores for this process; 640x480 frames through `Derainer` "
             f"(the shipped de-rainer, FP32), {args.frames} frames after 3 of warm-up. Busy processes spin pure "
             "Python on the other cores. `default_cpu_threads()` (the cores less one) is now "
             f"{report['default_cpu_threads']} here: ONNX Runtime's default, and derain-stream's for every backend.",
             "",
             "| busy processes | backend | threads | p50 ms | p90 ms | p99 ms |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        lines.append(f"| {row['busy_processes']} | {row['backend']} | {row['threads']} | {row['p50']:.0f} | "
                     f"{row['p90']:.0f} | {row['p99']:.0f} |")  # fmt: skip
    out = RESULTS if args.results else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_threads.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "cpu_threads.md").write_text("\n".join(lines) + "\n")
    print(json.dumps({"written": str(out / "cpu_threads.md")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
