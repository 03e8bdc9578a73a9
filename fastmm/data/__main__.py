"""``python -m fastmm.data [PATH]``: read the Binance capture, print its counts and the reader's speed.

The speed is printed as a ratio against a baseline measured in the same run on the same machine: the
bare cost of decompressing the lines and decoding their JSON (what any reader must pay), so the figure
means the same on a slow CI machine as on a fast desk.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import orjson

from fastmm.data.binance import read_capture, read_lines, replay
from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, DepthDiff
from fastmm.units import format_e8


def main(argv: list[str]) -> int:
    path = argv[0] if argv else None
    t0 = time.perf_counter()
    n = 0
    for line in read_lines(path):
        orjson.loads(line[line.find(b" ") + 1:])
        n += 1
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    events = list(read_capture(path))
    typed = time.perf_counter() - t0
    t0 = time.perf_counter()
    book = L2Book()
    for ev in replay(events):
        if isinstance(ev, DepthDiff):
            book.apply_diff(ev)
        elif isinstance(ev, BookSnapshot):
            book.apply_snapshot(ev)
    booked = time.perf_counter() - t0
    kinds = Counter(type(e).__name__ for e in events)
    print(f"lines {n}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    bb, ba = book.best_bid(), book.best_ask()
    if bb and ba:
        print(f"final book: {format_e8(bb[0])} / {format_e8(ba[0])}, {len(book.bids)} bids, "
              f"{len(book.asks)} asks")
    print(f"{'stage':<34}{'seconds':>9}{'x baseline':>12}")
    print(f"{'baseline: gunzip + orjson':<34}{base:>9.3f}{1.0:>12.2f}")
    print(f"{'typed events (read_capture)':<34}{typed:>9.3f}{typed / base:>12.2f}")
    print(f"{'update-id sync + L2 book':<34}{booked:>9.3f}{booked / base:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
