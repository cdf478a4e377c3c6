"""`python benchmarks/latency.py --quick` runs on a CPU-only machine and writes a complete report."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

pytest.importorskip("onnxruntime", reason="the [dev] extra installs onnxruntime")
SCRIPT = Path(__file__).parents[1] / "benchmarks" / "latency.py"


def test_quick_latency_run_writes_json_markdown_and_plot(tmp_path):
    command = [sys.executable, str(SCRIPT), "--quick", "--budget", "0.3", "--out", str(tmp_path),
               "--cache", str(tmp_path / "cache")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (report_path,) = tmp_path.glob("latency_*.json")
    report = json.loads(report_path.read_text())
    assert {row["backend"] for row in report["rows"]} == {"pytorch", "onnxruntime"}
    for row in report["rows"]:
        assert row["frame"] == "320x240" and row["iterations"] >= 3
        assert all(math.isfinite(row["frame_ms"][p]) and row["frame_ms"][p] > 0 for p in ("p50", "p90", "p99"))
        assert row["frame_ms"]["p50"] <= row["frame_ms"]["p90"] <= row["frame_ms"]["p99"]
        assert row["gmac"] > 0 and row["floor_ms"] > 0 and row["over_floor"] > 0 and row["peak_mb"] > 0
        assert row["layer_floor_ms"] >= row["floor_ms"] * (1 - 1e-9)  # a sum of maxima is at least the max of sums
    assert report["ceilings"]["copy_bytes_per_s"] > 1e8 and report["ceilings"]["matmul_flops_fp32"] > 1e8
    assert report["projection"][0]["floor_ms"]["RTX 4090"] < report["projection"][0]["floor_ms"]["Jetson Orin NX 16GB"]
    markdown = report_path.with_suffix(".md").read_text()
    assert "| realtime | 320x240 | pytorch fp32 |" in markdown and "Projection" in markdown
    assert cv2.imread(str(report_path.with_suffix(".png"))) is not None
    again = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(report_path.read_text())["rows"] == report["rows"]  # nothing measured twice
