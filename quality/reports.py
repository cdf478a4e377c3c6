"""What benchmark reports share: the device a run used, strict JSON that keeps infinite PSNR, and joining the parts
of one run that trained in separate processes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from derain.cli import InputError

NON_FINITE = ("inf", "-inf", "nan")


class ReportError(InputError, ValueError):
    """Report parts that cannot be joined into one honest report."""


def device_name() -> str:
    """"CUDA <GPU name>" or "CPU (<n> threads)": what a report's numbers were measured on."""
    import torch

    if torch.cuda.is_available():
        return "CUDA " + torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"


def strict_json(value: Any) -> Any:
    """A copy that strict JSON can hold: a non-finite float (PSNR of an image returned unchanged is inf) becomes the
    string 'inf' / '-inf' / 'nan' (`revive_json` reads it back)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def revive_json(value: Any) -> Any:
    """The inverse of `strict_json`."""
    if isinstance(value, str) and value in NON_FINITE:
        return float(value)
    if isinstance(value, dict):
        return {key: revive_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [revive_json(item) for item in value]
    return value


def dumps(report: Any) -> str:
    """Strict JSON text of a report (no NaN / Infinity tokens)."""
    return json.dumps(strict_json(report), indent=2, allow_nan=False)


def join_parts(paths: list[Path]) -> tuple[dict, dict, dict, str]:
    """(results, times, by_scene, device) of the JSON reports of methods that trained in separate processes.

    Raises:
        ReportError: a part is missing, does not say its device, or the parts ran on different devices.
    """
    results, times, by_scene, devices = {}, {}, {"psnr_rgb": {}, "dark_channel": {}}, set()
    for path in paths:
        if not path.is_file():
            raise ReportError(f"--merge: no report at {path}")
        part = revive_json(json.loads(path.read_text()))
        if "device" not in part:
            raise ReportError(f"--merge: {path} does not say which device it ran on (a 'device' entry)")
        devices.add(part["device"])
        results |= part["results"]
        for stage, seconds in part["times_s"].items():
            if stage == "this invocation (wall)":
                stage = f"{', '.join(part['results'])} invocation (wall)"
            times[stage] = seconds
        by_scene["psnr_rgb"] |= part["by_scene"]["psnr_rgb"]
        by_scene["dark_channel"] = part["by_scene"]["dark_channel"]
    if len(devices) != 1:
        raise ReportError(f"--merge: the reports ran on different devices: {sorted(devices)}")
    return results, times, by_scene, devices.pop()
