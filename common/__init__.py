"""derain-edge: de-raining from training to a camera on a car.

The top-level package holds only what every part shares (the registry and config loading); the parts live in
`derain.models`, `derain.data`, `derain.quality`, `derain.train`, `derain.export`, `derain.runtime` and
`derain.cpp_ext`.
"""

from __future__ import annotations

__version__ = "0.1.0"
