"""The package's import graph: no circle, and no floor imports a higher one.

The graph is read from the source with ``ast`` (every ``import`` and ``from ... import``, those inside
functions included, relative ones resolved), so it needs no import of ``melanet``. ``FLOORS`` is the
order of ``docs/overview.md``, lowest first; a module belongs to the floor of the longest prefix that
names it. Imports within one floor are allowed (no circle among modules all the same).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "melanet"

# lowest first; each floor may import the floors below it and its own
FLOORS: list[tuple[str, ...]] = [
    ("melanet", "melanet.common"),  # the package's own __init__, the shared vocabulary (choices, training sets, formatting)
    ("melanet.config",),
    ("melanet.runs",),  # the run-folder contract, stages, lifecycle, jobs
    ("melanet.data",),
    # the pretrained backbones of stage 2, which stage 1's projected discriminator borrows
    ("melanet.classifier.backbones", "melanet.classifier.vgg16", "melanet.classifier.efficientnet_lite",
     "melanet.classifier.torch_weights"),
    ("melanet.gan",),  # stage 1
    ("melanet.classifier",),  # stage 2 (trains on stage 1's synthetic images)
    ("melanet.evaluation",),
    ("melanet.explain", "melanet.audits"),
    ("melanet.reports",),  # the evaluate step, model cards
    ("melanet.studies", "melanet.reproduce"),
    ("melanet.cli", "melanet.__main__"),
]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """``module -> the melanet modules it imports`` (``from pkg import name`` counts as ``pkg.name`` when
    that is a module, else as ``pkg``)."""
    files = {module_name(path, package): path for path in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names if alias.name.split(".")[0] == "melanet")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != "melanet":
                    continue
                for alias in node.names:
                    candidate = f"{module}.{alias.name}"
                    targets.add(candidate if candidate in files else module)
        graph[name] = {target for target in targets if target != name}
    return graph


def floor_of(module: str) -> int:
    best, floor = -1, None
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            exact = prefix == "melanet"  # the root package alone, not everything under it
            if (module == prefix or (not exact and module.startswith(prefix + "."))) and len(prefix) > best:
                best, floor = len(prefix), index
    if floor is None:
        raise AssertionError(f"{module} is on no floor: add its package to FLOORS and to docs/overview.md")
    return floor


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if child not in graph:
                continue
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} (floor {floor_of(module)}) imports {target} (floor {floor_of(target)})"
                  for module, targets in graph.items() for target in targets if floor_of(target) > floor_of(module))


def test_every_module_is_on_a_floor() -> None:
    for module in import_graph():
        floor_of(module)


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_floor_imports_a_higher_floor() -> None:
    upward = upward_imports(import_graph())
    assert not upward, "imports against the pipeline's direction:\n" + "\n".join(upward)


def test_at_most_three_modules_at_the_package_root() -> None:
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == ["__init__.py", "__main__.py", "config.py"]


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The graph, cycle and floor checks on a small package written here."""
    package = tmp_path / "melanet"
    (package / "runs").mkdir(parents=True)
    (package / "evaluation").mkdir()
    for folder in (package, package / "runs", package / "evaluation"):
        (folder / "__init__.py").write_text('"""x"""\n')
    (package / "runs" / "layout.py").write_text("def f():\n    from melanet.evaluation import metrics\n")
    (package / "evaluation" / "metrics.py").write_text("from . import compare\n")
    (package / "evaluation" / "compare.py").write_text("import melanet.evaluation.metrics\n")
    graph = import_graph(package)
    assert graph["melanet.runs.layout"] == {"melanet.evaluation.metrics"}
    assert graph["melanet.evaluation.metrics"] == {"melanet.evaluation.compare"}
    assert find_cycle(graph) in (["melanet.evaluation.compare", "melanet.evaluation.metrics", "melanet.evaluation.compare"],
                                 ["melanet.evaluation.metrics", "melanet.evaluation.compare", "melanet.evaluation.metrics"])
    assert upward_imports(graph) == ["melanet.runs.layout (floor 2) imports melanet.evaluation.metrics (floor 7)"]
    with pytest.raises(AssertionError, match="on no floor"):
        floor_of("melanet.widgets")


def test_docs_overview_names_every_package_and_module() -> None:
    """``docs/overview.md`` is the map of this layout: every folder and every module has its line."""
    overview = (PACKAGE.parent / "docs" / "overview.md").read_text(encoding="utf-8")
    missing = sorted({f"melanet/{path.parent.name}/" for path in PACKAGE.glob("*/__init__.py")
                      if f"melanet/{path.parent.name}/" not in overview}
                     | {path.name for path in PACKAGE.rglob("*.py")
                        if path.name not in ("__init__.py", "__main__.py") and f"`{path.name}`" not in overview
                        and f"{path.parent.name}/{path.name}" not in overview and f"melanet/{path.name}" not in overview})
    assert not missing, f"docs/overview.md does not name: {missing}"
