from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from derain.config import ConfigError, load_config
from derain.registry import Registry, UnknownNameError


@dataclass(frozen=True)
class Inner:
    name: str = "realtime"
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outer:
    data: tuple[str, ...]
    inner: Inner = Inner()
    lr: float = 1e-3
    steps: int = 10


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: [a, b]\ninner:\n  name: nafnet\nlr: 1\n")
    config = load_config(Outer, path, ["inner.kwargs.width=16", "steps=3"])
    assert config == Outer(data=("a", "b"), inner=Inner("nafnet", {"width": 16}), lr=1.0, steps=3)


def test_unknown_keys_suggest_the_right_one(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        load_config(Outer, None, ["data=[a]", "stepz=3"])
    with pytest.raises(ConfigError, match="inner.nme"):
        load_config(Outer, None, ["data=[a]", "inner.nme=x"])
    with pytest.raises(ConfigError, match="expected a whole number"):
        load_config(Outer, None, ["data=[a]", "steps=many"])
    with pytest.raises(FileNotFoundError):
        load_config(Outer, tmp_path / "missing.yaml")


def test_registry_rejects_duplicates_and_names_known_entries():
    registry: Registry[int] = Registry("thing")
    registry.add("one", 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("one", 2)
    with pytest.raises(UnknownNameError, match="known: one. Did you mean 'one'"):
        registry.get("onee")


def test_base_files_lay_keys_over_their_base(tmp_path):
    (tmp_path / "common.yaml").write_text("data: [a, b]\ninner:\n  name: nafnet\n  kwargs: {width: 8}\nlr: 1\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("base: ../common.yaml\ndata: [c]\ninner:\n  kwargs: {width: 16}\n")
    config = load_config(Outer, child, ["steps=3"])
    # mappings merge key by key, lists are replaced, unnamed keys come from the base
    assert config == Outer(data=("c",), inner=Inner("nafnet", {"width": 16}), lr=1.0, steps=3)
    grandchild = tmp_path / "sub" / "grandchild.yaml"
    grandchild.write_text("base: child.yaml\nlr: 0.5\n")
    assert load_config(Outer, grandchild).inner == Inner("nafnet", {"width": 16})
    assert load_config(Outer, grandchild).lr == 0.5


def test_bad_base_files_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(Outer, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\ndata: [x]\n")
    with pytest.raises(FileNotFoundError, match=r"missing.yaml \(base of .*c.yaml\)"):
        load_config(Outer, tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("base: [a.yaml]\n")
    with pytest.raises(ConfigError, match="names one YAML file"):
        load_config(Outer, tmp_path / "d.yaml")
