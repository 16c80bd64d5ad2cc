"""The house rules a newcomer can rely on, checked on the source: the dashboard's floors, sections
that never import each other, one job per file, core free of Streamlit, NSL through core.compat."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from docs.import_graph import DASHBOARD_LAYERS as LAYERS, floors, graph

ROOT = Path(__file__).resolve().parents[1]
MAX_DASHBOARD_FLOORS = 5
MAX_LINES = 400
SECTIONS = LAYERS[4]
SOURCE_FILES = sorted(path for folder in ("core", "dashboard", "bench") for path in (ROOT / folder).glob("*.py") if path.name != "__init__.py")


def layer_of(module: str) -> int:
    return next(number for number, names in LAYERS.items() if module in names)


def test_the_dashboard_is_at_most_five_floors_deep():
    deepest = max(floors(graph("dashboard")).values())
    assert deepest <= MAX_DASHBOARD_FLOORS


def test_every_dashboard_module_has_a_layer():
    assert set(graph("dashboard")) == set().union(*LAYERS.values())


def test_every_dashboard_import_goes_down_a_layer():
    upward = [(name, other) for name, others in graph("dashboard").items() for other in others if layer_of(other) >= layer_of(name)]
    assert upward == []


def test_no_section_imports_another_section():
    edges = graph("dashboard")
    assert [(name, other) for name in SECTIONS for other in edges[name] & SECTIONS] == []


@pytest.mark.parametrize("path", SOURCE_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_each_file_is_short_and_says_its_job_first(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name} holds two jobs: split it"
    assert ast.get_docstring(ast.parse(text)), f"{path.name} has no docstring saying its job"


def test_core_never_imports_streamlit_and_nothing_imports_keras_3():
    for path in ROOT.glob("*/*.py"):
        imported = {node.names[0].name if isinstance(node, ast.Import) else node.module for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, (ast.Import, ast.ImportFrom))}
        assert "keras" not in imported, f"{path} imports Keras 3; use tf.keras from core.compat"
        if path.parent.name == "core":
            assert not {name for name in imported if name and name.split(".")[0] == "streamlit"}, f"{path} imports Streamlit"


def test_nsl_is_imported_only_through_core_compat():
    offenders = [str(path.relative_to(ROOT)) for path in SOURCE_FILES if path.name != "compat.py" and "import neural_structured_learning" in path.read_text(encoding="utf-8")]
    assert offenders == []


@pytest.mark.parametrize("package", ["core", "dashboard"])
def test_no_package_has_an_import_cycle(package):
    floors(graph(package))  # raises ValueError naming the cycle
