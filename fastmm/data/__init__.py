"""Recorded market data: typed events, readers of the captures in ``../shared/data``, a reference book.

Prices and sizes are exact integers of 1e-8 (``E8`` units, see :mod:`fastmm.units`); nothing here
rounds. The readers stream (a line at a time) and never copy the data into the repository.
"""

from fastmm.data.book import L2Book
from fastmm.data.events import BookSnapshot, BookTicker, DepthDiff, Event, Trade
from fastmm.data.paths import binance_capture_dir, data_dir
from fastmm.units import E8, DataError, format_e8, parse_e8

__all__ = [
    "E8", "BookSnapshot", "BookTicker", "DataError", "DepthDiff", "Event", "L2Book", "Trade",
    "binance_capture_dir", "data_dir", "format_e8", "parse_e8",
]
