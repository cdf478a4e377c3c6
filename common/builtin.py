"""The shipped default de-rainer: weights inside the package, used when a command is given no weights.

`resolve_weights(None)` or `resolve_weights("builtin")` is the packaged checkpoint (`derain/models/weights/`);
anything else is a path. The card beside the weights (`realtime_v2.json`) says how they were trained and how well
they do on every built-in domain (`python benchmarks/default_derainer.py` reproduces its table). Torch-free: the
runtime resolves the weights without importing the models package.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BUILTIN_NAMES = ("builtin", "builtin-temporal")
WEIGHTS_NAME = "realtime_v2.pt"
TEMPORAL_NAME = "realtime_temporal_v1.pt"  # "builtin-temporal": the video de-rainer (benchmarks/video_derainer.py)


def weights_dir() -> Path:
    spec = importlib.util.find_spec("derain.models")  # locates the package without importing it (or torch)
    return Path(spec.origin).resolve().parent / "weights"


def builtin_weights() -> Path:
    return weights_dir() / WEIGHTS_NAME


def builtin_card() -> Path:
    return builtin_weights().with_suffix(".json")


def is_builtin(value: str | Path | None) -> bool:
    return value is None or str(value) in BUILTIN_NAMES


def resolve_weights(value: str | Path | None) -> Path:
    """The checkpoint a `--weights` value names: None / 'builtin' -> the shipped de-rainer; 'builtin-temporal' ->
    the shipped video de-rainer (it takes the previous frame and output: one stream per `Derainer`)."""
    if not is_builtin(value):
        return Path(value)
    path = weights_dir() / TEMPORAL_NAME if str(value) == "builtin-temporal" else builtin_weights()
    if not path.is_file():
        which = " (builtin-temporal)" if str(value) == "builtin-temporal" else ""
        raise FileNotFoundError(f"the built-in de-rainer{which} is not installed in this package ({path})")
    return path


def describe_builtin(value: str | Path | None = "builtin") -> str:
    """One line naming the shipped de-rainer `value` names and what it was trained on (for the CLIs to say so)."""
    if str(value) == "builtin-temporal":
        card_path = weights_dir() / Path(TEMPORAL_NAME).with_suffix(".json")
        card = json.loads(card_path.read_text()) if card_path.is_file() else {}
        gain = card.get("video", {}).get("paired", {}).get("psnr_y", {}).get("mean")
        detail = f", {gain:+.2f} dB PSNR-Y over the per-frame one on rendered rainy video" if gain is not None else ""
        return (f"the built-in video de-rainer ({TEMPORAL_NAME}: realtime_temporal, sees the previous frame and "
                f"output{detail})")  # fmt: skip
    card = json.loads(builtin_card().read_text()) if builtin_card().is_file() else {}
    training = card.get("training", {})
    worst = card.get("worst_gain")
    detail = f", {training.get('iterations')} iterations on data v2" if training else ""
    gain = f", at least {worst:+.2f} dB PSNR-Y on every built-in domain" if worst is not None else ""
    network = card.get("network", {}).get("name", "realtime")
    return f"the built-in de-rainer ({WEIGHTS_NAME}: {network}{detail}{gain})"
