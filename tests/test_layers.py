"""The shape of the code, read from its imports (ast, lazy and type-only imports included): faces apart, layers
in one direction (faces -> web -> services -> tools -> agent -> foundation -> engines), no import circles, an
agent loop free of HTTP, and modules of a readable size."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Rank of each room: a module may import its own room and rooms of lower rank only.
RANKS = {
    "orchestrator.sandbox": 0, "retrieval": 0,
    "orchestrator": 1, "orchestrator.config": 1, "orchestrator.errors": 1, "orchestrator.logs": 1,
    "orchestrator.metrics": 1, "orchestrator.db": 1,
    "orchestrator.agent": 2,
    "orchestrator.tools": 3,
    "orchestrator.services": 4, "orchestrator.assistants": 4, "orchestrator.responses": 4,
    "orchestrator.web": 5,
    "orchestrator.api": 6, "orchestrator.wires": 6, "orchestrator.responses_api": 6, "orchestrator.api_v1": 6,
    "orchestrator.playground": 6,
    "orchestrator.app": 7, "orchestrator.cli": 7, "orchestrator.localserver": 7,
}
FACES = ("orchestrator.api", "orchestrator.api_v1", "orchestrator.wires.mcp", "orchestrator.wires.jupyter",
         "orchestrator.wires.librechat", "orchestrator.responses_api", "orchestrator.playground")
HTTP = {"fastapi", "starlette", "uvicorn", "sse_starlette"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*(ROOT / "orchestrator").rglob("*.py"), *(ROOT / "retrieval").rglob("*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imports(name: str, path: Path) -> Iterator[str]:
    """Every module `name` imports by full dotted name; `from package import submodule` names the submodule only
    (it runs the package's __init__ too, but that is the package's import, not a dependency on all of it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            subs = [f"{base}.{alias.name}" for alias in node.names]
            yield from subs if all(sub in MODULES for sub in subs) else [base]


def internal(name: str) -> str | None:
    """The project module an import resolves to, or None for a third-party or standard one."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {name: {target for imported in imports(name, path) if (target := internal(imported)) and target != name}
         for name, path in MODULES.items()}
EXTERNAL = {name: {imported.split(".")[0] for imported in imports(name, path) if internal(imported) is None}
            for name, path in MODULES.items()}


def room(name: str) -> str:
    return max((prefix for prefix in RANKS if name == prefix or name.startswith(prefix + ".")), key=len)


def face(name: str) -> str | None:
    return next((prefix for prefix in FACES if name == prefix or name.startswith(prefix + ".")), None)


def test_every_module_has_a_room() -> None:
    assert all(room(name) for name in MODULES)
    loose = {name for name in MODULES if name.count(".") == 1 and name.startswith("orchestrator.")
             and (ROOT / "orchestrator" / f"{name.split('.')[1]}.py").exists()}
    assert loose <= {"orchestrator.app", "orchestrator.config", "orchestrator.errors", "orchestrator.logs",
                     "orchestrator.metrics", "orchestrator.localserver"}, loose


def test_layers_go_one_way() -> None:
    upward = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
                    if RANKS[room(target)] > RANKS[room(name)])
    assert upward == []


def test_no_face_imports_another() -> None:
    crossing = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
                      if face(name) and face(target) and face(name) != face(target))
    assert crossing == []


@pytest.mark.parametrize(("engine", "forbidden"), [
    ("orchestrator.sandbox", ("retrieval", "orchestrator.api", "orchestrator.wires", "orchestrator.assistants",
                              "orchestrator.services", "orchestrator.web")),
    ("retrieval", ("orchestrator",)),
    ("orchestrator.agent", ("orchestrator.api", "orchestrator.wires", "orchestrator.web", "orchestrator.services",
                            "orchestrator.assistants", "orchestrator.tools")),
])
def test_engines_and_the_agent_stay_below(engine: str, forbidden: tuple[str, ...]) -> None:
    mine = [name for name in MODULES if name == engine or name.startswith(engine + ".")]
    assert mine
    reached = sorted(f"{name} -> {target}" for name in mine for target in GRAPH[name]
                     if any(target == f or target.startswith(f + ".") for f in forbidden))
    assert reached == []


def test_the_agent_loop_knows_no_http() -> None:
    agent = [name for name in MODULES if name.startswith("orchestrator.agent")]
    assert "orchestrator.agent.loop" in agent
    assert {name: EXTERNAL[name] & HTTP for name in agent if EXTERNAL[name] & HTTP} == {}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles() -> None:
    assert cycles(GRAPH) == []


def test_no_module_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): lines for path in MODULES.values()
            if (lines := len(path.read_text().splitlines())) > 400}
    assert long == {}
