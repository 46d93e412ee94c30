"""The shape of the house: module-level imports form no cycle, the run-kind registry imports no
kind, every kind registers itself where the registry looks, and the viewer asks runs what they
offer (protocols, traits), never which kind they are."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nerfgen.kinds import MODULES, RunKind, spec

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {"nerfgen": REPO / "nerfgen", "nerfgen.scenes": REPO / "scenes", "nerfgen.viewer": REPO / "viewer",
            "nerfgen.configs": REPO / "configs"}


def modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [p for p in path.relative_to(root).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def top_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The nerfgen modules ``name`` imports when it is imported (not inside functions, not under
    ``TYPE_CHECKING``), with the packages those imports load; its own parent packages left out
    (Python has them loaded before the module starts)."""
    out: set[str] = set()

    def visit(body) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                    base = ".".join(parts + ([node.module] if node.module else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(ast.parse(path.read_text()).body)
    loaded = set()
    for module in (m for m in out if m in known):
        parts = module.split(".")
        loaded.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return {m for m in loaded if m in known and m != name and not name.startswith(m + ".")}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            strong(v)
    return found


def test_module_level_imports_form_no_cycle():
    known = modules()
    graph = {name: top_level_imports(name, path, set(known)) for name, path in known.items()}
    assert cycles(graph) == []
    assert not graph["nerfgen.kinds"] & set(MODULES.values()), "the registry must not import the kinds"
    assert not graph["nerfgen.runs"] & set(MODULES.values()), "the file format must not import the kinds"


def test_the_registry_and_the_run_format_import_no_kind_even_lazily():
    kind_packages = {m.rsplit(".", 1)[0] for m in MODULES.values()}  # nerfgen.gan, nerfgen.generate, ...
    for name in ("nerfgen.kinds", "nerfgen.runs", "nerfgen.renderable", "nerfgen.field_task"):
        tree = ast.parse(modules()[name].read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if any(m == p or m.startswith(p + ".") for p in kind_packages)}, name


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("kind", list(RunKind))
def test_every_kind_registers_itself_where_the_registry_looks(kind):
    entry = spec(kind)
    assert entry.kind is kind and entry.engine.__module__ == MODULES[kind]
    assert entry.target in ("path", "prompt", "none")


def test_the_viewer_never_asks_a_run_its_kind():
    for path in (REPO / "viewer").glob("*.py"):
        source = path.read_text()
        assert not re.search(r"\.kind\b|\bkind\s*==|whole_frames\"|getattr\(run", source), f"{path.name} checks a kind"
