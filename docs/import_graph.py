"""The import graph of ``core/`` and ``dashboard/``: its floors, and a picture of it.

A module's *floor* is 1 when it imports no other module of its package, else one more than the
highest floor it imports. Imports under ``if TYPE_CHECKING:`` are types only and do not count.
The dashboard's rule (``dashboard/page_script.py``): at most 5 floors, and no section imports another.

    python -m docs.import_graph                     # prints each module's floor
    python -m docs.import_graph --dot docs/import_graph.dot && dot -Tsvg docs/import_graph.dot -o docs/import_graph.svg
"""

from __future__ import annotations

import argparse
import ast
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "dashboard")
# The dashboard's layers, bottom up: a module imports only from layers below its own
# (tests/test_architecture.py checks it). Layer 4 holds the sections, which never import each other.
DASHBOARD_LAYERS = {
    1: {"settings", "wording", "page", "pictures", "style", "figures", "explainers", "uploads", "class_store", "gone_sessions", "warm_start"},
    2: {"analysis", "split_analysis", "passcode", "retraining"},
    3: {"resources", "views", "views_seeing", "widgets", "jobs"},
    4: {
        "image_picker", "attack_controls", "verdicts", "why", "curves", "many_photos", "lesson", "retrain_panel", "runs_view",
        "teacher_access", "class_challenge", "class_teacher", "class_board", "class_sync",
        "fooling", "photo_map", "per_class", "black_box", "proofs",
    },
    5: {"page_script", "app"},
}


def _runtime_imports(tree: ast.AST) -> set[str]:
    """Modules imported at run time (``if TYPE_CHECKING:`` blocks skipped)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph(package: str) -> dict[str, set[str]]:
    """{module: the modules of ``package`` it imports}, e.g. {"page_script": {"settings", ...}}."""
    modules = {path.stem: path for path in (ROOT / package).glob("*.py") if path.stem != "__init__"}
    edges = {}
    for name, path in modules.items():
        imported = _runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
        edges[name] = {other for other in modules if other != name and f"{package}.{other}" in imported}
    return edges


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor; raises ``ValueError`` naming an import cycle (a cycle has no floors)."""

    @lru_cache(maxsize=None)
    def floor(name: str, path: tuple[str, ...] = ()) -> int:
        if name in path:
            raise ValueError(f"import cycle: {' -> '.join(path[path.index(name):] + (name,))}")
        return 1 + max((floor(other, path + (name,)) for other in edges[name]), default=0)

    return {name: floor(name) for name in edges}


def dot(package_edges: dict[str, dict[str, set[str]]]) -> str:
    """Graphviz source: one cluster per package, modules ranked by floor (highest on top)."""
    lines = ["digraph imports {", '  rankdir=BT; node [shape=box, fontname="Helvetica", fontsize=11]; edge [color="#8899aa"];']
    for package, edges in package_edges.items():
        levels = floors(edges)
        if package == "dashboard":  # ranked by its declared layers, which is how it is meant to be read
            levels = {name: layer for layer, names in DASHBOARD_LAYERS.items() for name in names if name in edges}
        lines.append(f'  subgraph cluster_{package} {{ label="{package}/"; fontname="Helvetica";')
        for level in sorted(set(levels.values())):
            names = " ".join(f'"{package}.{n}"' for n in sorted(n for n, f in levels.items() if f == level))
            lines.append(f"    {{ rank=same; {names} }}")
        for name in sorted(edges):
            lines.append(f'    "{package}.{name}" [label="{name}"];')
        lines.append("  }")
        for name, others in sorted(edges.items()):
            for other in sorted(others):
                lines.append(f'  "{package}.{name}" -> "{package}.{other}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.import_graph", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dot", help="also write the graph as Graphviz source to this file")
    args = parser.parse_args()
    package_edges = {package: graph(package) for package in PACKAGES}
    for package, edges in package_edges.items():
        levels = floors(edges)
        print(f"{package}/: {max(levels.values())} floors")
        for level in sorted(set(levels.values())):
            print(f"  {level}: {', '.join(sorted(n for n, f in levels.items() if f == level))}")
    if args.dot:
        Path(args.dot).write_text(dot(package_edges), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
