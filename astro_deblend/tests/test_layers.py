"""The package's import graph: data flow one way (docs/developers.rst), and no module imports in a circle.

Every ``import`` of the package is read from the source (module level and inside functions; the deprecation
forwarders named ``__getattr__`` excepted) and checked against the layers of the developer page.
"""

import ast
from pathlib import Path

import astro_deblend

ROOT = Path(astro_deblend.__file__).parent

#: Layer of each module (prefix match, longest first); a module may import its own layer and those below.
LAYERS = {
    # 1 conventions (the package face holds only the version at import time)
    "astro_deblend": 1, "astro_deblend.exceptions": 1, "astro_deblend.flags": 1,
    "astro_deblend.conventions": 1, "astro_deblend._io": 1, "astro_deblend._parallel": 1,
    "astro_deblend._symmetry": 1, "astro_deblend._version": 1,
    # 2 input and output, data, metrics: no deblender
    "astro_deblend.stamps": 2, "astro_deblend.catalog": 2, "astro_deblend.fitsio": 2,
    "astro_deblend.photometry": 2, "astro_deblend.pair_check": 2, "astro_deblend.paper": 2,
    "astro_deblend.metrics": 2, "astro_deblend._measure": 2, "astro_deblend.data": 2,
    "astro_deblend.evaluation": 2, "astro_deblend.plotting": 2, "astro_deblend.report": 2,
    "astro_deblend.uncertainty": 2,
    # 3 the template and the networks
    "astro_deblend.deblender": 3, "astro_deblend.images": 3, "astro_deblend.tiles": 3,
    "astro_deblend.views": 3, "astro_deblend.models": 3,
    "astro_deblend.training": 3,
    # 4 methods
    "astro_deblend.sep_deblender": 4, "astro_deblend.neural_deblender": 4, "astro_deblend.limits": 4,
    # 5 the registry of methods
    "astro_deblend.registry": 5,
    # 6 faces
    "astro_deblend.jobs": 6, "astro_deblend.pipeline": 6, "astro_deblend.cli": 6, "astro_deblend.__main__": 6,
}


def _layer(module):
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or (prefix != "astro_deblend" and module.startswith(prefix + ".")):
            return LAYERS[prefix]
    raise AssertionError(f"{module} has no layer: add it to LAYERS and to docs/developers.rst")


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        if "tests" in path.relative_to(ROOT).parts:
            continue
        parts = ("astro_deblend",) + path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


def _imports(name, path, mods):
    is_package = path.name == "__init__.py"
    found = set()

    class Visitor(ast.NodeVisitor):
        def visit_FunctionDef(self, node):
            if node.name != "__getattr__":
                self.generic_visit(node)

        def visit_ImportFrom(self, node):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("astro_deblend"):
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    found.add(full if full in mods else target)

        def visit_Import(self, node):
            found.update(a.name for a in node.names if a.name.startswith("astro_deblend"))

    Visitor().visit(ast.parse(path.read_text()))
    found.discard(name)
    return found


def _graph():
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def test_every_import_goes_down_the_layers():
    climbs = [f"{m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
              for m, targets in _graph().items() for t in sorted(targets) if _layer(t) > _layer(m)]
    assert climbs == []


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
