"""Joining report parts (`derain.quality.reports`, used by `benchmarks/continual_synthetic.py --merge`) refuses parts
it cannot join into one honest report; reports stay strict JSON."""

import json
from pathlib import Path

import pytest

from derain.quality.reports import ReportError, join_parts, revive_json, strict_json


def part(path: Path, method: str, **extra) -> Path:
    report = {"results": {method: {}}, "times_s": {"this invocation (wall)": 5.0},
              "by_scene": {"psnr_rgb": {method: 1.0}, "dark_channel": {}}, **extra}  # fmt: skip
    path.write_text(json.dumps(report))
    return path


def test_join_refuses_parts_from_different_devices(tmp_path):
    a = part(tmp_path / "a.json", "sequential", device="CUDA NVIDIA H100 80GB HBM3")
    b = part(tmp_path / "b.json", "clgid", device="CPU (2 threads)")
    with pytest.raises(ReportError, match="different devices"):
        join_parts([a, b])


def test_join_names_a_missing_or_unlabelled_part(tmp_path):
    labelled = part(tmp_path / "a.json", "sequential", device="CPU (2 threads)")
    with pytest.raises(ReportError, match="no report at .*missing.json"):
        join_parts([labelled, tmp_path / "missing.json"])
    with pytest.raises(ReportError, match="which device"):
        join_parts([part(tmp_path / "b.json", "clgid")])


def test_join_keeps_every_part(tmp_path):
    a = part(tmp_path / "a.json", "sequential", device="CPU (2 threads)")
    b = part(tmp_path / "b.json", "clgid", device="CPU (2 threads)")
    results, times, by_scene, device = join_parts([a, b])
    assert list(results) == ["sequential", "clgid"] and device == "CPU (2 threads)"
    assert times == {"sequential invocation (wall)": 5.0, "clgid invocation (wall)": 5.0}
    assert by_scene["psnr_rgb"] == {"sequential": 1.0, "clgid": 1.0}


def test_reports_are_strict_json_and_keep_infinite_psnr():
    """A network that returns its input unchanged scores inf dB; the report stays parseable by strict JSON readers
    and a merge reads the value back as inf."""
    report = {"results": {"individual": {"x": [1.5, float("inf")]}}, "by_scene": {"clean input": -float("inf")}}
    text = json.dumps(strict_json(report), allow_nan=False)

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    assert revive_json(json.loads(text, parse_constant=refuse)) == report
