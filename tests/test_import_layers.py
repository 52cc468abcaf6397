"""The import graph of ``ssl_zoo/``: no cycle, no upward edge, imports at the top of files.

Run by hand: ``python -m pytest tests/test_import_layers.py -q`` (or ``python tests/test_import_layers.py``,
which prints the graph between packages). Layers, lowest first; a module may import its own
package and lower layers only, never a peer of its layer::

    0 utils
    1 checkpoint, data, evaluation, modeling, solver
    2 config (method configs from modeling), model_zoo (checkpoint + modeling)
    3 engine (training), benchmark (evaluation tasks)
    4 cli (the console scripts over engine and benchmark)
"""
import ast
import os
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ssl_zoo")
LAYERS = {"utils": 0, "checkpoint": 1, "data": 1, "evaluation": 1, "modeling": 1, "solver": 1, "config": 2,
          "model_zoo": 2, "engine": 3, "benchmark": 3, "cli": 4}


def _modules():
    for folder, _, files in os.walk(ROOT):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                yield (rel[: -len(".__init__")] if rel.endswith(".__init__") else rel), path


def _imports(module: str, path: str):
    """``(imported ssl_zoo module, line, at top level)`` for every import of ssl_zoo in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    top = set(map(id, tree.body))
    is_pkg = path.endswith("__init__.py")
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if is_pkg else module.split(".")[:-1]
                base = ".".join(parts[: len(parts) - node.level + 1])
                names = [f"{base}.{node.module}" if node.module else base]
            else:
                names = [node.module or ""]
        for n in names:
            if n == "ssl_zoo" or n.startswith("ssl_zoo."):
                yield n, node.lineno, id(node) in top


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph():
    edges = defaultdict(set)
    problems = []
    for module, path in _modules():
        for target, line, at_top in _imports(module, path):
            where = f"{os.path.relpath(path, os.path.dirname(ROOT))}:{line}"
            if not at_top:
                problems.append(f"{where}: function-local import of {target}")
            src, dst = _package(module), _package(target)
            if src and dst and src != dst:
                edges[src].add(dst)
                if LAYERS[dst] >= LAYERS[src]:
                    problems.append(f"{where}: {src} (layer {LAYERS[src]}) imports {dst} (layer {LAYERS[dst]})")
    return edges, problems


def test_every_package_has_a_layer():
    packages = {_package(m) for m, _ in _modules()} - {""}
    assert packages == set(LAYERS), f"give new packages a layer: {sorted(packages ^ set(LAYERS))}"


def test_imports_go_downward_only_and_at_the_top():
    _, problems = _graph()
    assert not problems, "\n".join(problems)


def test_the_checker_sees_upward_and_local_imports(tmp_path):
    """The rule itself, on a made-up package: an upward edge and a local import are reported."""
    global ROOT
    pkg = tmp_path / "ssl_zoo"
    for sub, body in (("utils", "from ssl_zoo.engine import trainer\n"), ("engine", "def f():\n    import ssl_zoo.utils\n")):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text(body)
    saved, ROOT = ROOT, str(pkg)
    try:
        _, problems = _graph()
    finally:
        ROOT = saved
    assert any("utils (layer 0) imports engine (layer 3)" in p for p in problems)
    assert any("function-local import of ssl_zoo.utils" in p for p in problems)


if __name__ == "__main__":
    graph, found = _graph()
    for src in sorted(graph, key=lambda p: (LAYERS[p], p)):
        print(f"{LAYERS[src]} {src:<11} -> {', '.join(sorted(graph[src], key=lambda p: (LAYERS[p], p)))}")
    print("\n".join(found) or "no upward edge, no function-local import")
