"""De-raining networks and the one network registry.

`build_model(name, **kwargs)` builds a network; checkpoints carry the name and arguments, and
`load_model(path)` rebuilds the network from them.
"""

from __future__ import annotations

from derain.models import mprnet, nafnet, prenet, realtime, rgsud, temporal, vrgnet  # noqa: F401  (registration)
from derain.models.padding import crop_to, pad_multiple, pad_to_multiple, prediction, run_padded, stage_outputs
from derain.models.registry import (
    NETWORKS,
    CheckpointError,
    build_model,
    load_model,
    load_weights,
    model_spec,
    read_checkpoint,
    save_checkpoint,
)

__all__ = [
    "NETWORKS",
    "CheckpointError",
    "build_model",
    "crop_to",
    "load_model",
    "load_weights",
    "model_spec",
    "pad_multiple",
    "pad_to_multiple",
    "prediction",
    "read_checkpoint",
    "run_padded",
    "save_checkpoint",
    "stage_outputs",
]
