"""The tree's structure, read from the source (every `import derain...`, at module level or inside a function):
no import circles between modules, and each part imports only what the architecture lets it
(`../shared/ARCHITECTURE.md`: models / data / quality are building blocks, train / export / runtime are siblings,
the demo may use them all)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = {"common": "derain", "models": "derain.models", "data": "derain.data", "quality": "derain.quality",
         "train": "derain.train", "export": "derain.export", "runtime": "derain.runtime", "cpp_ext": "derain.cpp_ext",
         "demo": "derain.demo"}  # fmt: skip
# what each part may import besides itself and the shared `derain.*` modules of common/
ALLOWED = {
    "models": set(),
    "data": set(),
    "quality": set(),
    "cpp_ext": set(),
    "runtime": {"cpp_ext", "models", "data"},  # models (PyTorch backend) and data (synthetic://) lazily only
    "train": {"models", "data", "quality"},
    "export": {"models", "data", "quality", "runtime"},
    "demo": {"models", "data", "quality", "train", "export", "runtime", "cpp_ext"},
    "common": set(),
}


def modules() -> dict[str, Path]:
    """Every module of the package by its import name."""
    found = {}
    for folder, package in PARTS.items():
        for path in (ROOT / folder).rglob("*.py"):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            if folder == "common" and parts and parts[0] in PARTS:
                continue
            found[".".join([package, *parts])] = path
    return found


def part_of(module: str) -> str:
    name = module.split(".")[1] if module.count(".") >= 1 else ""
    return next((folder for folder, package in PARTS.items() if package == f"derain.{name}"), "common")


def imports(path: Path, known: dict[str, Path], lazy_too: bool = True) -> set[str]:
    """The derain modules a file imports (`from derain.x import y` is `derain.x.y` when that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if lazy_too else tree.body
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("derain")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("derain"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return {name for name in found if name in known}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return result


def test_no_module_imports_itself_round_a_circle():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    # a package's __init__ re-exporting its own modules is not a circle of design: drop package -> own child edges
    for name in graph:
        graph[name] = {t for t in graph[name] if not (known[name].name == "__init__.py" and t.startswith(name + "."))}
    assert cycles(graph) == []


def test_each_part_imports_only_what_the_architecture_allows():
    known = modules()
    wrong = []
    for name, path in known.items():
        part = part_of(name)
        for target in imports(path, known):
            other = part_of(target)
            if other not in (part, "common") and other not in ALLOWED[part]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_the_runtime_loads_training_free_and_torch_free():
    """runtime/ reaches models (the PyTorch backend) and data (the synthetic:// source) only from inside functions,
    never at module level: a Jetson process loads an engine without them."""
    known = modules()
    for name, path in known.items():
        if part_of(name) == "runtime":
            top = {part_of(t) for t in imports(path, known, lazy_too=False)}
            assert not top & {"models", "data"}, name
