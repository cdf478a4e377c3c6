"""Benchmark reports stay strict JSON and keep infinite PSNR (`derain.quality.reports`)."""

import json

from derain.quality.reports import revive_json, strict_json


def test_reports_are_strict_json_and_keep_infinite_psnr():
    """A network that returns its input unchanged scores inf dB; the report stays parseable by strict JSON readers
    and `revive_json` reads the value back as inf."""
    report = {"results": {"individual": {"x": [1.5, float("inf")]}}, "by_scene": {"clean input": -float("inf")}}
    text = json.dumps(strict_json(report), allow_nan=False)

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    assert revive_json(json.loads(text, parse_constant=refuse)) == report
