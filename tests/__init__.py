"""Beanguard's tests. A package, so the helpers in ``tests/support`` import as ``tests.support.*`` from the tests and from ``bench/`` alike."""
