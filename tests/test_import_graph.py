"""The package's import graph has no cycles, counting imports inside functions.

A cycle makes the import order matter and hides which module owns a concept;
an import inside a function only postpones it. Imports under
``if TYPE_CHECKING:`` never run, so they are left out.
"""

from __future__ import annotations

import ast
import pathlib

import sktransfer

PACKAGE_ROOT = pathlib.Path(sktransfer.__file__).parent


def _module_names():
    names = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = ["sktransfer", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        names[".".join(parts)] = (path, parts if is_package else parts[:-1])
    return names


def _type_checking_nodes(tree):
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                skipped.update(id(n) for n in ast.walk(statement))
    return skipped


def _imported(node, package, modules):
    """The package modules an import statement loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    base = package[: len(package) - node.level + 1] if node.level else []
    module = ".".join(base + ([node.module] if node.module else []))
    found = []
    for alias in node.names:
        submodule = f"{module}.{alias.name}"
        found.append(submodule if submodule in modules else module)
    return [m for m in found if m in modules]


def import_graph():
    """Module -> the package modules it imports anywhere (TYPE_CHECKING blocks excepted)."""
    modules = _module_names()
    graph = {}
    for name, (path, package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped:
                targets.update(_imported(node, package, modules))
        targets.discard(name)
        graph[name] = targets
    return graph


def strongly_connected(graph):
    """Tarjan's algorithm, iteratively: the components with more than one module."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
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
                    components.append(sorted(component))
    return components


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    cycles = strongly_connected(import_graph())
    assert cycles == [], f"import cycles (imports inside functions count): {cycles}"


def test_no_import_cycles_between_subpackages():
    graph = import_graph()
    packages = {}
    for module, targets in graph.items():
        source = module.split(".")[1] if "." in module else ""
        for target in targets:
            destination = target.split(".")[1] if "." in target else ""
            if source and destination and source != destination:
                packages.setdefault(source, set()).add(destination)
            packages.setdefault(destination, set())
    cycles = strongly_connected(packages)
    assert cycles == [], f"subpackages that import each other: {cycles}"


def private_imports_across_subpackages(graph):
    """(importer, imported) pairs where one subpackage imports another's private module."""
    pairs = []
    for module, targets in graph.items():
        for target in targets:
            source_parts, target_parts = module.split("."), target.split(".")
            if len(source_parts) < 3 or len(target_parts) < 3 or source_parts[1] == target_parts[1]:
                continue  # the top level, its private helpers (_lazy, _typing), or the same subpackage
            if any(part.startswith("_") for part in target_parts[2:]):
                pairs.append((module, target))
    return sorted(pairs)


if __name__ == "__main__":
    # python tests/test_import_graph.py: the cycles and the private imports across subpackages.
    found = import_graph()
    print("import cycles:", strongly_connected(found))
    pairs = private_imports_across_subpackages(found)
    print(f"imports of another subpackage's private module: {len(pairs)}")
    for importer, imported in pairs:
        print(f"  {importer} -> {imported}")
