"""What the `derain` GStreamer element costs on top of the network: host frames at 1080p, BGR and NV12.

Usage: python benchmarks/gst_element.py [--frames N] [--size 1920x1080] [--results]

The same rainy frames (the built-in video) go (a) through `Derainer` in a Python loop, and (b) through
`appsrc ! derain ! appsink` (pushed one at a time, each pulled before the next is pushed). Per frame:
- `derainer`: Derainer alone, the call's wall time (BGR: `derainer(frame)`, NV12: `derainer.nv12(y, uv)`);
- `element`: push to pull through the pipeline;
- `inside`: the element's own `infer-ms` (the Derainer call inside it, from its per-frame messages);
- overhead = element - inside, per frame (the same frames, the same run: mapping the buffer, the rain score, the
  per-frame event and message, GStreamer's hand-over), and element - derainer (medians, separate runs).
Writes `gst_element.{md,json}` under runs/benchmarks/ (or benchmarks/results/ with --results).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from derain.cpp_ext.reference import network_to_nv12
from derain.frames import to_network
from derain.machine import device_name
from derain.quality.reports import dumps
from derain.runtime import Derainer, gst
from derain.runtime.sources import open_source

RESULTS = Path(__file__).parent / "results"


def frames(count: int, width: int, height: int) -> list[np.ndarray]:
    source = open_source(f"synthetic://rain100H?size={width}x{height}&frames={count}&pace=false&seed=5")
    return [source.read().frame for _ in range(count)]


def nv12(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    luma, chroma = network_to_nv12(to_network(frame[None]), height, width)
    return np.concatenate([luma[0].ravel(), chroma[0].ravel()])


def through_element(data: list[np.ndarray], fmt: str, width: int, height: int, threads: int) -> dict[str, list]:
    from derain.runtime.gst_element import register

    register()
    Gst = gst.gst().Gst
    caps = f"video/x-raw,format={fmt},width={width},height={height},framerate=30/1"
    pipeline = Gst.parse_launch(f'appsrc name=src format=time caps="{caps}" ! derain name=d threads={threads} ! '
                                "appsink name=out sync=false")  # fmt: skip
    src, out, bus = pipeline.get_by_name("src"), pipeline.get_by_name("out"), pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    element, inside = [], []
    for index, frame in enumerate(data):
        buffer = Gst.Buffer.new_wrapped(frame.tobytes())
        buffer.pts = int(index * 1e9 / 30)
        started = time.perf_counter()
        src.emit("push-buffer", buffer)
        sample = out.try_pull_sample(int(600e9))
        element.append((time.perf_counter() - started) * 1000)
        assert sample is not None, "the pipeline gave no frame"
        while (message := bus.pop_filtered(Gst.MessageType.ELEMENT)) is not None:
            if message.get_structure().get_name() == "derain-frame":
                inside.append(message.get_structure().get_value("infer-ms"))
    src.emit("end-of-stream")
    pipeline.set_state(Gst.State.NULL)
    return {"element_ms": element, "inside_ms": inside}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="timed frames per row (one more, first, warms up)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the network")
    parser.add_argument("--results", action="store_true", help=f"write to {RESULTS}")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.split("x"))
    load = os.getloadavg()[0]  # other work on the machine: it moves both columns, not their per-frame difference
    data = frames(args.frames + 1, width, height)
    derainer = Derainer("builtin", device="cpu", threads=args.threads)
    rows = {}
    for fmt in ("BGR", "NV12"):
        payload = data if fmt == "BGR" else [nv12(f) for f in data]
        alone = []
        for frame in payload:
            started = time.perf_counter()
            if fmt == "BGR":
                derainer(frame)
            else:
                size = height * width
                derainer.nv12(frame[:size].reshape(height, width), frame[size:].reshape(height // 2, width // 2, 2))
            alone.append((time.perf_counter() - started) * 1000)
        timed = through_element(payload, fmt, width, height, args.threads)
        element, inside = np.array(timed["element_ms"][1:]), np.array(timed["inside_ms"][1:])
        rows[fmt] = {"derainer_ms": alone[1:], **{k: v[1:] for k, v in timed.items()},
                     "overhead_ms": (element - inside).tolist(),
                     "overhead_median_ms": float(np.median(element - inside)),
                     "element_minus_derainer_median_ms": float(np.median(element) - np.median(alone[1:]))}  # fmt: skip
        print(fmt, json.dumps({k: v for k, v in rows[fmt].items() if "median" in k}), file=sys.stderr)
    report = {"command": "python benchmarks/gst_element.py" + "".join(
        f" --{k} {v}" for k, v in (("frames", args.frames), ("size", args.size), ("threads", args.threads)))
        + (" --results" if args.results else ""), "device": device_name(), "gstreamer": gst.gst().Gst.version_string(),
        "size": [width, height], "rows": rows, "load_average_at_start": load}  # fmt: skip
    out = RESULTS if args.results else Path("runs/benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    (out / "gst_element.json").write_text(dumps(report) + "\n")
    (out / "gst_element.md").write_text(markdown(report))
    print(json.dumps({"written": str(out / "gst_element.md")}))
    return 0


def markdown(report: dict) -> str:
    width, height = report["size"]
    lines = ["# The derain GStreamer element: its cost on top of the network", "",
             f"Command: `{report['command']}`. Device: {report['device']}; {report['gstreamer']}. Host frames of "
             f"{width}x{height} (the built-in rain100H video), the shipped de-rainer on PyTorch; 1-minute load average "
             f"at the start {report.get('load_average_at_start', float('nan')):.1f}; the first frame of "
             "each row warms up and is not counted. `element`: appsrc push to appsink pull through "
             "`appsrc ! derain ! appsink`; `inside`: the Derainer call inside the element (its infer-ms); "
             "overhead = element - inside per frame, same frames, same run.", "",
             "| format | Derainer alone p50 (ms) | element p50 (ms) | inside p50 (ms) | overhead p50 (ms) | overhead "
             "max (ms) | element - Derainer alone, p50 (ms) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for fmt, row in report["rows"].items():
        lines.append(f"| {fmt} | {np.median(row['derainer_ms']):.1f} | {np.median(row['element_ms']):.1f} | "
                     f"{np.median(row['inside_ms']):.1f} | {row['overhead_median_ms']:.2f} | "
                     f"{max(row['overhead_ms']):.2f} | {row['element_minus_derainer_median_ms']:+.1f} |")  # fmt: skip
    lines += ["", "NV12 includes the reference conversions on the host (NV12 -> BGR frame contract -> NV12), inside "
              "the Derainer call in both columns; on a GPU the CUDA kernels do them."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
