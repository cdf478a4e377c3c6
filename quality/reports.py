"""What benchmark reports share: strict JSON that keeps infinite PSNR (the machine a run used: `derain.machine`)."""

from __future__ import annotations

import json
import math
from typing import Any

NON_FINITE = ("inf", "-inf", "nan")


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
