"""What the tests and the benchmarks share: tiny Beans folders and checkpoints, a real server to
start and stop, a browser's websocket protocol, and readers of an AppTest page.

Run benchmarks from the repository root as modules (``python -m bench.load_test``): then
``tests.support`` imports without touching ``sys.path``.
"""
