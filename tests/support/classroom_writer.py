"""A writer process for the kill -9 test: records attempts as fast as the store allows and prints each
committed attempt's id on its own line (flushed), until it is killed or ``--limit`` attempts are in.

    python tests/support/classroom_writer.py URL ROUND_CODE [--limit 5000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: the repository root

from core.classroom import open_store  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("code")
    parser.add_argument("--limit", type=int, default=5000)
    args = parser.parse_args()
    store = open_store(args.url, attempts_per_second=1_000_000)  # the rate limit is not under test here
    player = store.join(args.code, "writer")
    print("ready", flush=True)
    for number in range(args.limit):
        attempt = store.record_attempt(player.id, "photo.jpg", "infinity", (number + 1) / 1e5, "pgd", 10, "adversarial", None, True, "healthy", "adversarial")
        print(attempt.id, flush=True)  # only after record_attempt returned, i.e. after COMMIT


if __name__ == "__main__":
    main()
