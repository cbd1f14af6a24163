"""The package's architecture, checked: no import cycles between modules, no private names imported across
modules, and the layers depend downwards (a study may use the engine; the engine, results and attacks never name a
study)."""

from __future__ import annotations

import ast
from pathlib import Path

import advtransfer

SRC = Path(advtransfer.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, imported names) of the module-level imports that run at import time (not those under
    ``if TYPE_CHECKING:`` and not those inside functions, which run later and cannot form an import cycle)."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rsplit(".", 1)[0]
    found = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, [alias.name for alias in node.names]))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names in _runtime_imports(path):
            if not target.startswith("advtransfer"):
                continue
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in modules and candidate != name:
                    graph[name].add(candidate)
                    break
    return graph


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # A package's __init__ importing its own submodules is how Python packages work, not a cycle between ideas.
    real = [c for c in cycles if not all(m.startswith(c[0].rsplit(".", 1)[0]) for m in c)]
    assert real == []


def test_no_private_names_imported_across_modules() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("advtransfer")):
                offenders += [f"{path.relative_to(SRC)}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and alias.name != "__version__"]
    assert offenders == []


def test_lower_layers_never_import_the_studies() -> None:
    """attacks, models, data, results, config and the engine's training/evaluation know nothing of studies; the
    reporting layer and the workflow reach them only through the registry (advtransfer.studies)."""
    graph = _graph()
    lower = ("advtransfer.attacks", "advtransfer.models", "advtransfer.data", "advtransfer.results",
             "advtransfer.config", "advtransfer.engine.train", "advtransfer.engine.evaluate",
             "advtransfer.engine.distributed", "advtransfer.engine.seeds", "advtransfer.engine.sanity")
    bad = [(m, d) for m, deps in graph.items() if m.startswith(lower) for d in deps
           if d.startswith("advtransfer.studies")]
    assert bad == []
    study_packages = ("advtransfer.studies.imagenet_transfer", "advtransfer.studies.cifar_at")
    outside = [(m, d) for m, deps in graph.items() if not m.startswith("advtransfer.studies") for d in deps
               if d.startswith(study_packages)]
    assert outside == []
