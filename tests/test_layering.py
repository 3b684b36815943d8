"""Layering: inference, formats, fine-tuning and analysis never import training; data has no import loop.

Read from the source with `ast` (module-level and function-level imports alike),
so a lazy `from dnahnet.train... import` inside a function counts as much as a
top-level one, and nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dnahnet

ROOT = Path(dnahnet.__file__).resolve().parent
NOT_TRAINING = ["infer", "io", "finetune", "zeroshot", "analysis", "data", "hub.py", "distributed.py", "devices.py"]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every module an import statement in `source` (module `name`) names, relative imports made absolute.

    `from a.b import c` yields both `a.b` and `a.b.c` (c may be a submodule).
    """
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def imported_modules(path: Path) -> set[str]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def modules_of(entry: str) -> list[Path]:
    target = ROOT / entry
    return sorted(target.rglob("*.py")) if target.is_dir() else [target]


def is_training(module: str) -> bool:
    return module == "dnahnet.train" or module.startswith("dnahnet.train.")


def test_imports_in_sees_every_import_form():
    """The checker itself: absolute, relative, `from dnahnet import train`, imports inside functions."""
    source = (
        "import os\n"
        "from dnahnet import train\n"
        "def f():\n"
        "    from ..train.checkpoint import load_model\n"
        "    if True:\n"
        "        import dnahnet.train.distributed as d\n"
        "from . import model\n"
    )
    found = imports_in(source, "dnahnet.infer.probe")
    assert {"os", "dnahnet.train", "dnahnet.train.checkpoint", "dnahnet.train.distributed", "dnahnet.infer.model"} <= found
    assert imports_in("from . import text\n", "dnahnet.data", is_package=True) == {"dnahnet.data", "dnahnet.data.text"}
    assert not any(is_training(m) for m in imports_in("from dnahnet.trainer_like import x\n", "dnahnet.io.probe"))


@pytest.mark.parametrize("entry", NOT_TRAINING)
def test_no_training_import_outside_train(entry):
    """Inference, file formats, fine-tuning, zero-shot, analysis, data, hub: none reaches into dnahnet.train."""
    offenders = []
    for path in modules_of(entry):
        bad = sorted(m for m in imported_modules(path) if is_training(m))
        if bad:
            offenders.append(f"{path.relative_to(ROOT.parent)} imports {', '.join(bad)}")
    assert not offenders, "\n".join(offenders)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph` (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_loop_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_data_modules_have_no_import_cycle():
    """No loop among dnahnet.data modules, counting imports inside functions (the lazy ones that hide a loop)."""
    paths = modules_of("data")
    names = {module_name(p) for p in paths}
    graph = {module_name(p): {m for m in imported_modules(p) if m in names and m != module_name(p)} for p in paths}
    assert len(graph) >= 8, graph  # the checker saw the package
    assert any(graph.values()), graph  # and its internal imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))
