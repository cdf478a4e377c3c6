"""The shipped default de-rainer (see `derain.builtin`, the torch-free home of these helpers)."""

from __future__ import annotations

from derain.builtin import builtin_card, builtin_weights, describe_builtin, is_builtin, resolve_weights

BUILTIN_WEIGHTS = builtin_weights()
BUILTIN_CARD = builtin_card()

__all__ = ["BUILTIN_CARD", "BUILTIN_WEIGHTS", "describe_builtin", "is_builtin", "resolve_weights"]
