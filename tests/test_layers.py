"""The package's layers: imports point down only, no module imports itself back, and only the
schema, the errors and `__main__` live at the top of the package.

Every `import` counts, at module level or inside a function (a lazy import is still a
dependency). The layer rule leaves out imports under `if TYPE_CHECKING:` (an engine module may
name the config node it takes in a type hint); the cycle rule counts them too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import reftlab

PACKAGE = Path(reftlab.__file__).parent

# A wing may import its own modules and those of lower layers, never a higher one.
LAYERS = {
    "errors": 0,
    "rl": 0,
    "sandbox": 0,
    "rewards": 1,
    "data": 1,
    "models": 1,
    "runtime": 1,
    "config": 2,
    "stages": 3,
    "methods": 4,
    "report": 4,
    "app": 5,
    "__main__": 6,
}
TOP_LEVEL_MODULES = {"__init__", "__main__", "config", "errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def wing(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, type_checking: bool = False) -> set[str]:
    """The `reftlab.*` modules that `path` imports (those under `if TYPE_CHECKING:` too when
    `type_checking`)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node) and not type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("reftlab"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("reftlab"):
                # `from reftlab.app import verbs` imports the module reftlab.app.verbs
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if candidate in MODULES else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}
FULL_GRAPH = {name: imports_of(path, True) - {name} for name, path in MODULES.items()}


def test_only_the_schema_errors_and_main_sit_at_the_top():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - TOP_LEVEL_MODULES
    assert not loose, f"modules outside a wing: {sorted(loose)}"


def test_every_wing_has_a_layer():
    wings = {wing(name) for name in MODULES if wing(name)}
    assert wings <= set(LAYERS), f"wings without a layer: {sorted(wings - set(LAYERS))}"


def test_imports_point_down_only():
    upward = []
    for importer, imported in GRAPH.items():
        for target in imported:
            source_wing, target_wing = wing(importer), wing(target)
            if not source_wing or not target_wing or source_wing == target_wing:
                continue
            if LAYERS[target_wing] > LAYERS[source_wing]:
                upward.append(f"{importer} -> {target}")
            elif LAYERS[target_wing] == LAYERS[source_wing] and source_wing in ("rl", "sandbox"):
                upward.append(f"{importer} -> {target} (pure layers import nothing beside them)")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in FULL_GRAPH.get(node, ()):
            if target not in FULL_GRAPH:
                continue
            if target not in index:
                connect(target)
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
                cycles.append(sorted(component))

    for node in FULL_GRAPH:
        if node not in index:
            connect(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_pure_layers_see_no_config_logger_or_file_system():
    for name, imported in GRAPH.items():
        if wing(name) in ("rl", "rewards"):
            assert not any(wing(t) in ("config", "runtime") for t in imported), name
