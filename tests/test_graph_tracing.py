"""Tracing the dashboard's graphs must not parse Python source.

TensorFlow's autograph rewrites a traced function from its source (``ast.parse``). In a server, a
student's first attack can trace while Streamlit recompiles the page's script for a new page (it does so
after every session has left), and CPython 3.11's AST constructor shares a recursion counter
between threads: the recompile fails with "SystemError: AST constructor recursion depth mismatch"
and the new page shows a stack trace. The graphs the dashboard uses (its attacks, maps and
explanations, the background searches and Square) are traced with autograph off, and models answer
through ``core.models.predict`` rather than ``Model.predict``, so a trace parses nothing.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.beans import REPO_ROOT

# A fresh process: autograph converts each function once per process and caches it, so a trace
# seen earlier in the test run would parse nothing either way.
TRACE_EVERY_DASHBOARD_GRAPH = """
import ast, sys
import numpy as np
import core
from core import boundary, certify, checkpoints, embedding, square
from dashboard.analysis import explain_interaction, run_interaction
from dashboard.settings import AttackSettings
pair = checkpoints.load_pair(sys.argv[1])
parsed = []
real_parse = ast.parse
def spy(source, *args, **kwargs):
    parsed.append(str(source)[:80])
    return real_parse(source, *args, **kwargs)
ast.parse = spy
photo = np.random.default_rng(0).uniform(size=(64, 64, 3)).astype(np.float32)
plan = [AttackSettings(norm=norm, epsilon=0.03, iterations=steps, attacker="self", target=target)
        for norm in ("infinity", "l2", "l1") for steps in (1, 3) for target in (None, 1)]
for settings in plan:
    result = run_interaction(pair, photo, 0, settings)
for method in ("grad_cam", "smooth_grad"):
    explain_interaction(pair, result, method)
certify.certify(pair.adversarial, photo, 0.25, n0=10, n=20, batch_size=10)
embedding.features(pair.baseline, photo[None])
answer = np.array([int(np.argmax(pair.baseline(photo[None], training=False)))])  # a photo it gets right: the searches run
for norm in ("infinity", "l2", "l1"):  # the background searches of sections 3 and 7 (APGD; SLIDE for L1)
    found = boundary.smallest_fooling_budget(pair.baseline, photo[None], answer, norm, {"infinity": 16 / 255, "l2": 2.0, "l1": 20.0}[norm], tolerance=0.5)
    assert found[0] > 0, found
square.square_attack(pair.baseline, photo[None], answer, "infinity", 8 / 255, max_queries=20)  # section 10
ast.parse = real_parse
print(len(parsed))
for source in parsed[:5]:
    print(repr(source))
"""


def test_tracing_every_graph_the_dashboard_uses_parses_no_python_source():
    done = subprocess.run(
        [sys.executable, "-c", TRACE_EVERY_DASHBOARD_GRAPH, str(REPO_ROOT / "checkpoints")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    count, *examples = done.stdout.strip().splitlines()
    assert count == "0", f"tracing parsed Python source {count} times, e.g. {examples}"
