"""The continual methods by name: what each does differently, so no code switches on the method's string.

- `clgid`: from task 2 on, replay the rain of earlier datasets over current clean images and distil from the
  previous network (the paper);
- `sequential`: plain fine-tuning on each new dataset (the lower bound);
- `joint`: one task over the union of the stream (the upper bound);
- `individual`: every dataset alone from a fresh network (the per-dataset reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from derain.registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    replays: bool = False  # teacher + replayed rain from task 2 on
    joint: bool = False  # one task over the union of the stream
    fresh: bool = False  # every task starts from a fresh network (each dataset scored by its own)
    forgets: bool = True  # a network carried through the stream: backward transfer is defined


METHODS: Registry[Method] = Registry("continual method")
for _method in (Method("clgid", replays=True), Method("sequential"), Method("joint", joint=True, forgets=False),
                Method("individual", fresh=True, forgets=False)):  # fmt: skip
    METHODS.add(_method.name, _method)


def method_of(config: Any) -> Method:
    """The `Method` a continual config names (unknown names fail with the known ones)."""
    return METHODS.get(config.method)


def task_names(config: Any) -> list[str]:
    """The tasks of a stream: one per dataset, or "joint" for the union."""
    return ["joint"] if method_of(config).joint else list(config.stream)
