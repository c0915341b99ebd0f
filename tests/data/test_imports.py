"""Imports inside stylefa.data run downward only: no module imports (even lazily, inside a
function) a module that imports it back."""

import ast
from pathlib import Path

import stylefa.data

PACKAGE = Path(stylefa.data.__file__).parent


def imported_data_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stylefa.data."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[2] for a in node.names if a.name.startswith("stylefa.data."))
    return found - {path.stem}


def test_no_import_cycles_in_stylefa_data():
    graph = {p.stem: imported_data_modules(p) for p in PACKAGE.glob("*.py")}
    assert graph["dataset"] == set()  # the reader of prepared datasets depends on nothing above it
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module, path):
        state[module] = 1
        for other in sorted(graph.get(module, ())):
            assert state.get(other) != 1, f"import cycle: {' -> '.join(path + [other])}"
            if other not in state:
                visit(other, path + [other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
