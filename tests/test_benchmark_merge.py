"""`benchmarks/continual_synthetic.py --merge` refuses parts it cannot join into one honest report."""

import importlib.util
import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "continual_synthetic.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("continual_synthetic_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def part(path: Path, method: str, **extra) -> Path:
    report = {"results": {method: {}}, "times_s": {}, "by_scene": {"psnr_rgb": {}, "dark_channel": {}}, **extra}
    path.write_text(json.dumps(report))
    return path


def test_merge_refuses_parts_from_different_devices(bench, tmp_path):
    a = part(tmp_path / "a.json", "sequential", device="CUDA NVIDIA H100 80GB HBM3")
    b = part(tmp_path / "b.json", "clgid", device="CPU (2 threads)")
    with pytest.raises(SystemExit, match="different devices"):
        bench.merge_reports(Namespace(methods=""), [a, b])


def test_merge_names_a_missing_or_unlabelled_part(bench, tmp_path):
    labelled = part(tmp_path / "a.json", "sequential", device="CPU (2 threads)")
    with pytest.raises(SystemExit, match="no report at .*missing.json"):
        bench.merge_reports(Namespace(methods=""), [labelled, tmp_path / "missing.json"])
    with pytest.raises(SystemExit, match="which device"):
        bench.merge_reports(Namespace(methods=""), [part(tmp_path / "b.json", "clgid")])


def test_reports_are_strict_json_and_keep_infinite_psnr(bench, tmp_path):
    """A network that returns its input unchanged scores inf dB; the report stays parseable by strict JSON readers
    and a merge reads the value back as inf."""
    report = {"results": {"individual": {"x": [1.5, float("inf")]}}, "by_scene": {"clean input": -float("inf")}}
    text = json.dumps(bench.strict_json(report), allow_nan=False)

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    assert bench.revive_json(json.loads(text, parse_constant=refuse)) == report
