"""The import rule of docs/design.md, checked by walking every import with ``ast`` (imports inside functions
included): a module imports only from its own layer or the layers below, and no modules import each other in a
cycle. ``python -m tests.architecture.layers`` prints the violations; the tests in test_layers.py run it."""

from __future__ import annotations

import ast
import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path

# Bottom to top. A module belongs to the first layer with a matching pattern (fnmatch on the dotted name).
LAYERS: list[tuple[str, list[str]]] = [
    (
        "core",
        [
            "tunesmith.errors",
            "tunesmith.registry",
            "tunesmith.files",
            "tunesmith.runtime",
            "tunesmith.hardware",
            "tunesmith.config",
            "tunesmith.rundir",
        ],
    ),
    (
        "components",
        [
            "tunesmith.data*",
            "tunesmith.models*",
            "tunesmith.train*",
            "tunesmith.eval*",
            "tunesmith.knowledge*",
            "tunesmith.examples",
        ],
    ),
    ("methods", ["tunesmith.methods*"]),
    (
        "tasks",
        [
            "tunesmith.tasks",
            "tunesmith.tasks.base",
            "tunesmith.tasks.classification",
            "tunesmith.tasks.pool",
            "tunesmith.tasks.*.*",
        ],
    ),
    ("inference", ["tunesmith.inference*"]),
    ("pipeline", ["tunesmith.pipeline*"]),
    (
        "features",
        [
            "tunesmith.store*",
            "tunesmith.serve*",
            "tunesmith.planning*",
            "tunesmith.tuning*",
            "tunesmith.lifecycle*",
            "tunesmith.labels*",
            "tunesmith.workspace*",
        ],
    ),
    ("api", ["tunesmith.api", "tunesmith"]),
    ("front ends", ["tunesmith.cli*", "tunesmith.ui*"]),
]
# A task's predictor (tasks/<task>/predictor.py) sits in the inference layer: it uses the loaders and runtimes
# there, and nothing in the task layer imports it.
OVERRIDES = {"tunesmith.tasks.*.predictor": "inference"}
# Front ends parse, call the facade and print: besides their own modules they import only these.
FRONT_ENDS = {
    "tunesmith.cli*": ["tunesmith.api", "tunesmith.config", "tunesmith.errors", "tunesmith.cli*", "tunesmith.ui"],
    "tunesmith.ui*": ["tunesmith.api", "tunesmith.config", "tunesmith.errors", "tunesmith.ui*"],
}


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    line: int
    why: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.why}"


def layer_of(module: str) -> int:
    names = [name for name, _ in LAYERS]
    for pattern, layer in OVERRIDES.items():
        if fnmatch.fnmatchcase(module, pattern):
            return names.index(layer)
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(module, p) for p in patterns):
            return i
    raise ValueError(f"{module}: in no layer; add it to LAYERS in {__file__}")


def modules(src: Path) -> dict[str, Path]:
    out = {}
    for path in sorted((src / "tunesmith").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported tunesmith module, line) for every import statement anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.append((name if name in known else target, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return [(m, line) for m, line in found if m in known and m != module]


def check(src: Path) -> list[Violation]:
    mods = modules(src)
    known = set(mods)
    graph: dict[str, set[str]] = {}
    out = []
    for module, path in mods.items():
        graph[module] = set()
        for target, line in imports(module, path, known):
            if module.startswith(target + "."):  # a module's own package(s): their __init__ runs first anyway
                continue
            graph[module].add(target)
            if layer_of(target) > layer_of(module):
                below, above = LAYERS[layer_of(module)][0], LAYERS[layer_of(target)][0]
                out.append(Violation(module, target, line, f"upward import ({below} -> {above})"))
            for front, allowed in FRONT_ENDS.items():
                if fnmatch.fnmatchcase(module, front) and not any(fnmatch.fnmatchcase(target, a) for a in allowed):
                    out.append(Violation(module, target, line, "a front end uses the api facade, not " + target))
    out.extend(Violation(c[0], c[1], 0, "import cycle: " + " -> ".join([*c, c[0]])) for c in cycles(graph))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    problems = check(Path(sys.argv[1] if len(sys.argv) > 1 else "src"))
    for p in problems:
        print(p)
    print(f"{len(problems)} import-rule violation(s)")
    sys.exit(1 if problems else 0)
