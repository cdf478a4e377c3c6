"""Per-frame cost of every network: parameters, GMAC, FP16 conv traffic (MB) at 720p and 1080p.

Usage: python benchmarks/model_costs.py [--results]  (default: runs/benchmarks)
Counts come from `derain.models.cost.frame_cost` (meta-device run: no memory, no arithmetic).
Traffic floors on Jetson use the DRAM bandwidths of the shared notes (PERF.md section 3).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from derain.models import build_model
from derain.models.cost import frame_cost

NETWORKS = [
    ("mprnet", {}),
    ("prenet", {}),
    ("nafnet", {}),  # width 32, 2-2-4-8 / 12 / 2-2-2-2 (the RGSUD de-rainer)
    ("nafnet", {"width": 16}),
    ("realtime", {}),
]
RESOLUTIONS = [(720, 1280), (1080, 1920)]
# FP16 traffic floor in ms = MB / (GB/s); bandwidths from PERF.md.
BANDWIDTH_GBPS = {"Orin Nano 8GB": 68.0, "AGX Orin 64GB": 204.8}


def label(name: str, kwargs: dict) -> str:
    return name + ("(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    args = parser.parse_args()
    if args.results:
        args.out = str(Path(__file__).parent / "results")
    rows = []
    for name, kwargs in NETWORKS:
        model = build_model(name, **kwargs)
        for height, width in RESOLUTIONS:
            cost = frame_cost(model, height, width)
            rows.append(
                {
                    "network": label(name, kwargs),
                    "params": cost.params,
                    "resolution": f"{width}x{height}",
                    "gmac": round(cost.gmac, 2),
                    "conv_traffic_mb": round(cost.conv_megabytes, 1),
                    "traffic_floor_ms": {k: round(cost.conv_megabytes / bw, 2) for k, bw in BANDWIDTH_GBPS.items()},
                }
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "python": platform.python_version(), "bytes_per_element": 2}
    (out / "model_costs.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        "# Network cost per frame (FP16)",
        "",
        "Command: `python benchmarks/model_costs.py`. MACs count convolutions and matrix products; conv traffic is",
        "the layer-wise sum of conv input + output + weight bytes at 2 bytes/element (an engine that fuses pointwise",
        "ops into conv epilogues, no cache reuse). Traffic floor = traffic / DRAM bandwidth.",
        "",
        "| network | params | frame | GMAC | conv traffic (MB) | floor Orin Nano (ms) | floor AGX Orin (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floors = r["traffic_floor_ms"]
        lines.append(
            f"| {r['network']} | {r['params'] / 1e6:.3f} M | {r['resolution']} | {r['gmac']:.1f} | "
            f"{r['conv_traffic_mb']:.0f} | {floors['Orin Nano 8GB']:.1f} | {floors['AGX Orin 64GB']:.1f} |"
        )
    (out / "model_costs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
