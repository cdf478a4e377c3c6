"""YAML experiment files -> frozen dataclasses, with `key.sub=value` overrides and strict key checking."""

from __future__ import annotations

import dataclasses
import difflib
import math
import subprocess
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from derain.cli import InputError

C = TypeVar("C")


class ConfigError(InputError, ValueError):
    """A config file or override does not fit the config's schema."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# Numbers in experiment files are counts, sizes, rates and weights: none may be negative (a seed may), and these
# must be above zero.
MAY_BE_NEGATIVE = ("seed",)
MUST_BE_POSITIVE = ("lr", "batch_size", "patch_size")


def _build(cls: type[C], raw: dict[str, Any], where: str) -> C:
    """Build `cls` from a mapping; every problem of every field is reported in one ConfigError."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, found {type(raw).__name__} {raw!r}")
    types_by_name = _field_types(cls)
    problems = []
    for key in raw:
        if key not in types_by_name:
            close = difflib.get_close_matches(str(key), list(types_by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {where + str(key)!r}{hint}; allowed: {', '.join(types_by_name)}")
    values = {}
    for name, value in raw.items():
        if name not in types_by_name:
            continue
        try:
            values[name] = _coerce(types_by_name[name], value, f"{where}{name}")
            _check_range(name, values[name], f"{where}{name}")
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError("; ".join(problems))
    try:
        return cls(**values)
    except TypeError as error:  # a required field is missing
        raise ConfigError(f"{where or 'config'}: {error}") from None


def _check_range(name: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, found {value!r}")
    if name in MUST_BE_POSITIVE and value <= 0:
        raise ConfigError(f"{where}: must be > 0, found {value!r}")
    if name not in MAY_BE_NEGATIVE and value < 0:
        raise ConfigError(f"{where}: must be >= 0, found {value!r}")


def _coerce(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(kind)
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{index}]") for index, v in enumerate(value))
    if origin is dict or kind is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        return dict(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, found {value!r}")
        return float(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected a whole number, found {value!r}")
    if kind in (str, bool) and not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {'true/false' if kind is bool else 'text'}, found {value!r}")
    return value


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[leaf] = value


BASE_KEY = "base"


def read_yaml(path: str | Path | None, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping from a file ({} for None).

    A top-level `base: other.yaml` (relative to this file) reads that file first and lays this one over it:
    mappings merge key by key, anything else (lists included) is replaced. Bases may have bases of their own.
    """
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        where = f" (base of {_chain[-1]})" if _chain else ""
        raise FileNotFoundError(f"config file not found: {path}{where}")
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: its bases form a cycle: {' -> '.join(str(p) for p in (*_chain, path))}")
    raw = _parse_yaml(path.read_text(errors="replace"), str(path)) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = raw.pop(BASE_KEY, None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY!r} names one YAML file, found {base!r}")
    return _merge(read_yaml(path.parent / base, (*_chain, path.resolve())), raw)


def _parse_yaml(text: str, where: str) -> Any:
    """YAML text -> data; a syntax error names the place (line and column)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML{place}: {problem}") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    cls: type[C],
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
) -> C:
    """Read a YAML file (optional) into dataclass `cls`, then apply `key.sub=value` overrides.

    `drop` names top-level keys that belong to the caller (e.g. `trainer`) and are removed first.

    Raises:
        ConfigError: unknown keys (with a "did you mean"), wrong types, malformed overrides.
        FileNotFoundError: the YAML file does not exist.
    """
    raw = read_yaml(path)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, text = item.split("=", 1)
        _set_dotted(raw, key.strip(), _parse_yaml(text, f"override {item!r}"))
    for key in drop:
        raw.pop(key, None)
    return _build(cls, raw, "")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-safe data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def git_revision() -> str:
    """The source tree's git revision, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def save_resolved(config: Any, out_dir: str | Path) -> Path:
    """Write the resolved config and the git revision beside a run's outputs."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "config.yaml"
    data = {"config": config_to_dict(config), "git_revision": git_revision()}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def parse_with_yaml(parser: Any, argv: list[str] | None = None) -> Any:
    """Parse a command line whose flags may also come from `--yaml FILE` and `key=value` overrides, through the same
    typed loader as `derain-train` (wrong types, unknown keys with a "did you mean", bad choices: one ConfigError).

    Keys are the flags' names with underscores (`calib_count: 64`, `shape: 720x1280`); a flag given on the command
    line wins over the YAML and the overrides. The parser needs a `--yaml` option and an `overrides` positional.
    """
    import argparse

    first = parser.parse_args(argv)
    if not first.yaml and not first.overrides:
        return first
    actions = list({a.dest: a for a in reversed(parser._actions)
                    if a.dest not in ("help", "yaml", "overrides") and a.option_strings}.values())  # first per dest
    fields = []
    for action in actions:
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            kind: Any = bool
        else:
            kind = action.type if action.type in (int, float, str) else type(action.default) \
                if action.default is not None else str  # fmt: skip
        fields.append((action.dest, kind | None, dataclasses.field(default=None)))
    schema = dataclasses.make_dataclass("CommandLine", fields, frozen=True)
    values = config_to_dict(load_config(schema, first.yaml, first.overrides))
    problems = []
    for action in actions:
        value = values.get(action.dest)
        if action.choices and value is not None and value not in action.choices:
            problems.append(f"{action.dest}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    if problems:
        raise ConfigError("; ".join(problems))
    parser.set_defaults(**{key: value for key, value in values.items() if value is not None})
    return parser.parse_args(argv)
