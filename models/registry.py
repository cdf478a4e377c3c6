"""The network registry, and checkpoints that rebuild their own network."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from derain.cli import InputError
from derain.outputs import atomic_torch_save
from derain.registry import Registry

NETWORKS: Registry[type[nn.Module]] = Registry("network")

CHECKPOINT_FORMAT = "derain-checkpoint-v1"


class CheckpointError(InputError, ValueError):
    """A checkpoint file is missing, unreadable, or does not fit the network asked for."""


class NetworkArgumentError(InputError, TypeError):
    """A network asked for with arguments its constructor does not take."""


def network_problems(name: str, kwargs: dict[str, Any]) -> list[str]:
    """Why `build_model(name, **kwargs)` would fail: an unknown network, unknown or missing arguments, an argument
    of the wrong type (checked against the constructor's defaults); [] when it would not."""
    if name not in NETWORKS:
        return [f"unknown network {name!r}; known: {', '.join([*NETWORKS.names(), *VARIANTS])}"]
    parameters = {k: v for k, v in inspect.signature(NETWORKS.get(name).__init__).parameters.items() if k != "self"}
    problems = []
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        problems.append(f"network {name!r} has no argument(s) {unknown}; it takes {sorted(parameters)}")
    missing = [k for k, p in parameters.items() if p.default is inspect.Parameter.empty and k not in kwargs
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # fmt: skip
    if missing:
        problems.append(f"network {name!r} needs argument(s) {missing}")
    for key, value in kwargs.items():
        default = parameters[key].default if key in parameters else inspect.Parameter.empty
        if default is inspect.Parameter.empty or default is None or value is None:
            continue
        if isinstance(default, (list, tuple)):
            fits = isinstance(value, (list, tuple))
        elif isinstance(default, (int, float)) and not isinstance(default, bool):  # an int default takes a float too
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            fits = isinstance(value, type(default))
        if not fits:
            problems.append(f"network {name!r} argument {key!r} must be {type(default).__name__} like {default!r}, "
                            f"found {value!r}")  # fmt: skip
    return problems


# Named configurations of registered networks: name -> (network, arguments). `build_model("nafnet_csud")` builds
# NAFNet with CSUD's arguments; its checkpoint records the network and the arguments, not the variant name.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # CSUD / RGSUD's de-rainer (Yu et al., "Cycle self-supervised unpaired de-raining"; RGSUD keeps it)
    "nafnet_csud": ("nafnet", {"width": 32, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12,
                               "dec_blk_nums": [2, 2, 2, 2]}),  # fmt: skip
    "nafnet_w16": ("nafnet", {"width": 16}),  # the SIDD configuration at half width (latency tables)
}


def resolve_variant(name: str, kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(network, arguments) of a network or variant name; explicit arguments override a variant's."""
    if name in VARIANTS:
        network, defaults = VARIANTS[name]
        return network, {**defaults, **kwargs}
    return name, dict(kwargs)


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint carries to rebuild its network: a registered name (or a variant) and its arguments.
    Checked when made: an unknown network, or arguments its constructor does not take, fail at once."""

    name: str = "realtime"
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from derain.config import ConfigError

        problems = network_problems(*resolve_variant(self.name, self.kwargs))
        if problems:
            raise ConfigError("model: " + "; ".join(problems))


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered network (or a named variant); its name and arguments are kept on it as `model.spec` for
    checkpoints."""
    name, kwargs = resolve_variant(name, kwargs)
    cls = NETWORKS.get(name)  # an unknown name: UnknownNameError with the known ones
    problems = network_problems(name, kwargs)
    if problems:
        raise NetworkArgumentError("; ".join(problems))
    model = cls(**kwargs)
    model.spec = {"name": name, "kwargs": dict(kwargs)}
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The name and arguments a network was built with (see `build_model`)."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("model was not built by derain.models.build_model, so it cannot be checkpointed by name")
    return spec


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write a plain-dict checkpoint atomically (`atomic_torch_save`).

    The dict holds the format tag, the network's name and arguments, its weights, and any `extra` entries
    (optimizer state, step, config...): plain types and tensors only, so `read_checkpoint` loads it weights-only.
    """
    state = {"format": CHECKPOINT_FORMAT, "model": model_spec(model), "weights": model.state_dict(), **extra}
    return atomic_torch_save(state, path)


def load_torch_file(path: str | Path, what: str = "torch file") -> Any:
    """The one reader of torch files: `torch.load(weights_only=True)` on CPU (plain types and tensors only: nothing
    in the file can run code); a missing, truncated or unsafe file is a CheckpointError that says which."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or unsafe file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({_reason(error)})") from None


def _reason(error: Exception) -> str:
    """Why torch could not read a file, in a few words (its weights-only message runs to paragraphs)."""
    text = str(error)
    if "Weights only load failed" in text:
        found = re.search(r"(?:unsupported GLOBAL|Unsupported global:?)\s+(?:GLOBAL\s+)?([\w.]+)", text)
        if found and found.group(1).startswith("numpy"):
            return (f"it holds NumPy objects ({found.group(1)}), which a weights-only load refuses: a resume state "
                    "written before derain-edge saved RNG state as tensors; if the file is your own, convert it "
                    "once with `python -m derain.train.state --convert FILE`")  # fmt: skip
        if found:
            return f"it asks to run Python code ({found.group(1)}), which a weights-only load refuses"
        return "truncated, or not a torch file"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first[:160]}"


def read_training_state(path: str | Path) -> dict[str, Any]:
    """A run's resume state (`last.pt`: weights, optimizer, step, RNG, as plain types and tensors), read
    weights-only; a missing, truncated, unsafe or foreign file is a CheckpointError."""
    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a training state (a dict), found {type(state).__name__}")
    return state


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on CPU, weights-only, with a clear error for a missing, unsafe or foreign file."""
    path = Path(path)
    state = load_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path}: expected a derain checkpoint (format {CHECKPOINT_FORMAT!r} with the network name and "
            f"arguments), found {keys}"
        )
    return state


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights strictly, turning a mismatch into one readable error."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    wrong = [k for k in own if k in weights and tuple(own[k].shape) != tuple(weights[k].shape)]
    if missing or unexpected or wrong:
        name = getattr(model, "spec", {}).get("name", type(model).__name__)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of another shape (e.g. {k}: {tuple(weights[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{source} does not fit network {name!r}: " + ", ".join(parts))
    model.load_state_dict(weights)


def load_model(path: str | Path, expect: str | None = None, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network a checkpoint was saved from and load its weights (eval mode).

    Args:
        path: checkpoint written by `save_checkpoint`.
        expect: if given, the network name the caller needs; another architecture is an error.
    """
    state = read_checkpoint(path)
    spec = state["model"]
    if expect is not None and spec["name"] != expect:
        raise CheckpointError(f"{path}: expected a {expect!r} checkpoint, found {spec['name']!r}")
    try:
        model = build_model(spec["name"], **spec["kwargs"])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot rebuild network {spec['name']!r}: {error}") from None
    load_weights(model, state["weights"], source=str(path))
    return model.to(map_location).eval()
