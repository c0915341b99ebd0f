"""The package's imports run downward only, in the order of docs/architecture.md, and form no circle.

The import graph is read from the source (``ast``), not by importing: every ``import`` and
``from ... import`` anywhere in a module counts, at module level AND inside functions (a lazy
import is still a dependency: it only moves the failure, or the circle, to run time), and so
does a module named in a string constant (``importlib.import_module`` tables: the CLI's command
modules, the packages' lazy re-exports). ``from package import name`` is an edge to the
submodule ``package.name`` when there is one, else to the package's ``__init__``. Importing a
submodule also runs its parents' ``__init__``; that implicit edge is not counted (every module
would otherwise depend on ``stylefa/__init__.py``).
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

import stylefa

ROOT = Path(stylefa.__file__).parent
REPO = ROOT.parent

# Top to bottom: a module may import from its own layer and the layers below it, never above.
# A module's layer is that of the longest prefix listed here (every module must have one).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("face", ("stylefa", "stylefa.cli", "stylefa.__main__")),
    ("study", ("stylefa.study",)),
    ("project/train", ("stylefa.project", "stylefa.train")),
    ("preprocess/data", ("stylefa.preprocess", "stylefa.data")),
    ("nets", ("stylefa.nets",)),
    ("fileio/readers/runtime", ("stylefa.fileio", "stylefa.readers", "stylefa.runtime", "stylefa.discovery",
                                "stylefa.progress", "stylefa.image_metrics", "stylefa.cli_options",
                                "stylefa._version")),
    ("errors", ("stylefa.errors",)),
)


def module_name(path: Path, root: Path = ROOT, package: str = "stylefa") -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def modules(root: Path = ROOT, package: str = "stylefa") -> dict[str, Path]:
    return {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    name: str | None = None  # ``from target import name`` where name is not a submodule
    written: str | None = None  # ``import written``: the module named, when target is its nearest existing parent


def _resolve(module: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules (``import a.b.c`` runs a.b.c)."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def imports_of(source: str, path: Path, known: dict[str, Path], package: str = "stylefa") -> list[Edge]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    edges: list[Edge] = []
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    edges.append(Edge(source, _resolve(alias.name, known) or alias.name, node.lineno,
                                      written=alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                base = source.split(".") if is_package else source.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != package:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    edges.append(Edge(source, sub, node.lineno))
                else:
                    edges.append(Edge(source, target, node.lineno, alias.name))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
              and node.value in known and node.value != package):
            edges.append(Edge(source, node.value, node.lineno))
    return [e for e in edges if e.target != source]


@functools.lru_cache(maxsize=None)
def import_graph(root: Path = ROOT, package: str = "stylefa") -> dict[str, list[Edge]]:
    known = modules(root, package)
    return {name: imports_of(name, path, known, package) for name, path in known.items()}


def layer_of(module: str, layers=LAYERS) -> int | None:
    best, rank = -1, None
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def upward_imports(graph: dict[str, list[Edge]], layers=LAYERS) -> list[str]:
    found = []
    for source, edges in graph.items():
        for edge in edges:
            a, b = layer_of(source, layers), layer_of(edge.target, layers)
            if a is not None and b is not None and b < a:
                found.append(f"{source} ({layers[a][0]}) imports {edge.target} ({layers[b][0]}), line {edge.line}")
    return found


def find_cycle(graph: dict[str, list[Edge]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    targets = {m: sorted({e.target for e in edges if e.target in graph}) for m, edges in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for other in targets[module]:
            if state.get(other) == 1:
                return path[path.index(other):] + [other]
            if other not in state:
                cycle = visit(other, path + [other])
                if cycle:
                    return cycle
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def defined_names(path: Path) -> set[str] | None:
    """Names a module defines at top level; None when it answers any name (a ``__getattr__``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.FunctionDef, ast.ClassDef)):
                    names.add(inner.name)
                elif isinstance(inner, (ast.Import, ast.ImportFrom)):
                    names.update((a.asname or a.name).split(".")[0] for a in inner.names)
                elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
    return names


def missing_imports(files: list[Path], known: dict[str, Path]) -> list[str]:
    """``stylefa`` imports in ``files`` that name no module or no top-level name of one."""
    defined = {m: defined_names(p) for m, p in known.items()}
    found = []
    for path in files:
        for edge in imports_of("<importer>", path, known):
            where = f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{edge.line}"
            if (edge.written or edge.target) not in known:
                found.append(f"{where}: no module {edge.written or edge.target}")
            elif edge.name and edge.name != "*" and defined[edge.target] is not None \
                    and edge.name not in defined[edge.target]:
                found.append(f"{where}: {edge.target} has no {edge.name}")
    return found


# --- the package as it is -----------------------------------------------------------------------

def test_every_module_has_a_layer():
    unplaced = [m for m in modules() if layer_of(m) is None]
    assert not unplaced, f"add these to LAYERS (and docs/architecture.md): {unplaced}"


def test_imports_run_downward_only():
    assert upward_imports(import_graph()) == []


def test_no_import_circles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_dataset_reader_depends_on_nothing_else_in_data():
    edges = import_graph()["stylefa.data.dataset"]
    assert not [e.target for e in edges if e.target.startswith("stylefa.data")]


def test_every_stylefa_import_names_something_that_exists():
    known = modules()
    files = [p for folder in ("stylefa", "tests", "tools", "benchmarks") for p in sorted((REPO / folder).rglob("*.py"))]
    assert missing_imports(files, known) == []


def test_docs_state_the_same_order():
    order = " -> ".join(name for name, _ in LAYERS)
    text = (REPO / "docs" / "architecture.md").read_text()
    assert f"Import order: {order}" in text, f"docs/architecture.md should say 'Import order: {order}'"


# --- the checks themselves, on a made-up package -------------------------------------------------

@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "stylefa"
    files = {
        "__init__.py": "",
        "errors.py": "",
        "fileio.py": "from stylefa.errors import E\n",
        "nets/__init__.py": "_LAZY = {'G': 'stylefa.nets.gen'}\n",
        "nets/gen.py": "def f():\n    from stylefa.study import run\n",  # lazy AND upward
        "study/__init__.py": "",
        "study/run.py": "from . import b\n",
        "study/b.py": "def g():\n    from stylefa.study.run import x\n",  # circle run <-> b
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_walker_finds_an_upward_lazy_import_and_a_circle(toy):
    graph = dict(import_graph(toy, "stylefa"))
    assert {e.target for e in graph["stylefa.nets"]} == {"stylefa.nets.gen"}  # named in a string
    assert {e.target for e in graph["stylefa.study.run"]} == {"stylefa.study.b"}  # relative import
    upward = upward_imports(graph)
    assert len(upward) == 1 and upward[0].startswith("stylefa.nets.gen (nets) imports stylefa.study.run (study)")
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and sorted(cycle[:-1]) == ["stylefa.study.b", "stylefa.study.run"]
    del graph["stylefa.study.b"]
    assert find_cycle(graph) is None


def test_the_walker_finds_imports_of_what_is_not_there(toy, tmp_path):
    user = tmp_path / "user.py"
    user.write_text("from stylefa.fileio import E\nfrom stylefa.errors import nothing\nimport stylefa.gone\n"
                    "def f():\n    from stylefa.study import run, b\n")
    found = missing_imports([user], modules(toy, "stylefa"))
    assert [f.split(": ", 1)[1] for f in found] == ["stylefa.errors has no nothing", "no module stylefa.gone"]
    (toy / "errors.py").write_text("def nothing():\n    pass\n")
    (toy / "gone.py").write_text("")
    assert missing_imports([user], modules(toy, "stylefa")) == []
