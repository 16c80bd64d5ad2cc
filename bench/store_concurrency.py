"""How long do 600 attempts sent at once take the class store? SQLite (a temp file) and PostgreSQL (a throwaway cluster).

30 threads (30 players) each record 20 attempts at the same moment, through one Store (as one
replica would); once with the rate limit out of the way (the store's own speed) and once with the
real limit of 2 attempts per second per player (then 20 attempts take a player >= 9.5 s).

    python -m bench.store_concurrency [--players 30] [--attempts 20] [--skip-limited]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

from core.classroom import open_store
from tests.support.postgres import PostgresServer, binaries


def run(url: str, players: int, attempts: int, per_second: int) -> float:
    store = open_store(url, attempts_per_second=per_second)
    code = store.create_round("smallest", "all", ["infinity", "l2"])
    joined = [store.join(code.code, f"player {n}") for n in range(players)]
    barrier = threading.Barrier(players + 1)

    def play(player) -> None:
        barrier.wait()
        for k in range(attempts):
            store.record_attempt(player.id, "leaf.jpg", ("infinity", "l2")[k % 2], (k + 1) / 1000, "pgd", 10, "adversarial", None, k % 3 == 0, "healthy", "adversarial")

    threads = [threading.Thread(target=play, args=(p,)) for p in joined]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    assert len(store.attempts(code.code)) == players * attempts
    store.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=30)
    parser.add_argument("--attempts", type=int, default=20)
    parser.add_argument("--skip-limited", action="store_true", help="only the run without the rate limit")
    args = parser.parse_args()
    total = args.players * args.attempts
    with tempfile.TemporaryDirectory() as folder:
        server = PostgresServer(binaries()).start() if binaries() else None
        try:
            urls = {"sqlite": lambda: f"sqlite:///{folder}/bench-{time.monotonic_ns()}.db"}
            if server:
                urls["postgresql"] = server.fresh_url
            for name, make_url in urls.items():
                for per_second in (1_000_000, *(() if args.skip_limited else (2,))):
                    seconds = run(make_url(), args.players, args.attempts, per_second)
                    limit = "no rate limit" if per_second > 1000 else f"limit {per_second}/s per player"
                    print(f"{name:10s} {total} attempts, {args.players} threads, {limit:26s}: {seconds:6.2f} s ({total / seconds:6.1f} attempts/s)", flush=True)
        finally:
            if server:
                server.stop()


if __name__ == "__main__":
    main()
